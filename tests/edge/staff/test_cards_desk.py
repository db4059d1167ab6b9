"""The cards section of the staff page: a card is bound at the school's desk reader (the number
stays in this store as a keyed hash, the journal gets the record), then blocked, replaced and
unbound by record; no page ever shows the number; only the admin and duty deputy see it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from protocol.messages import CardChangedEvent, CardIssuedEvent
from tests.support.staff_school import ADMIN_CARD, ADMIN_PIN, TEACHER_CARD, TEACHER_PIN, staff_page
from tests.support.wait import wait_until_async

NEW = "UID:0BADCAFE"
SECOND = "UID:0BADCAFF"


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def tap_at_desk(
    page, c: httpx.AsyncClient, form: dict[str, str], card: str | None
) -> httpx.Response:  # type: ignore[no-untyped-def]
    """Press the button, then tap ``card`` at gate-1's reader once the page waits there."""
    post = asyncio.create_task(c.post("/cards/bind", data=form))
    await wait_until_async(lambda: page.readers.claimed("gate-1"), 10, "the page waits")
    if card is not None:
        page.readers.offer_card("gate-1", card)
    return await post


async def test_bind_replace_block_unbind_at_the_desk(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        assert (await page.sign_in(c, ADMIN_CARD, ADMIN_PIN)).status_code == 303
        listing = await c.get("/cards/?group=7A")
        assert listing.status_code == 200 and "Нұрлан Әбенов" in listing.text
        csrf = csrf_of(listing.text)
        form = {"csrf": csrf, "kind": "student", "person": "s2", "terminal": "gate-1"}
        r = await tap_at_desk(page, c, form, NEW)
        assert r.status_code == 200 and 'class="ok"' in r.text, r.text
        (issued,) = [e for e in await page.store.journal_rows() if isinstance(e, CardIssuedEvent)]
        assert (issued.student_id, issued.terminal) == ("s2", "staff-desk")
        card = page.store.state.card(NEW)
        assert card is not None and card.owner_id == "s2" and card.blocked_reason is None
        assert issued.card_ref in r.text and NEW not in r.text and "0BADCAFE" not in r.text
        # The same number for someone else: refused, nothing journaled.
        before = page.store.last_seq
        form_t = {"csrf": csrf, "kind": "staff", "person": "t2", "terminal": "gate-1"}
        r = await tap_at_desk(page, c, form_t, NEW)
        assert 'class="failed"' in r.text and page.store.last_seq == before
        # Lost: replaced by a new card; the old one blocked in the same transaction.
        form_r = form | {"replaces": issued.card_ref, "reason": "lost"}
        r = await tap_at_desk(page, c, form_r, SECOND)
        assert 'class="ok"' in r.text, r.text
        assert page.store.state.card(NEW).blocked_reason == "lost"  # type: ignore[union-attr]
        assert page.store.state.card(SECOND).blocked_reason is None  # type: ignore[union-attr]
        events = await page.store.journal_rows()
        kinds = [(e.kind, getattr(e, "card_ref", None)) for e in events if e.seq > before]
        second = page.store.state.card(SECOND)
        assert kinds[0] == ("card_changed", issued.card_ref) and kinds[1][0] == "card_issued"
        assert second is not None
        # Block and unbind by record.
        new_ref = kinds[1][1]
        r = await c.post(
            "/cards/block", data={"csrf": csrf, "card": new_ref, "reason": "damaged", "group": "7A"}
        )
        assert 'class="ok"' in r.text
        assert page.store.state.card(SECOND).blocked_reason == "damaged"  # type: ignore[union-attr]
        r = await c.post("/cards/unbind", data={"csrf": csrf, "card": new_ref, "group": "7A"})
        assert 'class="ok"' in r.text and page.store.state.card(SECOND) is None
        changes = [e for e in await page.store.journal_rows() if isinstance(e, CardChangedEvent)]
        assert [(e.card_ref, e.change, e.reason) for e in changes] == [
            (issued.card_ref, "blocked", "lost"),
            (new_ref, "blocked", "damaged"),
            (new_ref, "unbound", None),
        ]
        # No event carries a number.
        for e in await page.store.journal_rows():
            assert "0BADCA" not in e.model_dump_json()


async def test_no_consent_no_card_and_nothing_read(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await page.sign_in(c, ADMIN_CARD, ADMIN_PIN)
        listing = await c.get("/cards/?group=7A")
        assert "Без согласия" in listing.text
        csrf = csrf_of(listing.text)
        before = page.store.last_seq
        form = {"csrf": csrf, "kind": "student", "person": "s3", "terminal": "gate-1"}
        r = await tap_at_desk(page, c, form, NEW)
        assert 'class="failed"' in r.text and page.store.last_seq == before
        assert page.store.state.card(NEW) is None
        # Unknown person or reader: not found; no CSRF token: refused.
        bad = form | {"person": "nobody"}
        assert (await c.post("/cards/bind", data=bad)).status_code == 404
        assert (await c.post("/cards/bind", data=form | {"terminal": "x"})).status_code == 404
        no_csrf = {k: v for k, v in form.items() if k != "csrf"}
        assert (await c.post("/cards/bind", data=no_csrf)).status_code == 403


async def test_only_the_admin_and_duty_deputy_see_the_cards_section(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        assert (await c.get("/cards/")).status_code == 403
        assert 'id="section-cards"' not in (await c.get("/")).text
