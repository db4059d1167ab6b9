"""The library desk section of the staff page: the student is identified by a tap of their
card at the desk reader; devices by the approved list, textbooks and books are handed over,
given back and reported lost or damaged, each journaled as a ``lending`` event (no card number)
before the page shows it; refusals say why and change nothing; only the librarian and the
admin see the section."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from edge.staff.pins import verifier
from protocol.messages import (
    CardBind,
    CardBinding,
    CardBlock,
    LendingActEvent,
    LendingApproval,
    LendingItem,
    LendingSet,
    OwnerKind,
    StaffRecord,
    StaffUpsert,
)
from tests.support.staff_school import (
    CHILD_CARD,
    KEY,
    TEACHER_CARD,
    TEACHER_PIN,
    staff_page,
)
from tests.support.wait import wait_until_async

LIB_CARD = "UID:0B00B001"
LIB_PIN = "1357"
S2_CARD = "UID:04A1B2C4"

CATALOGUE = LendingSet(
    items=[
        LendingItem(inventory_no="NB-001", kind="device", title="Ноутбук", campaign="c1"),
        LendingItem(inventory_no="NB-002", kind="device", title="Ноутбук", campaign="c1"),
        LendingItem(inventory_no="T-7-01", kind="textbook", title="Алгебра 7"),
        LendingItem(inventory_no="B-100", kind="book", title="Абай жолы", holder="s2"),
    ],
    approvals=[
        LendingApproval(campaign="c1", campaign_name="Digital 2026", student_id="s1", rank=1)
    ],
)


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


async def with_librarian(page) -> None:  # type: ignore[no-untyped-def]
    await page.store.apply_local(
        [
            StaffUpsert(
                staff=StaffRecord(id="lib", roles=["librarian"], display_name="Кітапханашы")
            ),
            CardBind(
                card=CardBinding(credential=LIB_CARD, owner_kind=OwnerKind.STAFF, owner_id="lib")
            ),
            CardBind(
                card=CardBinding(credential=S2_CARD, owner_kind=OwnerKind.STUDENT, owner_id="s2")
            ),
            CATALOGUE,
        ]
    )
    await page.store.set_staff_pin("lib", verifier(KEY, "lib", LIB_PIN), 1, 0)


async def tap_student(page, c: httpx.AsyncClient, csrf: str, card: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    post = asyncio.create_task(c.post("/lending/tap", data={"csrf": csrf, "terminal": "gate-1"}))
    await wait_until_async(lambda: page.readers.claimed("gate-1"), 10, "the page waits")
    assert page.readers.offer_card("gate-1", card)
    return await post


async def act(c: httpx.AsyncClient, csrf: str, student: str, what: str, inv: str) -> httpx.Response:
    return await c.post(
        "/lending/act",
        data={"csrf": csrf, "student": student, "act": what, "inventory_no": inv},
    )


async def test_lend_and_return_by_card_tap(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await with_librarian(page)
        assert (await page.sign_in(c, LIB_CARD, LIB_PIN)).status_code == 303
        home = await c.get("/lending/")
        assert home.status_code == 200
        csrf = csrf_of(home.text)
        # The tap: who the student is, which device is theirs, what they hold.
        r = await tap_student(page, c, csrf, CHILD_CARD)
        assert 'data-student="s1"' in r.text and "Айгерім Сейітова" in r.text
        assert "Digital 2026" in r.text and '<code class="suggested">NB-001</code>' in r.text
        assert CHILD_CARD not in r.text and "04A1B2C3" not in r.text
        # Hand over the device by the approved list, and a textbook.
        r = await act(c, csrf, "s1", "lend", " NB-001 ")
        assert 'class="ok"' in r.text and 'data-inventory="NB-001"' in r.text, r.text
        r = await act(c, csrf, "s1", "lend", "T-7-01")
        assert 'class="ok"' in r.text
        assert [i.inventory_no for i in await page.store.desk_items_of("s1")] == [
            "NB-001",
            "T-7-01",
        ]
        # A second device of the same campaign: refused, nothing journaled.
        before = page.store.last_seq
        r = await act(c, csrf, "s1", "lend", "NB-002")
        assert 'class="failed"' in r.text and "already holds a device of this campaign" in r.text
        assert page.store.last_seq == before
        # Return the textbook, report the device damaged.
        assert 'class="ok"' in (await act(c, csrf, "s1", "return", "T-7-01")).text
        assert 'class="ok"' in (await act(c, csrf, "s1", "damaged", "NB-001")).text
        assert await page.store.desk_items_of("s1") == []
        damaged = await page.store.desk_item("NB-001")
        assert damaged is not None and damaged.away and damaged.holder is None
        events = [e for e in await page.store.journal_rows() if isinstance(e, LendingActEvent)]
        assert [(e.act, e.inventory_no, e.student_id, e.staff_id, e.terminal) for e in events] == [
            ("lend", "NB-001", "s1", "lib", "library-desk"),
            ("lend", "T-7-01", "s1", "lib", "library-desk"),
            ("return", "T-7-01", "s1", "lib", "library-desk"),
            ("damaged", "NB-001", "s1", "lib", "library-desk"),
        ]
        for e in await page.store.journal_rows():
            assert "04A1B2C3" not in e.model_dump_json()


async def test_refusals_are_precise_and_change_nothing(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await with_librarian(page)
        await page.sign_in(c, LIB_CARD, LIB_PIN)
        csrf = csrf_of((await c.get("/lending/")).text)
        r = await tap_student(page, c, csrf, S2_CARD)
        assert 'data-student="s2"' in r.text and "Not on an approved list" in r.text
        assert 'data-inventory="B-100"' in r.text  # the centre says s2 holds the book
        before = page.store.last_seq
        cases = [
            ("lend", "NB-001", "This device is not approved for this student"),
            ("return", "T-7-01", "This item is not lent to this student: nothing to return"),
            ("lend", "B-100", "The student already holds this item"),
            ("lend", "X-404", "No item with this inventory number"),
            ("lend", "   ", "An inventory number has 1 to 64 characters"),
        ]
        for what, inv, message in cases:
            r = await act(c, csrf, "s2", what, inv)
            assert 'class="failed"' in r.text and message in r.text, (what, inv, r.text)
        assert page.store.last_seq == before
        # The book goes back; then s1 may not return what s2 held.
        assert 'class="ok"' in (await act(c, csrf, "s2", "return", "B-100")).text
        r = await act(c, csrf, "s1", "return", "B-100")
        assert "This item is not lent to this student" in r.text
        # lent to s1: s2 cannot take it
        assert 'class="ok"' in (await act(c, csrf, "s1", "lend", "B-100")).text
        r = await act(c, csrf, "s2", "lend", "B-100")
        assert "This item is lent to another student" in r.text
        # Unknown student or act; no CSRF token.
        assert (await act(c, csrf, "nobody", "lend", "B-100")).status_code == 404
        assert (await act(c, csrf, "s1", "steal", "B-100")).status_code == 422
        no_csrf = {"student": "s1", "act": "lend", "inventory_no": "T-7-01"}
        assert (await c.post("/lending/act", data=no_csrf)).status_code == 403


async def test_a_blocked_card_names_nobody_and_a_staff_card_is_not_taken(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await with_librarian(page)
        await page.sign_in(c, LIB_CARD, LIB_PIN)
        csrf = csrf_of((await c.get("/lending/")).text)
        await page.store.apply_local([CardBlock(credential=CHILD_CARD, reason="lost")])
        r = await tap_student(page, c, csrf, CHILD_CARD)
        assert "This card is blocked" in r.text and 'id="student"' not in r.text
        post = asyncio.create_task(
            c.post("/lending/tap", data={"csrf": csrf, "terminal": "gate-1"})
        )
        await wait_until_async(lambda: page.readers.claimed("gate-1"), 10, "the page waits")
        assert not page.readers.offer_card("gate-1", LIB_CARD)  # a staff card: a tap, not read
        assert page.readers.offer_card("gate-1", S2_CARD)
        assert 'data-student="s2"' in (await post).text


async def test_a_list_from_the_centre_keeps_acts_it_has_not_seen(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page:
        await with_librarian(page)
        from edge.lending import record_act

        await record_act(page.store, "lend", "s1", "NB-001", "lib")
        await page.store.apply_local([CATALOGUE])  # the centre's list, before it got the act
        item = await page.store.desk_item("NB-001")
        assert item is not None and item.holder == "s1"
        await page.store.outbox_ack(page.store.last_seq)  # the centre has it now
        await page.store.apply_local([CATALOGUE])  # ... and its list says nobody holds it
        item = await page.store.desk_item("NB-001")
        assert item is not None and item.holder is None


async def test_only_the_librarian_and_admin_see_the_desk(tmp_path: Path) -> None:
    async with staff_page(tmp_path) as page, httpx.AsyncClient(base_url=page.url) as c:
        await page.sign_in(c, TEACHER_CARD, TEACHER_PIN)
        assert (await c.get("/lending/")).status_code == 403
        assert 'id="section-lending"' not in (await c.get("/")).text
