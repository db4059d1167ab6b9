"""The one-machine demo's console data: the demo school's classes, students (invented names),
parents, consents and staff in the server's tables, and one account per role.

The edge of the demo school gets the same roster as its own import; the server's change log
then carries the same students, so edits in the console reach the edge as deltas.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import (
    CardBinding,
    Change,
    ConsentKind,
    PolicyDoc,
    StaffRecord,
    StaffUpsert,
    StudentRecord,
    StudentUpsert,
)
from server.accounts.access import Grant, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.badges import demo as badges_demo
from server.clock import Clock, now_ms
from server.consents.models import StudentCategory
from server.equipment.demo import seed_equipment
from server.gifted.demo import seed_demo as seed_gifted
from server.people.models import (
    Consent,
    Guardian,
    SchoolClass,
    StaffMember,
    Student,
    StudentGuardian,
)
from server.people.service import add_school, student_record
from server.policy.service import save_policy
from server.sync.changelog import append_changes
from server.trustees.demo import seed_demo as duty_demo
from server.tutoring import demo as tutoring_demo
from server.vouchers import demo as vouchers_demo

DEMO_PASSWORD = "qaqpa-demo-2026"  # the demo's accounts only; printed by `qaqpa demo`
SURNAMES = ["Ахметов", "Серікбаев", "Жұмабаев", "Нұрланов", "Қасымов", "Иванов", "Әлиев", "Омаров"]
GIVEN = ["Айдана", "Нұрсұлтан", "Аружан", "Ерлан", "Дильназ", "Әлихан", "Томирис", "Данияр"]


@dataclass(frozen=True)
class DemoAccount:
    login: str
    role: Role
    what: str


def demo_accounts(first_class: str) -> list[DemoAccount]:
    return [
        DemoAccount("operator", Role.OPERATOR, "every school"),
        DemoAccount("admin", Role.SCHOOL_ADMIN, "school admin of DEMO"),
        DemoAccount("duty", Role.DUTY_DEPUTY, "deputy director on duty (evacuation list)"),
        DemoAccount("teacher", Role.CLASS_TEACHER, f"class teacher of {first_class}"),
        DemoAccount("social", Role.SOCIAL_PEDAGOGUE, "social pedagogue (categories)"),
        DemoAccount("canteen", Role.CANTEEN_MANAGER, "canteen manager"),
        DemoAccount("parent", Role.PARENT, "parent of the first student"),
    ]


def seed_demo(
    session: Session,
    school: str,
    students_in: list[StudentRecord],
    staff_in: list[StaffRecord],
    cards_in: list[CardBinding] | None = None,
    policy: PolicyDoc | None = None,
    *,
    region: str = "DEMO-REGION",
) -> list[DemoAccount]:
    """Fill the server with the demo school (idempotent per fresh database)."""
    add_school(session, school, "Qaqpa demo school No. 1", region=region, region_name="Demo region")
    if session.execute(select(User.pk).where(User.login == "operator")).first() is not None:
        return demo_accounts(students_in[0].class_name if students_in else "1A")
    rng = random.Random(7)
    now = now_ms()
    classes: dict[str, SchoolClass] = {}
    for rec in students_in:
        if rec.class_name not in classes:
            c = SchoolClass(school_id=school, name=rec.class_name, grade=rec.grade, shift=rec.shift)
            session.add(c)
            classes[rec.class_name] = c
    session.flush()
    students: list[Student] = []
    changes: list[Change] = []
    by_ref: dict[str, Student] = {}
    for rec in students_in:
        data = next((c for c in rec.consents if c.kind == "data"), None)
        st = Student(
            ref=rec.id,
            school_id=school,
            class_pk=classes[rec.class_name].pk,
            surname=rng.choice(SURNAMES),
            given_name=rng.choice(GIVEN),
            birth_date=dt.date(2026 - 6 - rec.grade, rng.randint(1, 12), rng.randint(1, 28)),
            created_at_ms=now,
            updated_at_ms=now,
            active=data is not None and data.granted,
        )
        session.add(st)
        session.flush()
        students.append(st)
        by_ref[rec.id] = st
        if not st.active:
            continue
        for kind in (ConsentKind.DATA, ConsentKind.NOTIFICATIONS):
            session.add(
                Consent(
                    student_pk=st.pk,
                    kind=kind.value,
                    granted=True,
                    given_by="Parent (demo)",
                    document=f"demo-consent-{rec.id}",
                    signed_on=Clock().today_in(None) - dt.timedelta(days=30),
                    recorded_at_ms=now,
                )
            )
        g = Guardian(
            full_name=f"{st.surname} (parent)", phone=f"+7701{rng.randrange(10**6, 10**7)}"
        )
        session.add(g)
        session.flush()
        session.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
        session.flush()
        for cat in rec.categories:
            session.add(
                StudentCategory(
                    student_pk=st.pk,
                    school_id=school,
                    code=cat.code,
                    document=cat.document,
                    valid_from=dt.date.fromisoformat(cat.valid_from),
                    valid_to=dt.date.fromisoformat(cat.valid_to),
                    recorded_at_ms=now,
                )
            )
        record = student_record(session, st).model_copy(update={"categories": rec.categories})
        changes.append(StudentUpsert(student=record))
    staff_rows: dict[str, StaffMember] = {}
    for staff in staff_in:
        row = StaffMember(
            school_id=school,
            ref=staff.id,
            full_name=f"Teacher {staff.id}",
            edge_roles=",".join(staff.roles),
        )
        session.add(row)
        staff_rows[staff.id] = row
        changes.append(StaffUpsert(staff=staff))
    session.flush()
    # Cards: bound at the school's desk (DESIGN invariant 5), never here. ``cards_in`` (the
    # roster file's numbers) stays at the school; the records come with the school's uplink.
    del cards_in
    append_changes(session, school, changes)
    vouchers_demo.seed_demo(session, school, [r.id for r in students_in], Clock().today_in(None))
    if policy is not None:
        save_policy(
            session,
            None,
            school_id=school,
            valid_from=Clock().today_in(None) - dt.timedelta(days=60),
            doc=policy,
        )
    first_class = students_in[0].class_name if students_in else "1A"
    accounts = demo_accounts(first_class)
    for acc in accounts:
        grant = {
            Role.OPERATOR: Grant(Role.OPERATOR),
            Role.CLASS_TEACHER: Grant(
                Role.CLASS_TEACHER, school_id=school, class_pk=classes[first_class].pk
            ),
            Role.PARENT: Grant(Role.PARENT),
        }.get(acc.role, Grant(acc.role, school_id=school))
        user = create_user(session, acc.login, f"Demo {acc.login}", [grant], password=DEMO_PASSWORD)
        user.must_change_password = False
        if acc.role is Role.PARENT and students:
            g = session.execute(
                select(Guardian)
                .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
                .where(StudentGuardian.student_pk == students[0].pk)
            ).scalar_one()
            g.user_pk = user.pk
    accounts += [
        DemoAccount(*a) for a in seed_gifted(session, school, Clock().today_in(None), DEMO_PASSWORD)
    ]
    accounts += [
        DemoAccount(*a)
        for a in seed_equipment(session, school, students, region=region, password=DEMO_PASSWORD)
    ]
    tutoring_demo.seed_demo(session, region=region, password=DEMO_PASSWORD)
    session.flush()
    badges_demo.seed_demo(session, region=region, password=DEMO_PASSWORD)
    duty_demo(session, school)  # duty roster, card price, parents' concerns
    return accounts
