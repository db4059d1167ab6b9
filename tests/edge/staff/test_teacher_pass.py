"""The staff page served by the edge: card + PIN sign-in, the teacher's pass through the real
pipeline (recorded before the gate acts, with who authorised it), the lost card's block."""

from __future__ import annotations

from pathlib import Path

import httpx

from edge.staff.pins import PinRule
from protocol.messages import CardsBlockedEvent, ManualPassEvent
from tests.support.staff_school import (
    COOK_CARD,
    OTHER_TEACHER_CARD,
    TEACHER_CARD,
    TEACHER_PIN,
    staff_page,
)


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def test_teacher_signs_in_and_lets_own_student_in(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/pass/")).status_code == 303  # to the sign-in
        r = await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        assert r.status_code == 303, r.text
        home = await c.get("/")
        assert home.status_code == 200 and "Гүлнар Ахметова" in home.text
        assert 'id="section-pass"' in home.text
        listing = await c.get("/pass/")
        assert "Айгерім Сейітова" in listing.text and "Нұрлан Әбенов" in listing.text
        assert "Басқа сынып" not in listing.text  # another class
        # the photo stand-in only with the biometric consent
        assert '<span class="photo">АС</span>' in listing.text
        assert '<span class="photo"></span>' in listing.text
        csrf = csrf_of(listing.text)
        opened = await c.post(
            "/pass/open", data={"csrf": csrf, "student": "s2", "terminal": "gate-1"}
        )
        assert opened.status_code == 200 and 'class="ok"' in opened.text
        events = await page.store.journal_rows()
        (ev,) = [e for e in events if isinstance(e, ManualPassEvent)]
        assert (ev.student_id, ev.authorised_by, ev.terminal) == ("s2", "t1", "gate-1")
        # record before act: the gate's line names the journaled seq
        assert page.actuations.read_text().split() == ["gate-1", str(ev.seq), "open"]
        # no data consent: refused by the core, the gate stays shut
        refused = await c.post(
            "/pass/open", data={"csrf": csrf, "student": "s3", "terminal": "gate-1"}
        )
        assert 'class="failed"' in refused.text
        assert page.actuations.read_text().split()[-1] == "red"
        # another class's student: not this teacher's to pass
        other = await c.post(
            "/pass/open", data={"csrf": csrf, "student": "s9", "terminal": "gate-1"}
        )
        assert other.status_code == 404
        # no CSRF token: refused, nothing journaled
        before = len(await page.store.journal_rows())
        bad = await c.post("/pass/open", data={"student": "s2", "terminal": "gate-1"})
        assert bad.status_code == 403
        assert len(await page.store.journal_rows()) == before


async def test_lost_card_is_blocked_and_journaled(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        csrf = csrf_of((await c.get("/pass/")).text)
        r = await c.post("/pass/block", data={"csrf": csrf, "student": "s1"})
        assert r.status_code == 200 and 'class="ok"' in r.text
        card = page.store.state.card("UID:04A1B2C3")
        assert card is not None and card.blocked_reason == "lost"
        (ev,) = [e for e in await page.store.journal_rows() if isinstance(e, CardsBlockedEvent)]
        assert (ev.student_id, ev.authorised_by, ev.cards, ev.reason) == ("s1", "t1", 1, "lost")
        assert "UID" not in ev.model_dump_json()  # no card number leaves the school
        again = await c.post("/pass/block", data={"csrf": csrf, "student": "s1"})
        assert 'class="failed"' in again.text  # nothing left to block, nothing journaled
        assert len([e for e in await page.store.journal_rows() if e.kind == "cards_blocked"]) == 1


async def test_pin_from_the_readers_keypad(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        r = await page.sign_in(c, TEACHER_CARD, "", keypad="9*" + TEACHER_PIN + "#")
        assert r.status_code == 303


async def test_wrong_pins_slow_down_then_lock(tmp_path: Path) -> None:
    rule = PinRule(free=2, base_s=0.0, cap_s=0.0, lockout_after=4)
    async with staff_page(tmp_path, rule=rule) as page, httpx.AsyncClient(base_url=page.url) as c:
        for _ in range(3):
            r = await page.sign_in(c, TEACHER_CARD, "0000")
            assert r.status_code == 401 and 'data-refusal="wrong_pin"' in r.text
        r = await page.sign_in(c, TEACHER_CARD, "0000")
        assert 'data-refusal="locked"' in r.text
        r = await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)  # the right PIN: still locked
        assert 'data-refusal="locked"' in r.text
        row = await page.store.staff_pin("t1")
        assert row is not None and row.failures == 4


async def test_a_delay_after_the_free_failures(tmp_path: Path) -> None:
    rule = PinRule(free=1, base_s=120.0, cap_s=120.0, lockout_after=10)
    async with staff_page(tmp_path, rule=rule) as page, httpx.AsyncClient(base_url=page.url) as c:
        r = await page.sign_in(c, TEACHER_CARD, "0000")
        assert 'data-refusal="wrong_pin"' in r.text
        r = await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        assert r.status_code == 429 and 'data-refusal="wait"' in r.text
        assert int(r.headers["retry-after"]) > 60


async def test_roles_and_other_cards(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page:
        async with httpx.AsyncClient(base_url=page.url) as c:
            r = await page.sign_in(c, COOK_CARD, "7777")
            assert r.status_code == 303
            home = await c.get("/")
            assert 'id="no-sections"' in home.text
            assert (await c.get("/pass/")).status_code == 403
        async with httpx.AsyncClient(base_url=page.url) as c:
            r = await page.sign_in(c, "UID:04A1B2C3", "1234")  # a student's card
            assert 'data-refusal="not_staff"' in r.text
        async with httpx.AsyncClient(base_url=page.url) as c:
            await page.sign_in(c, OTHER_TEACHER_CARD, "5555")
            listing = await c.get("/pass/")
            assert "Басқа сынып" in listing.text and "Нұрлан" not in listing.text
            # sign out ends the session
            await c.post("/logout", data={"csrf": csrf_of(listing.text)})
            assert (await c.get("/pass/")).status_code == 303
