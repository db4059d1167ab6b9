"""Equipment services on PostgreSQL: import (bad school -> nothing changed), coverage with
per-student records, the list's approval flow and versions, acceptance, lending and its bad
inputs, bulk operations, reminders through the outbox, stocktaking, synced desk events."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.equipment import service as svc
from server.equipment.calc import Counts
from server.equipment.importer import ImportFailed, parse_rows, read_table
from server.equipment.models import CoverageReport, Item, Loan, Rejection
from server.equipment.rules import EquipmentError, Step
from server.equipment.seed000 import seed_csv
from server.notify.models import OutboxMessage
from server.people.models import Consent, Guardian, Student, StudentGuardian
from tests.support.console import World

TODAY = dt.date(2026, 9, 1)
NOW = 1_788_000_000_000


def _consent(db: Session, pk: int, kind: str = "equipment_survey") -> None:
    db.add(
        Consent(
            student_pk=pk,
            kind=kind,
            granted=True,
            given_by="Parent",
            document="doc",
            signed_on=TODAY,
            recorded_at_ms=NOW,
        )
    )
    db.flush()


def test_seed_import_reproduces_the_district_table(db: Session, world: World) -> None:
    rows = parse_rows(read_table("seed.csv", seed_csv().encode()))
    n, flagged = svc.import_reports(db, None, "R1", "2020", rows, source="seed", now=NOW)
    assert (n, flagged) == (20, 1)
    rep = svc.coverage_report(db, "R1", "2020", TODAY)
    assert rep.total == Counts(632, 186_219, 149_631, 36_588, 4_012, 1_150, 530, 132)
    assert [r.district for r in rep.flagged] == ["Риддер"]
    assert rep.districts[0].district == "Абай"
    # importing the same file again replaces, never doubles
    svc.import_reports(db, None, "R1", "2020", rows, source="seed", now=NOW)
    assert db.scalar(select(func.count()).select_from(CoverageReport)) == 20


def test_unknown_school_fails_the_whole_import(db: Session, world: World) -> None:
    csv = (
        "district,school_id,students,with_computer,without_computer,needy_students,"
        "needy_families,uncovered_students,uncovered_families\n"
        "D,S1,10,5,5,2,1,1,1\nD,NOPE,10,5,5,2,1,1,1\nD,S3,10,5,5,2,1,1,1\n"
    )
    rows = parse_rows(read_table("x.csv", csv.encode()))
    with pytest.raises(ImportFailed) as err:
        svc.import_reports(db, None, "R1", "2021", rows, source="x", now=NOW)
    assert err.value.errors == [
        "line 3: unknown school 'NOPE'",
        "line 4: school 'S3' is not in region 'R1'",
    ]
    db.rollback()
    assert db.scalar(select(func.count()).select_from(CoverageReport)) == 0
    with pytest.raises(ImportFailed, match="students is not a whole number"):
        parse_rows(
            read_table(
                "x.csv",
                b"district,schools,students,with_computer,without_computer,needy_students,needy_families,uncovered_students,uncovered_families\nD,1,many,1,1,0,0,0,0\n",
            )
        )
    with pytest.raises(ImportFailed, match="missing columns"):
        parse_rows(read_table("x.csv", b"district,students\nD,1\n"))


def _campaign(db: Session) -> svc.Campaign:
    return svc.create_campaign(
        db,
        "R1",
        name="Every child",
        period="2026",
        goal_tiyn=79_500_000_00,
        planned_unit_price_tiyn=150_000_00,
        starts_on=dt.date(2026, 2, 1),
        deadline=dt.date(2026, 8, 20),
        fund_name="Paryz",
        now=NOW,
    )


def _answered(db: Session, world: World, camp: svc.Campaign) -> list[int]:
    """S1: 3A-1 and 3A-2 share a guardian (a large family), 7B-1 needy alone, 7B-2 has a PC."""
    pks = [world.students[r] for r in ("s1-3a-1", "s1-3a-2", "s1-7b-1", "s1-7b-2")]
    g = Guardian(full_name="Big family", phone="+77010000002")
    db.add(g)
    db.flush()
    db.add_all(
        [
            StudentGuardian(student_pk=pks[0], guardian_pk=g.pk),
            StudentGuardian(student_pk=pks[1], guardian_pk=g.pk),
        ]
    )
    for i, pk in enumerate(pks):
        _consent(db, pk)
        svc.record_answer(
            db,
            None,
            camp,
            db.get_one(Student, pk),
            has_computer=(i == 3),
            low_income=(i in (0, 1, 2)),
            applied_at_ms=NOW + (10 - i),
        )
    return pks


def test_answer_needs_the_survey_consent(db: Session, world: World) -> None:
    camp = _campaign(db)
    st = db.get_one(Student, world.students["s1-3a-1"])
    with pytest.raises(EquipmentError, match="consent"):
        svc.record_answer(
            db, None, camp, st, has_computer=False, low_income=True, applied_at_ms=NOW
        )


def test_list_flow_versions_and_lending(db: Session, world: World) -> None:
    camp = _campaign(db)
    pks = _answered(db, world, camp)
    lst = svc.build_list(db, None, camp, "S1", reason="", today=TODAY, now=NOW)
    ranked = [e.student_pk for e in svc.entries(db, lst.pk)]
    # the family of two first (later application of the two: 3A-2 applied earlier), then 7B-1
    assert ranked == [pks[1], pks[0], pks[2]]
    # per-student records replace S1's aggregate in the campaign's period
    svc.import_reports(
        db,
        None,
        "R1",
        "2026",
        parse_rows(
            read_table(
                "a.csv",
                b"district,school_id,students,with_computer,without_computer,needy_students,needy_families,uncovered_students,uncovered_families\nD1,S1,500,400,100,10,3,2,1\nD1,S2,50,40,10,1,1,1,1\n",
            )
        ),
        source="a",
        now=NOW,
    )
    rep = svc.coverage_report(db, "R1", "2026", TODAY)
    assert rep.total == Counts(2, 54, 41, 13, 4, 3, 4, 3)
    with pytest.raises(EquipmentError, match="not possible"):
        svc.step_list(db, None, lst, Step.REGION, note="", now=NOW)
    svc.step_list(db, None, lst, Step.PROPOSE, note="", now=NOW)
    with pytest.raises(EquipmentError, match="in approval"):
        svc.build_list(db, None, camp, "S1", reason="x", today=TODAY, now=NOW)
    svc.step_list(db, None, lst, Step.DISTRICT, note="", now=NOW)
    svc.step_list(db, None, lst, Step.REGION, note="", now=NOW)
    assert lst.status == "approved"
    with pytest.raises(EquipmentError, match="needs a reason"):
        svc.build_list(db, None, camp, "S1", reason="", today=TODAY, now=NOW)

    # delivery: one device below the specification is refused with its reason
    spec = svc.add_spec(db, camp, "Laptop (order No. 79)")
    contract = svc.add_contract(
        db,
        camp,
        supplier_name="TechKZ",
        spec=spec,
        number="K-1",
        quantity=4,
        unit_price_tiyn=160_000_00,
        signed_on=dt.date(2026, 3, 1),
        due_on=dt.date(2026, 8, 1),
    )
    good = {
        "cpu_cores": 4,
        "ram_gb": 8,
        "storage_gb": 128,
        "screen_in": 14.0,
        "warranty_months": 24,
        "os": "Windows 11",
    }
    devices = [svc.Delivered(f"INV-{i}", f"SN{i}", dict(good)) for i in range(1, 4)]
    devices.append(svc.Delivered("INV-4", "SN4", dict(good, ram_gb=2)))
    _d, accepted, refused = svc.record_delivery(
        db, None, contract, "S1", dt.date(2026, 8, 10), devices, now=NOW
    )
    assert [i.inventory_no for i in accepted] == ["INV-1", "INV-2", "INV-3"]
    assert [r.reason for r in refused] == ["ram_gb: 2 is below the minimum 4"]
    assert (
        db.scalar(select(func.count()).select_from(Item).where(Item.inventory_no == "INV-4")) == 0
    )
    with pytest.raises(EquipmentError, match="already on the school's balance"):
        svc.record_delivery(
            db, None, contract, "S1", TODAY, [svc.Delivered("INV-1", "X", good)], now=NOW
        )

    inv = {i.inventory_no: i for i in accepted}
    not_listed = db.get_one(Student, pks[3])
    with pytest.raises(EquipmentError, match="not on the approved list"):
        svc.lend(db, None, inv["INV-1"], not_listed, today=TODAY, now=NOW)
    first = db.get_one(Student, pks[0])
    svc.lend(db, None, inv["INV-1"], first, today=TODAY, now=NOW)
    with pytest.raises(EquipmentError, match="already holds a device"):
        svc.lend(db, None, inv["INV-2"], first, today=TODAY, now=NOW)
    with pytest.raises(EquipmentError, match="not lent"):
        svc.give_back(db, None, inv["INV-2"], now=NOW)
    # bulk hand-out: the two others on the list get INV-2 and INV-3
    assert svc.bulk_hand_out_devices(db, None, camp, "S1", today=TODAY, now=NOW) == 2
    assert svc.bulk_hand_out_devices(db, None, camp, "S1", today=TODAY, now=NOW) == 0
    rep = svc.final_report(db, camp, dt.date(2026, 9, 1))
    assert (rep["delivered"], rep["accepted"], rep["rejected"]) == (4, 3, 1)
    assert (rep["children_listed"], rep["children_with_device"], rep["children_uncovered"]) == (
        3,
        3,
        0,
    )
    assert rep["spent_tiyn"] == 3 * 160_000_00
    assert [s[0] for s in rep["signals"]] == [
        "money_short",
        "price_above_plan",
        "late_delivery",
        "spec_mismatch",
    ]
    # coverage now counts them covered
    assert svc.coverage_report(db, "R1", "2026", TODAY).total.uncovered_students == 1  # S2's row

    # reminders: overdue after the school year ends, once a week, with a notifications consent
    _consent(db, pks[0], "notifications")
    later = dt.date(2027, 6, 2)
    db.get_one(User, world.users["parent1"]).lang = "en"  # the first guardian reads English
    assert svc.send_overdue_reminders(db, later, NOW) == 2  # both of the child's guardians
    assert svc.send_overdue_reminders(db, later + dt.timedelta(days=1), NOW) == 0
    msgs = db.scalars(select(OutboxMessage)).all()
    assert {(m.kind, m.device_pk, m.student_pk) for m in msgs} == {
        ("overdue", svc.REMINDER_DEVICE, pks[0])
    }
    assert sorted(m.lang for m in msgs) == ["en", "kk"]
    en = next(m for m in msgs if m.lang == "en")
    assert en.body == (
        "Name3AS1 has not returned to the school library: Laptop (order No. 79) "
        "(due 2027-05-31). School No. 1"
    )
    # end of year: bulk return
    assert svc.bulk_return(db, None, "S1", None, now=NOW) == 3
    assert (
        db.scalar(select(func.count()).select_from(Loan).where(Loan.returned_at_ms.is_(None))) == 0
    )


def test_textbooks_stocktake_and_desk_events(db: Session, world: World) -> None:
    cls_pk = world.classes["S1/3A"]
    cls = db.get_one(svc.SchoolClass, cls_pk)
    for i in range(2):
        svc.add_item(
            db,
            None,
            "S1",
            kind="textbook",
            inventory_no=f"T-MATH-{i}",
            title="Math 3",
            grade=3,
            now=NOW,
        )
    svc.add_item(
        db, None, "S1", kind="textbook", inventory_no="T-KAZ-0", title="Kazakh 3", grade=3, now=NOW
    )
    with pytest.raises(EquipmentError, match="Not enough copies"):
        svc.bulk_hand_out_textbooks(db, None, cls, today=TODAY, now=NOW)
    assert db.scalar(select(func.count()).select_from(Loan)) == 0
    svc.add_item(
        db, None, "S1", kind="textbook", inventory_no="T-KAZ-1", title="Kazakh 3", grade=3, now=NOW
    )
    assert svc.bulk_hand_out_textbooks(db, None, cls, today=TODAY, now=NOW) == 4
    held = svc.outstanding(db, [world.students["s1-3a-1"]])
    assert sorted(i.title for _l, i in held) == ["Kazakh 3", "Math 3"]

    book = svc.add_item(db, None, "S1", kind="book", inventory_no="B-1", title="Abai", now=NOW)
    svc.add_item(db, None, "S1", kind="book", inventory_no="B-2", title="Auezov", now=NOW)
    # a hand-over recorded offline at the desk, synced as an event: applied once per (device, seq)
    payload = {"inventory_no": "B-1", "at_ms": NOW, "act_ref": ""}
    loan = svc.apply_lending_event(db, "S1", 7, 1, "equipment_lend", "s1-7b-1", payload, TODAY)
    again = svc.apply_lending_event(db, "S1", 7, 1, "equipment_lend", "s1-7b-1", payload, TODAY)
    assert loan.pk == again.pk and loan.source == "edge"
    with pytest.raises(EquipmentError, match="not in stock"):
        svc.apply_lending_event(db, "S1", 7, 2, "equipment_lend", "s1-7b-2", payload, TODAY)
    with pytest.raises(EquipmentError, match="Unknown student"):
        svc.apply_lending_event(
            db,
            "S1",
            7,
            3,
            "equipment_lend",
            "s3-3a-1",
            {"inventory_no": "B-2", "at_ms": NOW},
            TODAY,
        )
    svc.apply_lending_event(db, "S1", 7, 4, "equipment_return", "s1-7b-1", payload, TODAY)
    assert book.status == "in_stock"

    take = svc.open_stocktake(db, None, "S1", NOW)
    svc.scan(db, take, svc.label_code(book), NOW)
    svc.scan(db, take, "B-1", NOW)  # twice: counted once
    with pytest.raises(EquipmentError, match="No item"):
        svc.scan(db, take, "QAQPA-INV:S2/B-2", NOW)
    assert [i.inventory_no for i in svc.missing(db, take)] == ["B-2"]
    assert db.scalar(select(func.count()).select_from(Rejection)) == 0
