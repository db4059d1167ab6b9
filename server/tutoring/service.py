"""Tutoring service functions: the caller's session, the caller commits.

- ``import_project``: a project's spreadsheets in one transaction, or nothing (every problem
  returned as (file, line, column, reason));
- ``growth_report``: the growth table from the module's own records;
- ``enrol_student``: a live project takes a roster student only with the tutoring consent;
  ``withdraw_tutoring`` (called by the consent ledger on withdrawal) removes what it covered;
- ``course_results_for_student``: what the gifted-children registry shows on a roadmap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import now_ms
from server.people.models import Consent, Student
from server.people.service import has_consent

from . import calc
from .calc import CourseResult, DirectionFigures, GrowthRow, Score
from .models import (
    Assignment,
    Attendance,
    Direction,
    Group,
    GroupMember,
    Participant,
    Project,
    ProjectStatus,
    Subject,
    TestResult,
    Volunteer,
    VolunteerStatus,
)
from .rules import ImportProblem, ProjectFiles, check_files, key


class TutoringError(ValueError):
    """A request the module refuses; ``reason`` says why (English, for the CLI and logs)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    project_pk: int
    directions: int
    subjects: int
    volunteers: int
    assignments: int
    students: int
    tests: int


def get_project(db: Session, code: str) -> Project | None:
    return db.execute(select(Project).where(Project.code == code)).scalar_one_or_none()


def consented_refs(db: Session) -> frozenset[str]:
    """Refs of active roster students whose current tutoring consent is given."""
    newest = (
        select(Consent.student_pk, func.max(Consent.pk).label("pk"))
        .where(Consent.kind == ConsentKind.TUTORING.value)
        .group_by(Consent.student_pk)
        .subquery()
    )
    rows = db.execute(
        select(Student.ref)
        .join(newest, newest.c.student_pk == Student.pk)
        .join(Consent, Consent.pk == newest.c.pk)
        .where(Consent.granted.is_(True), Student.active.is_(True))
    ).scalars()
    return frozenset(rows)


def import_project(
    db: Session,
    who: Principal | None,
    code: str,
    files: Mapping[str, tuple[str, bytes]],
    *,
    name: str = "",
    status: str = ProjectStatus.FINISHED,
    region_id: str | None = None,
) -> ImportResult | list[ImportProblem]:
    """Loads a new project from its files, or returns every problem and changes nothing."""
    if status not in (ProjectStatus.LIVE, ProjectStatus.FINISHED):
        return [ImportProblem("", 0, "", "status is live or finished")]
    if not code or len(code) > 64:
        return [ImportProblem("", 0, "", "a project code of 1-64 characters")]
    if get_project(db, code) is not None:
        return [ImportProblem("", 0, "", f"project {code} exists already")]
    roster = consented_refs(db) if status == ProjectStatus.LIVE else None
    checked = check_files(files, roster_refs=roster)
    if checked.problems:
        return checked.problems
    return _store(db, who, code, name or code, status, region_id, checked)


def _store(
    db: Session,
    who: Principal | None,
    code: str,
    name: str,
    status: str,
    region_id: str | None,
    checked: ProjectFiles,
) -> ImportResult:
    now = now_ms()
    project = Project(
        code=code, name=name[:300], status=status, region_id=region_id, created_at_ms=now
    )
    db.add(project)
    db.flush()
    directions: dict[str, Direction] = {}
    subjects: dict[tuple[str, str], Subject] = {}
    for i, d in enumerate(checked.directions):
        row = Direction(project_pk=project.pk, code=key(d.name)[:64], name=d.name, hours=d.hours)
        row.position = i
        db.add(row)
        db.flush()
        directions[key(d.name)] = row
        for s in d.subjects:
            sub = Subject(direction_pk=row.pk, name=s)
            db.add(sub)
            subjects[(key(d.name), key(s))] = sub
    db.flush()
    volunteers: dict[str, Volunteer] = {}
    for a in checked.assignments:
        v = volunteers.get(a.volunteer)
        if v is None:
            v = Volunteer(
                project_pk=project.pk,
                code=a.volunteer,
                full_name=a.name,
                status=VolunteerStatus.SELECTED,
                created_at_ms=now,
            )
            db.add(v)
            db.flush()
            volunteers[a.volunteer] = v
        assigned = subjects.get((key(a.direction), key(a.subject))) if a.subject else None
        db.add(
            Assignment(
                volunteer_pk=v.pk,
                direction_pk=directions[key(a.direction)].pk,
                subject_pk=assigned.pk if assigned is not None else None,
            )
        )
    students: dict[str, Participant] = {}
    refs: dict[str, int] = {}
    if status == ProjectStatus.LIVE and checked.tests:
        wanted = {t.student for t in checked.tests}
        refs = dict(
            db.execute(select(Student.ref, Student.pk).where(Student.ref.in_(wanted))).all()
        )
    for t in checked.tests:
        p = students.get(t.student)
        if p is None:
            p = Participant(
                project_pk=project.pk,
                code=t.student,
                student_pk=refs.get(t.student),
                district=t.district[:100],
                grade=t.grade,
                low_income=t.low_income,
                created_at_ms=now,
            )
            db.add(p)
            db.flush()
            students[t.student] = p
        db.add(
            TestResult(
                participant_pk=p.pk,
                direction_pk=directions[key(t.direction)].pk,
                phase=t.phase,
                score_centi=t.score_centi,
            )
        )
    db.flush()
    audit(
        db,
        who,
        "change",
        "tutoring_import",
        summary=(
            f"project {code} imported: {len(directions)} directions, {len(volunteers)} "
            f"volunteers, {len(students)} students, {len(checked.tests)} tests"
        ),
    )
    return ImportResult(
        project.pk,
        len(directions),
        len(subjects),
        len(volunteers),
        len(checked.assignments),
        len(students),
        len(checked.tests),
    )


def directions_of(db: Session, project_pk: int) -> list[Direction]:
    return list(
        db.execute(
            select(Direction)
            .where(Direction.project_pk == project_pk)
            .order_by(Direction.position, Direction.pk)
        ).scalars()
    )


def growth_report(db: Session, project: Project) -> list[GrowthRow]:
    """The growth table of a project from its records."""
    directions = directions_of(db, project.pk)
    volunteers = dict(
        db.execute(
            select(Assignment.direction_pk, func.count(func.distinct(Assignment.volunteer_pk)))
            .join(Direction, Direction.pk == Assignment.direction_pk)
            .where(Direction.project_pk == project.pk)
            .group_by(Assignment.direction_pk)
        ).all()
    )
    figures = [DirectionFigures(d.name, d.hours, int(volunteers.get(d.pk, 0))) for d in directions]
    name_of = {d.pk: d.name for d in directions}
    scores = [
        Score(str(participant), name_of[direction], phase, centi)
        for participant, direction, phase, centi in db.execute(
            select(
                TestResult.participant_pk,
                TestResult.direction_pk,
                TestResult.phase,
                TestResult.score_centi,
            )
            .join(Direction, Direction.pk == TestResult.direction_pk)
            .where(Direction.project_pk == project.pk)
        ).all()
    ]
    return calc.growth_table(figures, scores)


# ------------------------------------------------------------------------ consent and roster


def enrol_student(
    db: Session, who: Principal | None, project: Project, student: Student
) -> Participant:
    """A live project takes a roster student only with the parent's tutoring consent."""
    if project.status != ProjectStatus.LIVE:
        raise TutoringError("a finished project enrols nobody")
    if not student.active or not has_consent(db, student.pk, ConsentKind.TUTORING):
        raise TutoringError("no tutoring consent of the parent")
    existing = db.execute(
        select(Participant).where(
            Participant.project_pk == project.pk, Participant.student_pk == student.pk
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    p = Participant(
        project_pk=project.pk,
        code=student.ref,
        student_pk=student.pk,
        created_at_ms=now_ms(),
    )
    db.add(p)
    db.flush()
    audit(
        db,
        who,
        "change",
        "tutoring_participant",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"enrolled in tutoring project {project.code}",
    )
    return p


def withdraw_tutoring(db: Session, student_pk: int) -> int:
    """The tutoring consent was withdrawn: the student's participation, tests, attendance and
    group places go (every project). Returns how many rows were removed."""
    pks = list(
        db.execute(select(Participant.pk).where(Participant.student_pk == student_pk)).scalars()
    )
    if not pks:
        return 0
    removed = 0
    for table, column in (
        (TestResult, TestResult.participant_pk),
        (Attendance, Attendance.participant_pk),
        (GroupMember, GroupMember.participant_pk),
    ):
        result = db.execute(delete(table).where(column.in_(pks)))
        removed += int(getattr(result, "rowcount", 0) or 0)
    result = db.execute(delete(Participant).where(Participant.pk.in_(pks)))
    removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


def course_results_for_student(db: Session, student_pk: int) -> list[CourseResult]:
    """A roster student's tutoring results, one per (project, direction) taken, for the
    gifted-children registry's roadmap. Empty without a current tutoring consent."""
    if not has_consent(db, student_pk, ConsentKind.TUTORING):
        return []
    rows = db.execute(
        select(
            Participant.pk,
            Direction.pk,
            Direction.name,
            Direction.hours,
            TestResult.phase,
            TestResult.score_centi,
        )
        .join(TestResult, TestResult.participant_pk == Participant.pk)
        .join(Direction, Direction.pk == TestResult.direction_pk)
        .where(Participant.student_pk == student_pk)
        .order_by(Direction.project_pk, Direction.position, Direction.pk)
    ).all()
    found: dict[tuple[int, int], dict[str, object]] = {}
    for participant, direction, name, hours, phase, centi in rows:
        item = found.setdefault((participant, direction), {"name": name, "hours": hours})
        item[phase] = centi / 100
    subjects = _subjects_of(db, student_pk)
    out: list[CourseResult] = []
    for (_p, direction), item in found.items():
        before = item.get(calc.PRE)
        after = item.get(calc.POST)
        out.append(
            CourseResult(
                direction=str(item["name"]),
                subject=subjects.get(direction),
                hours=int(str(item["hours"])),
                before=float(str(before)) if before is not None else None,
                after=float(str(after)) if after is not None else None,
            )
        )
    return out


def _subjects_of(db: Session, student_pk: int) -> dict[int, str]:
    """direction pk -> the subject of the student's group in it (if the group has one)."""
    rows = db.execute(
        select(Group.direction_pk, Subject.name)
        .join(GroupMember, GroupMember.group_pk == Group.pk)
        .join(Participant, Participant.pk == GroupMember.participant_pk)
        .join(Subject, Subject.pk == Group.subject_pk)
        .where(Participant.student_pk == student_pk)
    ).all()
    return dict(rows)
