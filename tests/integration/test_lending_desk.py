"""THE proof for the library desk (issue 15): lending by card tap through the real edge path.

A real edge (store, pipeline, EM-Marine driver on ptys, EdgeSync) with its staff page and a
library desk terminal talks to the real ingest worker and downlink service on PostgreSQL
through the real Mosquitto. The centre approves a campaign's list and delivers two devices;
the approved list and the school's items reach the edge (``lending_set``). The librarian
signs in at the desk reader with their card and PIN; the student taps their card at the same
reader; the page shows who they are and which device is theirs; a hand-over of a device not
approved for another student is refused; the device and a textbook are handed over, the
textbook comes back, and all of it reaches the centre as ``lending`` events, applied once: the
console's student page shows the device held. No card number is in any server table."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from edge.staff.pins import verifier
from protocol.messages import PolicySet, StaffRecord, StaffUpsert
from server.equipment import service as svc
from server.equipment.models import Item, Loan
from server.equipment.rules import Step
from server.models import StoredEvent
from server.people.models import Consent, Student
from server.settings import ServerSettings
from server.sync.changelog import append_changes
from tests.support.consents import give
from tests.support.console import World
from tests.support.school_sim import ALL_DAY, SimSchool
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

PIN_KEY = bytes(range(32))
LIB_PIN = "1357"
LIB_CARD = "EM:0000700700"
CHILD_CARD = "EM:0004711471"
OTHER_CARD = "EM:0004711472"
CHILD = "s1-3a-1"
OTHER = "s1-3a-2"
TODAY = dt.date(2026, 9, 1)
NOW = 1_788_000_000_000
GOOD = {
    "cpu_cores": 4,
    "ram_gb": 8,
    "storage_gb": 128,
    "screen_in": 14.0,
    "warranty_months": 24,
    "os": "Windows 11",
}


def approved_campaign(db: Session, world: World) -> None:
    """An approved list with the child alone on it, two devices delivered, a textbook."""
    camp = svc.create_campaign(
        db,
        "R1",
        name="Every child",
        period="2026",
        goal_tiyn=1,
        planned_unit_price_tiyn=1,
        starts_on=dt.date(2026, 2, 1),
        deadline=dt.date(2026, 8, 20),
        fund_name="Paryz",
        now=NOW,
    )
    for ref, pc in ((CHILD, False), (OTHER, True)):
        pk = world.students[ref]
        db.add(
            Consent(
                student_pk=pk,
                kind="equipment_survey",
                granted=True,
                given_by="Parent",
                document="doc",
                signed_on=TODAY,
                recorded_at_ms=NOW,
            )
        )
        db.flush()
        svc.record_answer(
            db,
            None,
            camp,
            db.get_one(Student, pk),
            has_computer=pc,
            low_income=True,
            applied_at_ms=NOW,
        )
    lst = svc.build_list(db, None, camp, "S1", reason="", today=TODAY, now=NOW)
    for step in (Step.PROPOSE, Step.DISTRICT, Step.REGION):
        svc.step_list(db, None, lst, step, note="", now=NOW)  # approved: published to S1
    spec = svc.add_spec(db, camp, "Laptop (order No. 79)")
    contract = svc.add_contract(
        db,
        camp,
        supplier_name="TechKZ",
        spec=spec,
        number="K-1",
        quantity=2,
        unit_price_tiyn=1,
        signed_on=dt.date(2026, 3, 1),
        due_on=dt.date(2026, 8, 1),
    )
    svc.record_delivery(
        db,
        None,
        contract,
        "S1",
        TODAY,
        [svc.Delivered(f"NB-{i}", f"SN{i}", dict(GOOD)) for i in (1, 2)],
        now=NOW,
    )
    svc.add_item(
        db, None, "S1", kind="textbook", inventory_no="T-3-01", title="Math 3", grade=3, now=NOW
    )
    svc.publish_lending(db, "S1")  # as the console's inventory page does
    db.commit()


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def every_row(db: Session) -> str:
    db.rollback()
    out: list[str] = []
    for table in inspect(db.get_bind()).get_table_names():
        out += [repr(tuple(r)) for r in db.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


@pytest.mark.timeout(240)
def test_lending_by_card_tap_reaches_the_centre(
    settings: ServerSettings,
    world: World,
    db: Session,
    make_browser,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(
        update={"topic_prefix": f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1"}
    )
    admin = make_browser("admin1")
    for ref in (CHILD, OTHER):
        give(admin, world.students[ref])  # the data consent: a card may be issued
    librarian = StaffRecord(id="lib1", roles=["librarian"], display_name="Librarian")
    append_changes(db, "S1", [PolicySet(policy=ALL_DAY), StaffUpsert(staff=librarian)])
    db.commit()
    approved_campaign(db, world)

    school = SimSchool(settings, "S1", tmp_path, card_key=b"k" * 32, staff_pin_key=PIN_KEY)
    with school:
        school.wait_synced()
        store = school.store
        assert store is not None
        nb1 = school.call(store.desk_item("NB-1"))
        assert nb1 is not None and nb1.kind == "device" and nb1.holder is None
        school.call(store.set_staff_pin("lib1", verifier(PIN_KEY, "lib1", LIB_PIN), 1, 0))
        school.desk_issue("lib1", LIB_CARD, staff=True)
        school.desk_issue(CHILD, CHILD_CARD)
        school.desk_issue(OTHER, OTHER_CARD)
        asyncio.run(desk_session(school))

        def loans() -> list[tuple[str, str, bool, str]]:
            db.rollback()
            rows = db.execute(
                select(Item.inventory_no, Student.ref, Loan.returned_at_ms, Loan.source)
                .join(Loan, Loan.item_pk == Item.pk)
                .join(Student, Student.pk == Loan.student_pk)
                .order_by(Loan.pk)
            ).all()
            return [(i, s, r is not None, src) for i, s, r, src in rows]

        want = [("NB-1", CHILD, False, "edge"), ("T-3-01", CHILD, True, "edge")]
        wait_until(lambda: loans() == want, 30, "the desk's acts applied at the centre")
        last = school.journaled()
        wait_until(
            lambda: school.call(store.outbox_stats()).acked_through >= last,
            20,
            "the desk's events acknowledged",
        )
    # Applied once, although the events are stored (and could be sent again).
    db.rollback()
    acts = db.execute(
        select(StoredEvent.payload).where(StoredEvent.kind == "lending").order_by(StoredEvent.seq)
    ).scalars()
    assert [(p["act"], p["inventory_no"], p["student_id"], p["staff_id"]) for p in acts] == [
        ("lend", "NB-1", CHILD, "lib1"),
        ("lend", "T-3-01", CHILD, "lib1"),
        ("return", "T-3-01", CHILD, "lib1"),
    ]
    assert loans() == want
    nb = db.execute(select(Item).where(Item.inventory_no == "NB-1")).scalar_one()
    assert nb.status == "lent"
    # The console shows it: the student's items page.
    page = admin.get(f"/equipment/student/{world.students[CHILD]}")
    assert page.status_code == 200 and "NB-1" in page.text and "T-3-01" not in page.text
    # No card number in any server table.
    rows = every_row(db)
    for card in (LIB_CARD, CHILD_CARD, OTHER_CARD):
        assert card.split(":")[1] not in rows


async def desk_session(school: SimSchool) -> None:
    """The librarian's browser at the staff page; the cards held to the desk's reader."""
    loop = asyncio.get_running_loop()

    async def tapped(post: asyncio.Task[httpx.Response], card: str) -> httpx.Response:
        while not await loop.run_in_executor(None, school.desk_waits):
            await asyncio.sleep(0.05)
        school.desk_tap(card)
        return await post

    async with httpx.AsyncClient(base_url=school.staff_url, timeout=30) as c:
        csrf = csrf_of((await c.get("/")).text)
        login = {"csrf": csrf, "reader": "library-desk", "pin": LIB_PIN}
        r = await tapped(asyncio.create_task(c.post("/login", data=login)), LIB_CARD)
        assert r.status_code == 303, r.text
        csrf = csrf_of((await c.get("/lending/")).text)

        async def act(student: str, what: str, inv: str) -> httpx.Response:
            form = {"csrf": csrf, "student": student, "act": what, "inventory_no": inv}
            return await c.post("/lending/act", data=form)

        # The other child (not on the list) taps: a device is refused, precisely.
        tap = {"csrf": csrf, "terminal": "library-desk"}
        r = await tapped(asyncio.create_task(c.post("/lending/tap", data=tap)), OTHER_CARD)
        assert f'data-student="{OTHER}"' in r.text and "Not on an approved list" in r.text
        r = await act(OTHER, "lend", "NB-2")
        assert "This device is not approved for this student" in r.text
        # The child on the list taps: their device, then a textbook; the textbook comes back.
        r = await tapped(asyncio.create_task(c.post("/lending/tap", data=tap)), CHILD_CARD)
        assert f'data-student="{CHILD}"' in r.text and "Every child" in r.text
        assert '<code class="suggested">NB-1</code>' in r.text
        assert "0004711471" not in r.text
        assert 'class="ok"' in (await act(CHILD, "lend", "NB-1")).text
        assert 'class="ok"' in (await act(CHILD, "lend", "T-3-01")).text
        r = await act(CHILD, "return", "T-3-01")
        assert 'class="ok"' in r.text and 'data-inventory="NB-1"' in r.text
        assert 'data-inventory="T-3-01"' not in r.text
