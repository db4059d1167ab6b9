"""The demo's equipment data: seed 000's district table as the demo region's aggregate baseline
(its impossible Ridder row flagged), a per-student campaign at the demo school through approval,
sponsors, a delivery with one device refused at acceptance, and loans (devices, textbooks, a
book). Called once from ``server.demo_seed.seed_demo``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Grant, Role
from server.accounts.service import create_user
from server.clock import Clock, now_ms
from server.equipment import service as svc
from server.equipment.importer import parse_rows, read_table
from server.equipment.rules import Step
from server.equipment.seed000 import PERIOD, seed_csv
from server.people.models import Consent, Guardian, SchoolClass, Student, StudentGuardian

GOOD = {
    "cpu_cores": 4,
    "ram_gb": 8,
    "storage_gb": 128,
    "screen_in": 14.0,
    "warranty_months": 24,
    "os": "Windows 11",
}


def seed_equipment(
    session: Session, school: str, students: list[Student], *, region: str, password: str
) -> list[tuple[str, Role, str]]:
    """Seed the module; returns the (login, role, what) of its demo accounts."""
    now = now_ms()
    today = Clock().today_in(None)
    rows = parse_rows(read_table("seed000.csv", seed_csv().encode()))
    svc.import_reports(session, None, region, PERIOD, rows, source="seed 000", now=now)
    home = svc.district(session, region, "Демо ауданы", len(rows) + 1)
    svc.place_school(session, school, home.pk)

    accounts = [
        ("librarian", Role.LIBRARIAN, "school librarian (lending desk, stocktaking)"),
        ("equipment", Role.EQUIPMENT_OFFICER, "equipment officer (survey, list, deliveries)"),
        ("district", Role.DISTRICT_APPROVER, "district education department (approves lists)"),
        ("region", Role.REGION_APPROVER, "regional education department (approves, campaign)"),
    ]
    users = {}
    for login, role, _what in accounts:
        grant = (
            Grant(role, region_id=region)
            if role in (Role.DISTRICT_APPROVER, Role.REGION_APPROVER)
            else Grant(role, school_id=school)
        )
        user = create_user(session, login, f"Demo {login}", [grant], password=password)
        user.must_change_password = False
        users[login] = user.pk

    year = today.year
    camp = svc.create_campaign(
        session,
        region,
        name="Әр оқушыға — бір құрылғы",
        period=str(year),
        goal_tiyn=79_500_000_00,
        planned_unit_price_tiyn=150_000_00,
        starts_on=dt.date(year, 2, 1),
        deadline=dt.date(year, 8, 20),
        fund_name="«Парыз» қайырымдылық қоры",
        now=now,
    )
    for name, public, pledge, paid in (
        ("Казцинк", True, 30_000_000, 30_000_000),
        ("Багратион", True, 20_000_000, 10_000_000),
        ("ТМК", False, 15_000_000, 15_000_000),
    ):
        sp = svc.add_sponsor(
            session, camp, name, public_consent=public, consent_document="demo" if public else ""
        )
        svc.add_money(session, sp, "pledge", pledge * 100, dt.date(year, 3, 1))
        svc.add_money(session, sp, "payment", paid * 100, dt.date(year, 4, 1), "PARYZ-demo")

    # The survey: a large family of three children without a computer, others answering.
    active = [s for s in students if s.active][:12]
    if len(active) >= 3:
        family = Guardian(full_name="Көпбалалы отбасы (demo)", phone="+77010000300")
        session.add(family)
        session.flush()
        for st in active[:3]:
            session.add(StudentGuardian(student_pk=st.pk, guardian_pk=family.pk))
    for i, st in enumerate(active):
        session.add(
            Consent(
                student_pk=st.pk,
                kind=ConsentKind.EQUIPMENT_SURVEY.value,
                granted=True,
                given_by="Parent (demo)",
                document=f"demo-survey-{st.ref}",
                signed_on=today - dt.timedelta(days=20),
                recorded_at_ms=now,
            )
        )
        session.flush()
        svc.record_answer(
            session,
            None,
            camp,
            st,
            has_computer=i % 3 == 2 and i > 3,
            low_income=i < 3 or i % 4 == 0,
            applied_at_ms=now - (len(active) - i) * 60_000,
            source="demo",
        )
    lst = svc.build_list(session, None, camp, school, reason="", today=today, now=now)
    svc.step_list(session, None, lst, Step.PROPOSE, note="demo", now=now)
    svc.step_list(session, None, lst, Step.DISTRICT, note="demo", now=now)
    svc.step_list(session, None, lst, Step.REGION, note="demo", now=now)

    spec = svc.add_spec(session, camp, "Ноутбук (№79 бұйрық)")
    contract = svc.add_contract(
        session,
        camp,
        supplier_name="TechnoSnab KZ (demo)",
        spec=spec,
        number="K-79/1",
        quantity=8,
        unit_price_tiyn=155_000_00,
        signed_on=dt.date(year, 5, 1),
        due_on=dt.date(year, 8, 1),
    )
    devices = [svc.Delivered(f"NB-{i:03d}", f"SN-DEMO-{i:03d}", dict(GOOD)) for i in range(1, 7)]
    devices.append(svc.Delivered("NB-007", "SN-DEMO-007", dict(GOOD, ram_gb=2, storage_gb=32)))
    _d, accepted, _refused = svc.record_delivery(
        session, None, contract, school, today - dt.timedelta(days=3), devices, now=now
    )
    for entry, item in zip(svc.entries(session, lst.pk)[:3], accepted, strict=False):
        svc.lend(
            session,
            None,
            item,
            session.get_one(Student, entry.student_pk),
            today=today,
            now=now,
            act_ref="demo-act",
        )

    # Textbooks of the first class's grade, handed out in bulk; a library book lent.
    cls = (
        session.execute(
            select(SchoolClass).where(SchoolClass.school_id == school).order_by(SchoolClass.pk)
        )
        .scalars()
        .first()
    )
    if cls is not None:
        size = len(
            list(
                session.scalars(
                    select(Student.pk).where(Student.class_pk == cls.pk, Student.active.is_(True))
                )
            )
        )
        for title, code in (("Математика", "MAT"), ("Қазақ тілі", "KAZ")):
            for n in range(size):
                svc.add_item(
                    session,
                    None,
                    school,
                    kind="textbook",
                    inventory_no=f"T-{code}-{cls.grade}-{n + 1:03d}",
                    title=f"{title} {cls.grade}",
                    grade=cls.grade,
                    now=now,
                )
        svc.bulk_hand_out_textbooks(session, None, cls, today=today, now=now)
    book = svc.add_item(
        session, None, school, kind="book", inventory_no="B-0001", title="Абай жолы", now=now
    )
    svc.add_item(
        session, None, school, kind="book", inventory_no="B-0002", title="Көшпенділер", now=now
    )
    if active:
        svc.lend(session, None, book, active[-1], today=today, now=now)
    svc.publish_lending(session, school)  # the desk at the school lends by card tap offline
    session.flush()
    return accounts
