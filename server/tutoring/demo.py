"""The demo's tutoring project: seed 001's "Birgemiz: Bilim", rebuilt as the spreadsheets a
project keeps and loaded through the real import, so that ``qaqpa server tutoring report
--project birgemiz-bilim`` prints seed 001's table from the module's own records.

The records are invented (pseudonymous student codes, no names); their counts and means are the
seed's: per direction hours, volunteers, students and the mean scores before and after.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Role
from server.accounts.models import User
from server.accounts.service import create_user
from server.clock import now_ms
from server.spreadsheets import safe_cell

from .models import (
    Assignment,
    Attendance,
    Conflict,
    CouncilMember,
    CouncilScore,
    Group,
    GroupMember,
    Lesson,
    Project,
    ProjectStatus,
    TestResult,
    Volunteer,
    VolunteerStatus,
)
from .service import (
    DEFAULT_TIMES,
    ImportResult,
    applications_of,
    criteria_of,
    decide_selection,
    directions_of,
    get_project,
    import_project,
)

PROJECT = "birgemiz-bilim"
NAME = "Birgemiz: Bilim"
DISTRICTS = (
    "Ақжайық",
    "Бәйтерек",
    "Бөкей ордасы",
    "Бөрлі",
    "Жаңақала",
    "Жәнібек",
    "Қаратөбе",
    "Казталов",
    "Сырым",
    "Тасқала",
    "Теректі",
    "Шыңғырлау",
)
UNT_SUBJECTS = (
    "Математика",
    "Математикалық сауаттылық",
    "Оқу сауаттылығы",
    "Қазақстан тарихы",
    "Дүниежүзі тарихы",
    "Физика",
    "Химия",
    "Биология",
    "География",
    "Ағылшын тілі",
    "Информатика",
    "Қазақ әдебиеті",
    "Құқық негіздері",
)
OLYMPIAD_SUBJECTS = (
    "Математика",
    "Физика",
    "Химия",
    "Биология",
    "Информатика",
    "География",
    "Тарих",
    "Ағылшын тілі",
    "Ғылыми жоба",
)


@dataclass(frozen=True)
class SeedDirection:
    name: str
    hours: int
    volunteers: int
    students: int
    before: int  # mean score of the paired students, percent
    after: int
    subjects: Sequence[str] = ()


# Seed 001's table (DOMAIN.md section 3).
SEED_TABLE = (
    SeedDirection("Ағылшын тілі", 48, 21, 378, 46, 75),
    SeedDirection("Компьютерлік сауаттылық", 8, 20, 258, 68, 93),
    SeedDirection("ҰБТ-ға дайындық", 48, 25, 469, 70, 85, UNT_SUBJECTS),
    SeedDirection("Құқықтық сауаттылық", 8, 27, 385, 66, 90),
    SeedDirection(
        "Олимпиадалар мен ғылыми жобаларға дайындық", 48, 17, 128, 56, 81, OLYMPIAD_SUBJECTS
    ),
)
LOW_INCOME = 319  # of 1,618 students


def _fix_sum(values: list[int], target: int, rng: random.Random, lo: int, hi: int) -> None:
    """Nudges values by one point (within [lo, hi]) until they sum to ``target``."""
    diff = target - sum(values)
    while diff:
        i = rng.randrange(len(values))
        step = 1 if diff > 0 else -1
        if lo <= values[i] + step <= hi:
            values[i] += step
            diff -= step


def _csv(rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[safe_cell(c) for c in r] for r in rows])
    return buf.getvalue().encode()


def project_files(seed: int = 1) -> dict[str, tuple[str, bytes]]:
    """The three spreadsheets of the seed project (CSV)."""
    rng = random.Random(seed)
    directions: list[list[object]] = [["direction", "hours", "subject"]]
    assignments: list[list[object]] = [
        ["volunteer", "direction", "subject", "training_pre", "training_post"]
    ]
    tests: list[list[object]] = [
        ["student", "direction", "test", "score", "district", "grade", "low_income"]
    ]
    total = sum(d.students for d in SEED_TABLE)
    low = set(rng.sample(range(total), LOW_INCOME))
    v = s = 0
    for d in SEED_TABLE:
        for subject in d.subjects or ("",):
            directions.append([d.name, d.hours, subject])
        for i in range(d.volunteers):
            v += 1
            subject = d.subjects[i % len(d.subjects)] if d.subjects else ""
            trained = rng.randint(45, 75)  # the volunteer's own training test
            assignments.append(
                [f"V{v:03d}", d.name, subject, trained, min(100, trained + rng.randint(10, 30))]
            )
        # about 2 % took only the pre-test and 1 % only the post-test
        only_pre = d.students // 50
        only_post = d.students // 100
        paired = d.students - only_pre - only_post
        pre = [min(100, max(5, round(rng.gauss(d.before, 12)))) for _ in range(paired)]
        _fix_sum(pre, d.before * paired, rng, 5, 100)
        post = [min(100, max(0, p + round(rng.gauss(d.after - d.before, 8)))) for p in pre]
        _fix_sum(post, d.after * paired, rng, 0, 100)
        for i in range(d.students):
            code = f"BB-{s:04d}"
            extra = [DISTRICTS[s % len(DISTRICTS)], 8 + s % 4, "yes" if s in low else "no"]
            if i < paired:
                tests.append([code, d.name, "pre", pre[i], *extra])
                tests.append([code, d.name, "post", post[i], *extra])
            elif i < paired + only_pre:
                tests.append(
                    [code, d.name, "pre", min(100, max(0, round(rng.gauss(d.before, 12)))), *extra]
                )
            else:
                tests.append(
                    [code, d.name, "post", min(100, max(0, round(rng.gauss(d.after, 10)))), *extra]
                )
            s += 1
    return {
        "directions": ("directions.csv", _csv(directions)),
        "assignments": ("assignments.csv", _csv(assignments)),
        "tests": ("tests.csv", _csv(tests)),
    }


PLAN = {
    "meetings": 36,
    "people_reached": 698,
    "survey_answers": 2600,
    "volunteers_selected": 110,
    "students_taught": 1500,
    "low_income_students": 300,
    "awards": 35,
}
FACTS = {
    "meetings": 36,
    "people_reached": 698,
    "survey_answers": 2641,
    "applicants": 203,
    "volunteers_selected": 110,
    "students_taught": 1618,
    "low_income_students": LOW_INCOME,
    "exam_takers": 227,
    "exam_grants": 98,
    "awards": 35,
}


COUNCIL = (
    "Council Member A",
    "Council Member B",
    "Council Member C",
    "Council Member D",
    "Council Member E",
)
APPLICANTS = 203  # "200+" applied; the council chose 110
DEMO_ACCOUNTS = (
    ("tutoring", Role.TUTORING_COORDINATOR, "tutoring project coordinator"),
    ("tutor", Role.VOLUNTEER, "volunteer tutor V001 (attendance journal)"),
    ("council", Role.COUNCIL_MEMBER, "member of the expert council"),
)


def seed_demo(
    db: Session, *, region: str | None = None, password: str | None = None
) -> ImportResult | None:
    """Loads the seed project once (None when it is there already), with its council and, given
    a ``password``, the accounts of DEMO_ACCOUNTS. Caller commits."""
    if get_project(db, PROJECT) is not None:
        return None
    result = import_project(
        db,
        None,
        PROJECT,
        project_files(),
        name=NAME,
        status=ProjectStatus.FINISHED,
        region_id=region,
    )
    if isinstance(result, list):  # the demo's own files: a problem is a bug here
        raise RuntimeError(f"the demo tutoring files were refused: {result[:3]}")
    project = get_project(db, PROJECT)
    assert project is not None
    project.plan = dict(PLAN)
    project.facts = dict(FACTS)
    _groups_and_journals(db, project)
    member_pks = _council(db, project)
    if password is not None:
        _accounts(db, project, region, password, member_pks[0])
    return result


def _council(db: Session, project: Project, seed: int = 3) -> list[int]:
    """Five members; 93 more applicants; every member scores every application on the published
    criteria (the 110 selected higher); member B declares one conflict of interest; the
    selection is decided (110 places) and kept as the protocol."""
    rng = random.Random(seed)
    now = now_ms()
    members = [CouncilMember(project_pk=project.pk, full_name=n) for n in COUNCIL]
    db.add_all(members)
    known = applications_of(db, project)
    extra = [
        Volunteer(
            project_pk=project.pk,
            code=f"A{i:03d}",
            district=DISTRICTS[i % len(DISTRICTS)],
            created_at_ms=now,
        )
        for i in range(1, APPLICANTS - len(known) + 1)
    ]
    db.add_all(extra)
    db.flush()
    criteria = criteria_of(db, project)
    rows = []
    for v in [*known, *extra]:
        lo, hi = (7, 10) if v.status == VolunteerStatus.SELECTED else (2, 6)
        for m in members:
            for c in criteria:
                rows.append(
                    {
                        "volunteer_pk": v.pk,
                        "member_pk": m.pk,
                        "criterion_pk": c.pk,
                        "score": rng.randint(lo, hi),
                        "at_ms": now,
                    }
                )
    db.execute(insert(CouncilScore), rows)
    db.add(
        Conflict(
            volunteer_pk=known[0].pk,
            member_pk=members[1].pk,
            reason="a relative of the applicant",
            at_ms=now,
        )
    )
    db.flush()
    decide_selection(db, None, project, 110, dt.date(2026, 2, 20))
    return [m.pk for m in members]


def _accounts(
    db: Session, project: Project, region: str | None, password: str, member_pk: int
) -> None:
    for login, role, _what in DEMO_ACCOUNTS:
        if db.execute(select(User.pk).where(User.login == login)).first() is not None:
            continue
        grant = Grant(role, region_id=region) if role is Role.TUTORING_COORDINATOR else Grant(role)
        user = create_user(db, login, f"Demo {login}", [grant], password=password)
        user.must_change_password = False
        if role is Role.VOLUNTEER:
            v = db.execute(
                select(Volunteer).where(
                    Volunteer.project_pk == project.pk, Volunteer.code == "V001"
                )
            ).scalar_one()
            v.user_pk = user.pk
        elif role is Role.COUNCIL_MEMBER:
            db.get_one(CouncilMember, member_pk).user_pk = user.pk
    db.flush()


def _groups_and_journals(db: Session, project: Project, seed: int = 2) -> None:
    """One group per volunteer (their direction and subject), the direction's students dealt
    round-robin into its groups, a session every week (two hours each, up to the direction's
    hours) and the attendance marks of each session."""
    rng = random.Random(seed)
    start = dt.date(2026, 3, 2)
    for d in directions_of(db, project.pk):
        assigned = db.execute(
            select(Assignment.volunteer_pk, Assignment.subject_pk)
            .where(Assignment.direction_pk == d.pk)
            .order_by(Assignment.volunteer_pk)
        ).all()
        students = list(
            db.execute(
                select(TestResult.participant_pk)
                .where(TestResult.direction_pk == d.pk)
                .distinct()
                .order_by(TestResult.participant_pk)
            ).scalars()
        )
        groups = []
        for i, (volunteer_pk, subject_pk) in enumerate(assigned):
            g = Group(
                direction_pk=d.pk,
                subject_pk=subject_pk,
                volunteer_pk=volunteer_pk,
                name=f"{d.name[:90]} {i + 1}",
                slot=rng.choice(DEFAULT_TIMES),
            )
            db.add(g)
            groups.append(g)
        db.flush()
        members: dict[int, list[int]] = {g.pk: [] for g in groups}
        for i, participant in enumerate(students):
            members[groups[i % len(groups)].pk].append(participant)
        db.execute(
            insert(GroupMember),
            [{"group_pk": g, "participant_pk": p} for g, ps in members.items() for p in ps],
        )
        for g in groups:
            rate = rng.uniform(0.7, 0.97)
            lessons = [
                Lesson(group_pk=g.pk, held_on=start + dt.timedelta(weeks=w), hours=2)
                for w in range(d.hours // 2)
            ]
            db.add_all(lessons)
            db.flush()
            rows = [
                {
                    "session_pk": lesson.pk,
                    "participant_pk": p,
                    "present": rng.random() < rate,
                    "marked_by": None,
                    "marked_at_ms": 0,
                }
                for lesson in lessons
                for p in members[g.pk]
            ]
            if rows:
                db.execute(insert(Attendance), rows)
    db.flush()
