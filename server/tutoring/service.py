"""Tutoring service functions: the caller's session, the caller commits.

- ``import_project``: a project's spreadsheets in one transaction, or nothing (every problem
  returned as (file, line, column, reason));
- ``growth_report``: the growth table from the module's own records;
- ``enrol_student``: a live project takes a roster student only with the tutoring consent;
  ``withdraw_tutoring`` (called by the consent ledger on withdrawal) removes what it covered;
- ``course_results_for_student``: what the gifted-children registry shows on a roadmap.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import PERMISSIONS, SCOPE_OF_ROLE, Principal, Role
from server.audit.service import audit
from server.clock import now_ms
from server.people.models import Consent, Student
from server.people.service import has_consent
from server.reports.export import Sheet, to_pdf

from . import calc
from .calc import CourseResult, DirectionFigures, GrowthRow, Score
from .council import (
    AWARD_CRITERIA,
    AwardRank,
    CriterionDef,
    MemberScore,
    Ranked,
    VolunteerMetrics,
    check_score,
    rank_applications,
    rank_awards,
)
from .matching import Learner, Tutor, match_students
from .models import (
    Assignment,
    Attendance,
    Award,
    Conflict,
    CouncilMember,
    CouncilScore,
    Criterion,
    Decision,
    Direction,
    Group,
    GroupMember,
    Lesson,
    Participant,
    Project,
    ProjectStatus,
    Subject,
    Survey,
    SurveyAnswer,
    SurveyLink,
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
                training_pre_centi=checked.training.get(a.volunteer, (None, None))[0],
                training_post_centi=checked.training.get(a.volunteer, (None, None))[1],
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
        if t.student not in students:
            students[t.student] = Participant(
                project_pk=project.pk,
                code=t.student,
                student_pk=refs.get(t.student),
                district=t.district[:100],
                grade=t.grade,
                low_income=t.low_income,
                created_at_ms=now,
            )
    db.add_all(students.values())
    db.flush()
    if checked.tests:
        db.execute(
            insert(TestResult),
            [
                {
                    "participant_pk": students[t.student].pk,
                    "direction_pk": directions[key(t.direction)].pk,
                    "phase": t.phase,
                    "score_centi": t.score_centi,
                }
                for t in checked.tests
            ],
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
    db: Session,
    who: Principal | None,
    project: Project,
    student: Student,
    *,
    directions: list[str] | None = None,
    slots: list[str] | None = None,
    language: str = "kk",
    district: str = "",
) -> Participant:
    """A live project takes a roster student only with the parent's tutoring consent, with
    the directions (codes) asked for and the time slots the student can attend."""
    if project.status != ProjectStatus.LIVE:
        raise TutoringError("a finished project enrols nobody")
    if not student.active or not has_consent(db, student.pk, ConsentKind.TUTORING):
        raise TutoringError("no tutoring consent of the parent")
    existing = db.execute(
        select(Participant).where(
            Participant.project_pk == project.pk, Participant.student_pk == student.pk
        )
    ).scalar_one_or_none()
    codes = {d.code for d in directions_of(db, project.pk)}
    if directions is not None and not set(directions) <= codes:
        raise TutoringError("not a direction of this project")
    if slots is not None and not set(slots) <= set(DEFAULT_TIMES):
        raise TutoringError("not a time slot of the survey")
    if existing is not None:
        if directions is not None:
            existing.directions = sorted(set(existing.directions or []) | set(directions))
        if slots is not None:
            existing.slots = sorted(set(slots))
        return existing
    p = Participant(
        project_pk=project.pk,
        code=student.ref,
        student_pk=student.pk,
        directions=sorted(set(directions or [])),
        slots=sorted(set(slots or [])),
        language=language[:8],
        district=district[:100],
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


# ------------------------------------------------------------------------------ visibility


def may_see_project(who: Principal, perm: str, project: Project) -> bool:
    """The operator everywhere; a regional operator or coordinator in their region's projects;
    a volunteer or council member (scope "own") in every project, narrowed to their own
    groups and scores by the functions that serve them."""
    roles = PERMISSIONS[perm]
    for g in who.grants:
        if g.role not in roles:
            continue
        scope = SCOPE_OF_ROLE[g.role]
        if scope in ("all", "own") or (scope == "region" and g.region_id == project.region_id):
            return True
    return False


def visible_projects(db: Session, who: Principal, perm: str) -> list[Project]:
    rows = db.execute(select(Project).order_by(Project.code)).scalars()
    return [p for p in rows if may_see_project(who, perm, p)]


def pick_project(
    db: Session, who: Principal, perm: str, code: str | None
) -> tuple[list[Project], Project | None]:
    """The projects this user sees and the chosen one (the first when none is asked for;
    None when an asked-for code is not visible)."""
    projects = visible_projects(db, who, perm)
    if code:
        return projects, next((p for p in projects if p.code == code), None)
    return projects, projects[0] if projects else None


# ----------------------------------------------------------------------------- directions


@dataclass(frozen=True, slots=True)
class DirectionView:
    direction: Direction
    subjects: list[str]
    volunteers: int
    students: int


def direction_views(db: Session, project: Project) -> list[DirectionView]:
    out = []
    for d in directions_of(db, project.pk):
        subjects = list(
            db.execute(
                select(Subject.name).where(Subject.direction_pk == d.pk).order_by(Subject.pk)
            ).scalars()
        )
        volunteers = db.scalar(
            select(func.count(func.distinct(Assignment.volunteer_pk))).where(
                Assignment.direction_pk == d.pk
            )
        )
        students = db.scalar(
            select(func.count(func.distinct(TestResult.participant_pk))).where(
                TestResult.direction_pk == d.pk
            )
        )
        out.append(DirectionView(d, subjects, int(volunteers or 0), int(students or 0)))
    return out


def volunteers_of(db: Session, project: Project) -> list[tuple[Volunteer, list[str]]]:
    """Volunteers with the names of the directions they are assigned to."""
    vols = list(
        db.execute(
            select(Volunteer).where(Volunteer.project_pk == project.pk).order_by(Volunteer.code)
        ).scalars()
    )
    names: dict[int, list[str]] = {}
    for vpk, name in db.execute(
        select(Assignment.volunteer_pk, Direction.name)
        .join(Direction, Direction.pk == Assignment.direction_pk)
        .where(Direction.project_pk == project.pk)
        .order_by(Direction.position)
    ).all():
        if name not in names.setdefault(vpk, []):
            names[vpk].append(name)
    return [(v, names.get(v.pk, [])) for v in vols]


# ---------------------------------------------------------------- groups, sessions, journal


@dataclass(frozen=True, slots=True)
class GroupView:
    group: Group
    direction: str
    subject: str | None
    volunteer: str
    members: int
    sessions: int


def _group_views(db: Session, groups: list[Group]) -> list[GroupView]:
    out = []
    for g in groups:
        d = db.get_one(Direction, g.direction_pk)
        s = db.get(Subject, g.subject_pk) if g.subject_pk is not None else None
        v = db.get_one(Volunteer, g.volunteer_pk)
        members = db.scalar(
            select(func.count()).select_from(GroupMember).where(GroupMember.group_pk == g.pk)
        )
        lessons = db.scalar(select(func.count()).select_from(Lesson).where(Lesson.group_pk == g.pk))
        out.append(
            GroupView(
                g,
                d.name,
                s.name if s is not None else None,
                v.full_name or v.code,
                int(members or 0),
                int(lessons or 0),
            )
        )
    return out


def groups_of_project(db: Session, project: Project) -> list[GroupView]:
    groups = list(
        db.execute(
            select(Group)
            .join(Direction, Direction.pk == Group.direction_pk)
            .where(Direction.project_pk == project.pk)
            .order_by(Group.name)
        ).scalars()
    )
    return _group_views(db, groups)


def journal_groups(db: Session, who: Principal) -> list[GroupView]:
    """The groups whose journal this user keeps: a volunteer their own; a coordinator or the
    operator those of the projects they see."""
    if who.roles & {Role.OPERATOR, Role.TUTORING_COORDINATOR}:
        projects = visible_projects(db, who, "tutoring.journal")
        return [g for p in projects for g in groups_of_project(db, p)]
    groups = list(
        db.execute(
            select(Group)
            .join(Volunteer, Volunteer.pk == Group.volunteer_pk)
            .where(Volunteer.user_pk == who.user_pk)
            .order_by(Group.name)
        ).scalars()
    )
    return _group_views(db, groups)


def journal_group(db: Session, who: Principal, group_pk: int) -> Group | None:
    """A group this user keeps the journal of, or None (the route answers 404)."""
    return next((g.group for g in journal_groups(db, who) if g.group.pk == group_pk), None)


@dataclass(frozen=True, slots=True)
class MemberView:
    participant: Participant
    label: str  # a roster student's name, or the pseudonymous code


def group_members(db: Session, group: Group) -> list[MemberView]:
    rows = db.execute(
        select(Participant, Student)
        .join(GroupMember, GroupMember.participant_pk == Participant.pk)
        .outerjoin(Student, Student.pk == Participant.student_pk)
        .where(GroupMember.group_pk == group.pk)
        .order_by(Student.surname, Student.given_name, Participant.code)
    ).all()
    return [MemberView(p, st.full_name if st is not None else p.code) for p, st in rows]


def lessons_of(db: Session, group: Group) -> list[Lesson]:
    return list(
        db.execute(
            select(Lesson).where(Lesson.group_pk == group.pk).order_by(Lesson.held_on, Lesson.pk)
        ).scalars()
    )


def attendance_of(db: Session, lesson: Lesson) -> dict[int, bool]:
    return dict(
        db.execute(
            select(Attendance.participant_pk, Attendance.present).where(
                Attendance.session_pk == lesson.pk
            )
        ).all()
    )


def audit_journal_view(db: Session, who: Principal, members: list[MemberView], what: str) -> None:
    for m in members:
        if m.participant.student_pk is not None:
            audit(
                db,
                who,
                "view",
                "tutoring_journal",
                student_pk=m.participant.student_pk,
                summary=what,
            )


def add_lesson(
    db: Session,
    who: Principal,
    group: Group,
    held_on: dt.date,
    hours: int,
    topic: str,
    today: dt.date,
) -> Lesson:
    if held_on > today:
        raise TutoringError("a session cannot be in the future")
    if not 1 <= hours <= 8:
        raise TutoringError("hours of a session: 1-8")
    lesson = Lesson(
        group_pk=group.pk, held_on=held_on, hours=hours, topic=" ".join(topic.split())[:200]
    )
    db.add(lesson)
    db.flush()
    audit(
        db,
        who,
        "change",
        "tutoring_session",
        summary=f"session #{lesson.pk} of group #{group.pk} added",
    )
    return lesson


def mark_attendance(
    db: Session, who: Principal, lesson: Lesson, present: set[int]
) -> tuple[int, int]:
    """Records who was present (participant pks) and, for every other member, absent.
    Returns (present, absent). A pk that is not a member of the group is refused."""
    group = db.get_one(Group, lesson.group_pk)
    members = group_members(db, group)
    member_pks = {m.participant.pk for m in members}
    if not present <= member_pks:
        raise TutoringError("not a member of this group")
    now = now_ms()
    marked = attendance_of(db, lesson)
    for m in members:
        pk = m.participant.pk
        is_present = pk in present
        row = db.get(Attendance, (lesson.pk, pk))
        if row is None:
            db.add(
                Attendance(
                    session_pk=lesson.pk,
                    participant_pk=pk,
                    present=is_present,
                    marked_by=who.user_pk,
                    marked_at_ms=now,
                )
            )
        elif row.present != is_present:
            row.present = is_present
            row.marked_by = who.user_pk
            row.marked_at_ms = now
        if m.participant.student_pk is not None and marked.get(pk) != is_present:
            audit(
                db,
                who,
                "change",
                "tutoring_attendance",
                student_pk=m.participant.student_pk,
                summary=f"attendance of session #{lesson.pk} marked",
            )
    db.flush()
    return len(present), len(member_pks) - len(present)


# ------------------------------------------------------------------------------ the survey

DEFAULT_TIMES = ["mon-16", "tue-16", "wed-16", "thu-16", "fri-16", "sat-10", "sat-14", "sun-10"]
MAX_LINKS = 500


def ensure_survey(db: Session, project: Project) -> Survey:
    survey = db.execute(
        select(Survey).where(Survey.project_pk == project.pk).order_by(Survey.pk)
    ).scalar_one_or_none()
    if survey is None:
        survey = Survey(
            project_pk=project.pk,
            title=project.name,
            times=list(DEFAULT_TIMES),
            created_at_ms=now_ms(),
        )
        db.add(survey)
        db.flush()
    return survey


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_links(
    db: Session, who: Principal, survey: Survey, district: str, school: str, grade: int, count: int
) -> list[str]:
    """``count`` one-time links for one school's grade; the tokens are shown once (only their
    hashes are kept)."""
    district, school = " ".join(district.split()), " ".join(school.split())
    if not district or len(district) > 100:
        raise TutoringError("district: 1-100 characters")
    if not school or len(school) > 200:
        raise TutoringError("school: 1-200 characters")
    if not 1 <= grade <= 12:
        raise TutoringError("grade: 1-12")
    if not 1 <= count <= MAX_LINKS:
        raise TutoringError(f"links: 1-{MAX_LINKS}")
    now = now_ms()
    tokens = [secrets.token_urlsafe(24) for _ in range(count)]
    for t in tokens:
        db.add(
            SurveyLink(
                survey_pk=survey.pk,
                token_sha256=_token_hash(t),
                district=district,
                school=school,
                grade=grade,
                created_at_ms=now,
            )
        )
    db.flush()
    audit(db, who, "change", "tutoring_survey", summary=f"{count} survey links for grade {grade}")
    return tokens


def open_link(db: Session, token: str) -> tuple[SurveyLink, Survey] | None:
    """The unused link of this token with its survey, or None (unknown or used)."""
    if not 10 <= len(token) <= 100:
        return None
    link = db.execute(
        select(SurveyLink).where(SurveyLink.token_sha256 == _token_hash(token))
    ).scalar_one_or_none()
    if link is None or link.used_at_ms is not None:
        return None
    return link, db.get_one(Survey, link.survey_pk)


def survey_choices(db: Session, survey: Survey) -> tuple[list[Direction], list[str]]:
    directions = directions_of(db, survey.project_pk)
    subjects = sorted(
        set(
            db.execute(
                select(Subject.name)
                .join(Direction, Direction.pk == Subject.direction_pk)
                .where(Direction.project_pk == survey.project_pk)
            ).scalars()
        )
    )
    return directions, subjects


def answer_survey(
    db: Session, token: str, directions: list[str], subjects: list[str], times: list[str]
) -> None:
    """Records one anonymous answer and spends the link. Raises TutoringError for a used or
    unknown link or a choice not offered."""
    found = open_link(db, token)
    if found is None:
        raise TutoringError("this link was used or does not exist")
    link, survey = found
    offered_d, offered_s = survey_choices(db, survey)
    codes = {d.code for d in offered_d}
    if not directions or not set(directions) <= codes:
        raise TutoringError("choose at least one direction")
    if not set(subjects) <= set(offered_s) or not set(times) <= set(survey.times):
        raise TutoringError("a choice that is not offered")
    now = now_ms()
    link.used_at_ms = now
    db.add(
        SurveyAnswer(
            survey_pk=survey.pk,
            district=link.district,
            school=link.school,
            grade=link.grade,
            directions=sorted(set(directions)),
            subjects=sorted(set(subjects)),
            times=sorted(set(times)),
            at_ms=now,
        )
    )
    db.flush()


SURVEY_GROUPINGS = ("district", "school", "grade", "direction")


def survey_summary(db: Session, survey: Survey, by: str) -> list[tuple[str, int, dict[str, int]]]:
    """(group, answers, direction code -> answers choosing it) per district, school, grade or
    direction (then the group is the direction and the counts are by district)."""
    answers = list(
        db.execute(select(SurveyAnswer).where(SurveyAnswer.survey_pk == survey.pk)).scalars()
    )
    groups: dict[str, list[SurveyAnswer]] = {}
    if by == "direction":
        out = []
        for d in directions_of(db, survey.project_pk):
            chose = [a for a in answers if d.code in a.directions]
            counts: dict[str, int] = {}
            for a in chose:
                counts[a.district] = counts.get(a.district, 0) + 1
            out.append((d.name, len(chose), counts))
        return out
    for a in answers:
        groups.setdefault(str(getattr(a, by)), []).append(a)
    result = []
    for name in sorted(groups, key=lambda g: (len(g), g) if by == "grade" else (0, g)):
        counts = {}
        for a in groups[name]:
            for code in a.directions:
                counts[code] = counts.get(code, 0) + 1
        result.append((name, len(groups[name]), counts))
    return result


# ------------------------------------------------------------------------- expert council

N_ = str  # marks a message for the catalogue test; translated where shown

APPLICATION_CRITERIA = (
    ("motivation", N_("Motivation"), 2, 10),
    ("knowledge", N_("Knowledge of the subject"), 2, 10),
    ("experience", N_("Experience with students"), 1, 10),
    ("availability", N_("Time available"), 1, 10),
)


def criteria_of(db: Session, project: Project, kind: str = "application") -> list[Criterion]:
    rows = list(
        db.execute(
            select(Criterion)
            .where(Criterion.project_pk == project.pk, Criterion.kind == kind)
            .order_by(Criterion.pk)
        ).scalars()
    )
    if rows or kind != "application":
        return rows
    for code, name, weight, top in APPLICATION_CRITERIA:
        db.add(
            Criterion(
                project_pk=project.pk, kind=kind, code=code, name=name, weight=weight, max_score=top
            )
        )
    db.flush()
    return criteria_of(db, project, kind)


def member_of(db: Session, who: Principal, project: Project) -> CouncilMember | None:
    return db.execute(
        select(CouncilMember).where(
            CouncilMember.project_pk == project.pk, CouncilMember.user_pk == who.user_pk
        )
    ).scalar_one_or_none()


def applications_of(db: Session, project: Project) -> list[Volunteer]:
    return list(
        db.execute(
            select(Volunteer).where(Volunteer.project_pk == project.pk).order_by(Volunteer.code)
        ).scalars()
    )


def my_scores(db: Session, member: CouncilMember) -> dict[tuple[int, int], int]:
    """(volunteer pk, criterion pk) -> score, this member's own only."""
    return {
        (v, c): s
        for v, c, s in db.execute(
            select(CouncilScore.volunteer_pk, CouncilScore.criterion_pk, CouncilScore.score).where(
                CouncilScore.member_pk == member.pk
            )
        ).all()
    }


def my_conflicts(db: Session, member: CouncilMember) -> set[int]:
    return set(
        db.execute(select(Conflict.volunteer_pk).where(Conflict.member_pk == member.pk)).scalars()
    )


def save_scores(
    db: Session,
    who: Principal,
    member: CouncilMember,
    volunteer: Volunteer,
    scores: Mapping[int, int],
) -> None:
    """A member's own scores of one application on every published criterion."""
    if volunteer.project_pk != member.project_pk:
        raise TutoringError("not an application of this project")
    if volunteer.pk in my_conflicts(db, member):
        raise TutoringError("you declared a conflict of interest with this application")
    project = db.get_one(Project, member.project_pk)
    criteria = {c.pk: c for c in criteria_of(db, project)}
    if set(scores) != set(criteria):
        raise TutoringError("score every published criterion")
    for pk, score in scores.items():
        check_score(
            CriterionDef(criteria[pk].code, criteria[pk].weight, criteria[pk].max_score), score
        )
    now = now_ms()
    for pk, score in scores.items():
        row = db.execute(
            select(CouncilScore).where(
                CouncilScore.volunteer_pk == volunteer.pk,
                CouncilScore.member_pk == member.pk,
                CouncilScore.criterion_pk == pk,
            )
        ).scalar_one_or_none()
        if row is None:
            db.add(
                CouncilScore(
                    volunteer_pk=volunteer.pk,
                    member_pk=member.pk,
                    criterion_pk=pk,
                    score=score,
                    at_ms=now,
                )
            )
        else:
            row.score, row.at_ms = score, now
    db.flush()
    audit(db, who, "change", "tutoring_council", summary=f"application #{volunteer.pk} scored")


def declare_conflict(
    db: Session, who: Principal, member: CouncilMember, volunteer: Volunteer, reason: str
) -> None:
    reason = " ".join(reason.split())
    if not reason or len(reason) > 300:
        raise TutoringError("write the reason (1-300 characters)")
    if volunteer.project_pk != member.project_pk:
        raise TutoringError("not an application of this project")
    if volunteer.pk in my_conflicts(db, member):
        return
    db.add(Conflict(volunteer_pk=volunteer.pk, member_pk=member.pk, reason=reason, at_ms=now_ms()))
    db.flush()
    audit(
        db,
        who,
        "change",
        "tutoring_council",
        summary=f"conflict of interest with application #{volunteer.pk} declared",
    )


@dataclass(frozen=True, slots=True)
class RankedApplication:
    volunteer: Volunteer
    ranked: Ranked
    member_names: list[str]
    excluded_names: list[str]


def council_ranking(db: Session, project: Project, places: int) -> list[RankedApplication]:
    criteria = criteria_of(db, project)
    apps = applications_of(db, project)
    by_pk = {v.pk: v for v in apps}
    code_of = {c.pk: c.code for c in criteria}
    members = {
        m.pk: m
        for m in db.execute(
            select(CouncilMember).where(CouncilMember.project_pk == project.pk)
        ).scalars()
    }
    scores = [
        MemberScore(str(s.volunteer_pk), str(s.member_pk), code_of[s.criterion_pk], s.score)
        for s in db.execute(
            select(CouncilScore).where(CouncilScore.volunteer_pk.in_(list(by_pk)))
        ).scalars()
    ]
    conflicts = [
        (str(c.volunteer_pk), str(c.member_pk))
        for c in db.execute(
            select(Conflict).where(Conflict.volunteer_pk.in_(list(by_pk)))
        ).scalars()
    ]
    ranked = rank_applications(
        [str(pk) for pk in by_pk],
        [CriterionDef(c.code, c.weight, c.max_score) for c in criteria],
        scores,
        conflicts,
        places,
    )
    return [
        RankedApplication(
            by_pk[int(r.application)],
            r,
            [members[int(m)].full_name for m in r.members],
            [members[int(m)].full_name for m in r.excluded],
        )
        for r in ranked
    ]


def decide_selection(
    db: Session, who: Principal | None, project: Project, places: int, today: dt.date
) -> Decision:
    """The council's decision: the first ``places`` applications are selected, the others
    not; the ranking is kept as it was (the protocol)."""
    if not 1 <= places <= 10000:
        raise TutoringError("places: 1-10000")
    ranking = council_ranking(db, project, places)
    if not any(r.ranked.score is not None for r in ranking):
        raise TutoringError("no application is scored yet")
    for r in ranking:
        r.volunteer.status = (
            VolunteerStatus.SELECTED if r.ranked.selected else VolunteerStatus.REJECTED
        )
    decision = Decision(
        project_pk=project.pk,
        kind="selection",
        decided_on=today,
        ranking=[
            {
                "rank": r.ranked.rank,
                "code": r.volunteer.code,
                "name": r.volunteer.full_name,
                "score": None if r.ranked.score is None else str(r.ranked.score),
                "members": r.member_names,
                "excluded": r.excluded_names,
                "selected": r.ranked.selected,
            }
            for r in ranking
        ],
        recorded_by=who.user_pk if who is not None else None,
        at_ms=now_ms(),
    )
    db.add(decision)
    db.flush()
    audit(db, who, "change", "tutoring_council", summary=f"selection decided: {places} places")
    return decision


def decisions_of(db: Session, project: Project) -> list[Decision]:
    return list(
        db.execute(
            select(Decision).where(Decision.project_pk == project.pk).order_by(Decision.pk.desc())
        ).scalars()
    )


def protocol_pdf(
    db: Session, project: Project, decision: Decision, labels: Mapping[str, str]
) -> bytes:
    """The council's protocol: the ranking as decided, who scored, who was excluded for a
    conflict of interest. ``labels``: the column headers and title in the reader's language."""
    members = list(
        db.execute(
            select(CouncilMember.full_name).where(CouncilMember.project_pk == project.pk)
        ).scalars()
    )
    sheet = Sheet(
        title=f"{labels['title']}: {project.name}",
        subtitle=[
            f"{labels['date']}: {decision.decided_on.isoformat()}",
            f"{labels['members']}: {', '.join(members)}",
        ],
        headers=[
            labels["rank"],
            labels["code"],
            labels["name"],
            labels["score"],
            labels["excluded"],
            labels["decision"],
        ],
        rows=[
            [
                r["rank"],
                r["code"],
                r["name"],
                r["score"] or "",
                ", ".join(r["excluded"]),
                labels["yes"] if r["selected"] else labels["no"],
            ]
            for r in decision.ranking
        ],
        signatures=[labels["chair"], labels["secretary"]],
    )
    return to_pdf([sheet], subject=labels["title"])


# ------------------------------------------------------------------- awards and indicators


def volunteer_metrics(db: Session, project: Project) -> list[VolunteerMetrics]:
    """Per selected volunteer: hours of the sessions held, the share of attendance marks that
    are "present", and the mean growth of their groups' students with both tests."""
    out = []
    for v in applications_of(db, project):
        if v.status != VolunteerStatus.SELECTED:
            continue
        groups = list(db.execute(select(Group).where(Group.volunteer_pk == v.pk)).scalars())
        gpks = [g.pk for g in groups]
        hours = db.scalar(select(func.sum(Lesson.hours)).where(Lesson.group_pk.in_(gpks))) or 0
        marks = (
            db.execute(
                select(Attendance.present)
                .join(Lesson, Lesson.pk == Attendance.session_pk)
                .where(Lesson.group_pk.in_(gpks))
            )
            .scalars()
            .all()
        )
        attendance = Fraction(sum(marks), len(marks)) if marks else Fraction(0)
        diffs: list[int] = []
        for g in groups:
            tests: dict[int, dict[str, int]] = {}
            for ppk, phase, centi in db.execute(
                select(TestResult.participant_pk, TestResult.phase, TestResult.score_centi)
                .join(GroupMember, GroupMember.participant_pk == TestResult.participant_pk)
                .where(GroupMember.group_pk == g.pk, TestResult.direction_pk == g.direction_pk)
            ).all():
                tests.setdefault(ppk, {})[phase] = centi
            diffs += [t[calc.POST] - t[calc.PRE] for t in tests.values() if len(t) == 2]
        growth = Fraction(sum(diffs), 100 * len(diffs)) if diffs else Fraction(0)
        out.append(VolunteerMetrics(v.code, int(hours), attendance, growth))
    return out


def award_ranking(db: Session, project: Project, places: int) -> list[AwardRank]:
    weights = {c.code: c.weight for c in criteria_of(db, project, "award")} or dict(AWARD_CRITERIA)
    return rank_awards(volunteer_metrics(db, project), weights, places)


def decide_awards(
    db: Session, who: Principal, project: Project, places: int, today: dt.date
) -> Decision:
    if not 1 <= places <= 1000:
        raise TutoringError("places: 1-1000")
    ranking = award_ranking(db, project, places)
    if not ranking:
        raise TutoringError("no selected volunteer to rank")
    by_code = {v.code: v for v in applications_of(db, project)}
    db.execute(delete(Award).where(Award.project_pk == project.pk))
    for r in ranking:
        if r.awarded:
            db.add(
                Award(
                    project_pk=project.pk,
                    volunteer_pk=by_code[r.volunteer].pk,
                    rank=r.rank,
                    score_milli=int(r.score * 1000),
                    awarded_on=today,
                )
            )
    decision = Decision(
        project_pk=project.pk,
        kind="award",
        decided_on=today,
        ranking=[
            {"rank": r.rank, "code": r.volunteer, "score": str(r.score), "selected": r.awarded}
            for r in ranking
        ],
        recorded_by=who.user_pk,
        at_ms=now_ms(),
    )
    db.add(decision)
    db.flush()
    audit(db, who, "change", "tutoring_awards", summary=f"awards decided: {places} places")
    return decision


INDICATORS = (
    ("meetings", N_("Meetings held")),
    ("people_reached", N_("People reached")),
    ("survey_answers", N_("Survey answers")),
    ("applicants", N_("Volunteer applicants")),
    ("volunteers_selected", N_("Volunteers selected")),
    ("students_taught", N_("Students taught")),
    ("low_income_students", N_("Of them from low-income families")),
    ("exam_takers", N_("National exam takers")),
    ("exam_grants", N_("National exam grants won")),
    ("olympiad_places", N_("Olympiad places")),
    ("awards", N_("Volunteers awarded")),
)


def indicators(db: Session, project: Project) -> list[tuple[str, str, int | None, int | None]]:
    """(key, label msgid, plan, fact). A fact the module's records hold is counted from them;
    the others (meetings, outcomes) are the project's recorded facts."""
    counted: dict[str, int] = {}
    survey_pks = list(
        db.execute(select(Survey.pk).where(Survey.project_pk == project.pk)).scalars()
    )
    if survey_pks:
        counted["survey_answers"] = int(
            db.scalar(
                select(func.count())
                .select_from(SurveyAnswer)
                .where(SurveyAnswer.survey_pk.in_(survey_pks))
            )
            or 0
        )
    vols = applications_of(db, project)
    if vols:
        counted["volunteers_selected"] = sum(v.status == VolunteerStatus.SELECTED for v in vols)
    parts = (
        db.execute(select(Participant.low_income).where(Participant.project_pk == project.pk))
        .scalars()
        .all()
    )
    if parts:
        counted["students_taught"] = len(parts)
        counted["low_income_students"] = sum(parts)
    awards = db.scalar(
        select(func.count()).select_from(Award).where(Award.project_pk == project.pk)
    )
    if awards:
        counted["awards"] = int(awards)
    out = []
    for k, label in INDICATORS:
        fact = counted.get(k, project.facts.get(k))
        if k == "survey_answers" and not counted.get(k):
            fact = project.facts.get(k)
        plan = project.plan.get(k)
        out.append(
            (k, label, None if plan is None else int(plan), None if fact is None else int(fact))
        )
    return out


# --------------------------------------------------------------- placing students in groups


@dataclass(frozen=True, slots=True)
class Placement:
    placed: int
    unplaced: int
    groups_created: int


def place_students(db: Session, who: Principal | None, project: Project) -> Placement:
    """Puts every student not yet in a group of a direction they take (a test in it, or asked
    for it at enrolment) into a selected volunteer's group by ``matching.match_students``
    (direction, subject, district, language, time slots, capacity left). A volunteer's group
    per time slot is created when needed. A student or volunteer with no slots recorded is
    taken to be free at every slot of the survey."""
    placed = unplaced = created = 0
    for d in directions_of(db, project.pk):
        in_groups = set(
            db.execute(
                select(GroupMember.participant_pk)
                .join(Group, Group.pk == GroupMember.group_pk)
                .where(Group.direction_pk == d.pk)
            ).scalars()
        )
        tested = set(
            db.execute(
                select(TestResult.participant_pk).where(TestResult.direction_pk == d.pk)
            ).scalars()
        )
        participants = db.execute(
            select(Participant).where(Participant.project_pk == project.pk)
        ).scalars()
        learners = [
            Learner(
                str(p.pk),
                d.code,
                None,
                p.district,
                p.language,
                frozenset(p.slots or DEFAULT_TIMES),
            )
            for p in participants
            if (p.pk in tested or d.code in (p.directions or [])) and p.pk not in in_groups
        ]
        if not learners:
            continue
        tutors = []
        groups_of: dict[tuple[int, str], Group] = {}
        for g in db.execute(select(Group).where(Group.direction_pk == d.pk)).scalars():
            groups_of[(g.volunteer_pk, g.slot)] = g
        load = dict(
            db.execute(
                select(Group.volunteer_pk, func.count())
                .join(GroupMember, GroupMember.group_pk == Group.pk)
                .where(Group.direction_pk == d.pk)
                .group_by(Group.volunteer_pk)
            ).all()
        )
        subjects: dict[int, set[str]] = {}
        for vpk, sname in db.execute(
            select(Assignment.volunteer_pk, Subject.name)
            .outerjoin(Subject, Subject.pk == Assignment.subject_pk)
            .where(Assignment.direction_pk == d.pk)
        ).all():
            subjects.setdefault(vpk, set())
            if sname is not None:
                subjects[vpk].add(sname)
        for v in db.execute(
            select(Volunteer).where(
                Volunteer.pk.in_(list(subjects)), Volunteer.status == VolunteerStatus.SELECTED
            )
        ).scalars():
            tutors.append(
                Tutor(
                    str(v.pk),
                    d.code,
                    frozenset(subjects[v.pk]),
                    v.district,
                    frozenset(x.strip() for x in v.languages.split(",") if x.strip()),
                    frozenset(v.slots or DEFAULT_TIMES),
                    max(0, v.capacity - int(load.get(v.pk, 0))),
                )
            )
        result = match_students(learners, tutors)
        for m in result.matches:
            vpk = int(m.tutor)
            group = groups_of.get((vpk, m.slot))
            if group is None:
                code = db.get_one(Volunteer, vpk).code
                group = Group(
                    direction_pk=d.pk,
                    volunteer_pk=vpk,
                    name=f"{d.name[:60]} · {code} · {m.slot}",
                    slot=m.slot,
                )
                db.add(group)
                db.flush()
                groups_of[(vpk, m.slot)] = group
                created += 1
            db.add(GroupMember(group_pk=group.pk, participant_pk=int(m.learner)))
        placed += len(result.matches)
        unplaced += len(result.unmatched)
    db.flush()
    audit(
        db,
        who,
        "change",
        "tutoring_groups",
        summary=f"project {project.code}: {placed} students placed, {unplaced} not, {created} groups",
    )
    return Placement(placed, unplaced, created)
