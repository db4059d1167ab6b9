"""Demo data of the gifted-children registry: the demo school (rural) and a second, urban
school in a second region, each with nominated children whose parents consented, and their
roadmaps (activities done with prize places, activities ahead, support planned and paid), and
a registry coordinator account of the demo school. Harmless to the rest of the demo: the second
school has no edge, and nothing here is published to an edge."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Grant, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.clock import now_ms
from server.consents.models import StudentCategory
from server.gifted.models import (
    Activity,
    GiftedEntry,
    GiftedSchool,
    Nomination,
    Support,
)
from server.people.models import (
    Consent,
    Guardian,
    SchoolClass,
    StaffMember,
    Student,
    StudentGuardian,
)
from server.people.service import add_school, has_consent

SECOND_SCHOOL = "DEMO-CITY"
SECOND_REGION = "DEMO-REGION-2"
CITY_PUPILS = [
    ("Сейітова", "Аяулым", "large_family"),
    ("Бекова", "Мадина", "targeted_assistance"),
    ("Тұрсынов", "Арман", None),
]


def _consent(session: Session, student_pk: int, kind: ConsentKind, day: dt.date, now: int) -> None:
    session.add(
        Consent(
            student_pk=student_pk,
            kind=kind.value,
            granted=True,
            given_by="Parent (demo)",
            document=f"demo-{kind.value}-{student_pk}",
            signed_on=day,
            recorded_at_ms=now,
        )
    )


def _roadmap(
    session: Session,
    student: Student,
    teacher: StaffMember,
    today: dt.date,
    now: int,
    n: int,
) -> None:
    """A nomination and a roadmap; ``n`` varies the plan from child to child."""
    d = dt.timedelta
    session.add(
        Nomination(
            student_pk=student.pk,
            school_id=student.school_id,
            basis="olympiad" if n % 2 == 0 else "teacher",
            subject=["Математика", "Физика", "Информатика"][n % 3],
            detail="Аудандық олимпиада" if n % 2 == 0 else "",
            level="district" if n % 2 == 0 else None,
            place=2 if n % 2 == 0 else None,
            teacher_pk=teacher.pk,
            nominated_on=today - d(days=120),
            recorded_at_ms=now,
        )
    )
    entry = GiftedEntry(
        student_pk=student.pk,
        school_id=student.school_id,
        entered_on=today - d(days=100),
        abilities=["Математикалық ойлау", "Зерттеу жұмысы", "Бағдарламалау"][n % 3],
        goals="Облыстық олимпиадада жүлделі орын",
        created_at_ms=now,
        updated_at_ms=now,
    )
    session.add(entry)
    session.flush()
    session.add_all(
        [
            Activity(
                entry_pk=entry.pk,
                kind="olympiad",
                title="Облыстық пән олимпиадасы",
                subject=["Математика", "Физика", "Информатика"][n % 3],
                level="region",
                planned_from=today - d(days=40),
                planned_to=today - d(days=39),
                status="done",
                done_on=today - d(days=39),
                result="Жүлделі орын" if n != 1 else "Қатысты",
                place=(n % 3) + 1 if n != 1 else None,
                teacher_pk=teacher.pk,
                created_at_ms=now,
            ),
            Activity(
                entry_pk=entry.pk,
                kind="technopark",
                title="Технопарк: робототехника",
                planned_from=today - d(days=20),
                planned_to=today - d(days=10),
                status="planned" if n == 2 else "done",
                done_on=None if n == 2 else today - d(days=10),
                created_at_ms=now,
            ),
            Activity(
                entry_pk=entry.pk,
                kind="summer_school" if n % 2 else "camp",
                title="Жазғы ғылыми мектеп" if n % 2 else "Дарынды балалар лагері",
                planned_from=today + d(days=3 + n),
                planned_to=today + d(days=13 + n),
                created_at_ms=now,
            ),
            Support(
                entry_pk=entry.pk,
                kind="stipend",
                title="Әкімнің стипендиясы",
                planned_on=today - d(days=30),
                planned_tiyn=2_500_000,
                paid_on=today - d(days=28),
                paid_tiyn=2_500_000,
                created_at_ms=now,
            ),
            Support(
                entry_pk=entry.pk,
                kind="trip",
                title="Олимпиадаға сапар",
                planned_on=today + d(days=5),
                planned_tiyn=9_000_000 + 1_000_000 * n,
                created_at_ms=now,
            ),
        ]
    )


def seed_demo(
    session: Session, school: str, today: dt.date, password: str
) -> list[tuple[str, Role, str]]:
    """Fill the registry (idempotent per database); returns the accounts added as
    (login, role, what)."""
    accounts = [("gifted", Role.GIFTED_COORDINATOR, f"gifted-children coordinator of {school}")]
    if session.execute(select(GiftedEntry.pk)).first() is not None:
        return accounts
    now = now_ms()
    for school_id, locality in ((school, "rural"), (SECOND_SCHOOL, "urban")):
        if school_id == SECOND_SCHOOL:
            add_school(
                session,
                SECOND_SCHOOL,
                "Qaqpa demo city school No. 2",
                region=SECOND_REGION,
                region_name="Demo region 2",
            )
        session.add(GiftedSchool(school_id=school_id, locality=locality, updated_at_ms=now))
    teacher = StaffMember(school_id=school, ref="gifted-teacher-1", full_name="Гүлнар Оспанова")
    city_teacher = StaffMember(
        school_id=SECOND_SCHOOL, ref="gifted-teacher-2", full_name="Ержан Мұқанов"
    )
    session.add_all([teacher, city_teacher])
    session.flush()
    # The demo school: three active children with a data consent.
    rural = [
        s
        for s in session.scalars(
            select(Student)
            .where(Student.school_id == school, Student.active.is_(True))
            .order_by(Student.pk)
            .limit(12)
        )
        if has_consent(session, s.pk, ConsentKind.DATA)
    ][:3]
    for n, st in enumerate(rural):
        _consent(session, st.pk, ConsentKind.GIFTED, today - dt.timedelta(days=110), now)
        _roadmap(session, st, teacher, today, now, n)
    # The city school: one class, three children with consents, two of them in the decree's
    # family groups through their social categories.
    cls = SchoolClass(school_id=SECOND_SCHOOL, name="9А", grade=9, shift=1)
    session.add(cls)
    session.flush()
    for n, (surname, given, category) in enumerate(CITY_PUPILS):
        st = Student(
            ref=f"{SECOND_SCHOOL.lower()}-{n + 1}",
            school_id=SECOND_SCHOOL,
            class_pk=cls.pk,
            surname=surname,
            given_name=given,
            birth_date=dt.date(today.year - 15, 3 + n, 10),
            created_at_ms=now,
            updated_at_ms=now,
        )
        session.add(st)
        session.flush()
        for kind in (ConsentKind.DATA, ConsentKind.NOTIFICATIONS, ConsentKind.GIFTED):
            _consent(session, st.pk, kind, today - dt.timedelta(days=110), now)
        g = Guardian(full_name=f"{surname} (parent)", phone=f"+7702000000{n}")
        session.add(g)
        session.flush()
        session.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
        if category is not None:
            session.add(
                StudentCategory(
                    student_pk=st.pk,
                    school_id=SECOND_SCHOOL,
                    code=category,
                    document=f"demo-certificate-{n + 1}",
                    valid_from=dt.date(today.year, 1, 1),
                    valid_to=dt.date(today.year, 12, 31),
                    recorded_at_ms=now,
                )
            )
        session.flush()
        _roadmap(session, st, city_teacher, today, now, n)
    if session.execute(select(User.pk).where(User.login == "gifted")).first() is None:
        user = create_user(
            session,
            "gifted",
            "Demo gifted",
            [Grant(Role.GIFTED_COORDINATOR, school_id=school)],
            password=password,
        )
        user.must_change_password = False
    session.flush()
    return accounts
