"""The registry's service functions: forms checked (pure parsers), nominations, entry with the
parent's consent, the roadmap's changes, what withdrawal removes, the registry and report
queries, reminders through the notification outbox, and the link to the tutoring module.

Every change of a child's data writes an audit entry in the caller's transaction; the summary
names fields and counts, never the values of personal fields.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Principal
from server.accounts.models import User
from server.audit.service import audit
from server.clock import now_ms
from server.consents.models import StudentCategory
from server.consents.service import on_withdrawal
from server.console import i18n
from server.gifted import rules
from server.gifted.models import (
    Activity,
    ActivityKind,
    ActivityStatus,
    GiftedEntry,
    GiftedSchool,
    Level,
    Locality,
    Nomination,
    NominationBasis,
    Reminder,
    Support,
    SupportKind,
)
from server.models import Region, School
from server.notify.models import OutboxMessage
from server.notify.planner import consented
from server.notify.rules import Status
from server.people.models import Guardian, SchoolClass, StaffMember, Student, StudentGuardian
from server.people.service import has_consent

N_ = str

# The outbox's (device, seq) of a registry reminder: no device has pk 0, seq is the reminder's.
OUTBOX_DEVICE = 0
OUTBOX_KIND = "gifted"
PAGE = 50
MAX_TIYN = 10**12  # ten billion tenge: more than any stipend, grant or trip

BASIS_LABELS: dict[str, str] = {
    NominationBasis.TEACHER: N_("Teacher's nomination"),
    NominationBasis.OLYMPIAD: N_("Olympiad place"),
    NominationBasis.CONTEST: N_("Contest result"),
    NominationBasis.TEST: N_("Test score"),
}
LEVEL_LABELS: dict[str, str] = {
    Level.SCHOOL: N_("School"),
    Level.DISTRICT: N_("District"),
    Level.REGION: N_("Region"),
    Level.NATIONAL: N_("National"),
    Level.INTERNATIONAL: N_("International"),
}
ACTIVITY_LABELS: dict[str, str] = {
    ActivityKind.OLYMPIAD: N_("Olympiad"),
    ActivityKind.TECHNOPARK: N_("Technopark"),
    ActivityKind.SUMMER_SCHOOL: N_("Summer school"),
    ActivityKind.CAMP: N_("Camp"),
    ActivityKind.CONTEST: N_("Contest"),
    ActivityKind.TUTORING: N_("Tutoring course"),
}
STATUS_LABELS: dict[str, str] = {
    ActivityStatus.PLANNED: N_("planned"),
    ActivityStatus.DONE: N_("done"),
    ActivityStatus.MISSED: N_("missed"),
    ActivityStatus.CANCELLED: N_("cancelled"),
}
SUPPORT_LABELS: dict[str, str] = {
    SupportKind.STIPEND: N_("Stipend"),
    SupportKind.GRANT: N_("Grant"),
    SupportKind.TRIP: N_("Trip"),
}
LOCALITY_LABELS: dict[str, str] = {
    Locality.RURAL: N_("Rural"),
    Locality.URBAN: N_("Urban"),
}


class GiftedError(ValueError):
    """A form or an action that cannot be done: ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# ------------------------------------------------------------------------------ parsing


def _text(field: str, value: str, limit: int, *, required: bool = True) -> str:
    clean = " ".join(value.split())
    if required and not clean:
        raise GiftedError(field, N_("This field is required."))
    if len(clean) > limit:
        raise GiftedError(field, N_("The text is too long."))
    return clean


def _day(field: str, value: str, *, required: bool = True) -> dt.date | None:
    text = value.strip()
    if not text:
        if required:
            raise GiftedError(field, N_("A date as YYYY-MM-DD."))
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as err:
        raise GiftedError(field, N_("A date as YYYY-MM-DD.")) from err
    if not dt.date(2000, 1, 1) <= day <= dt.date(2100, 12, 31):
        raise GiftedError(field, N_("The date is out of range."))
    return day


def _int(field: str, value: str, low: int, high: int) -> int | None:
    text = value.strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 4 or not low <= int(text) <= high:
        raise GiftedError(field, N_("A whole number in the allowed range."))
    return int(text)


def _choice(field: str, value: str, allowed: type[Any], *, required: bool = True) -> str | None:
    if not value.strip() and not required:
        return None
    if value not in allowed._value2member_map_:
        raise GiftedError(field, N_("Choose one of the listed values."))
    return str(value)


def parse_tenge(field: str, value: str) -> int:
    """``"150000"``, ``"150 000,50"`` or ``"150000.5"`` tenge -> tiyn (positive, bounded)."""
    text = value.replace("\u00a0", "").replace(" ", "").replace(",", ".").strip()
    whole, _, frac = text.partition(".")
    if (
        not whole.isascii()
        or not whole.isdigit()
        or len(whole) > 11
        or (frac and (not frac.isascii() or not frac.isdigit() or len(frac) > 2))
    ):
        raise GiftedError(field, N_("An amount in tenge, e.g. 150000 or 150000,50."))
    tiyn = int(whole) * 100 + (int(frac.ljust(2, "0")) if frac else 0)
    if not 0 < tiyn <= MAX_TIYN:
        raise GiftedError(field, N_("An amount in tenge, e.g. 150000 or 150000,50."))
    return tiyn


@dataclass(frozen=True, slots=True)
class NominationInput:
    basis: str
    subject: str
    detail: str
    level: str | None
    place: int | None
    score: int | None
    teacher_pk: int | None
    nominated_on: dt.date


def parse_nomination(
    basis: str,
    subject: str,
    detail: str,
    level: str,
    place: str,
    score: str,
    teacher: str,
    nominated_on: str,
    today: dt.date,
) -> NominationInput:
    """Check a nomination: a result needs its place (olympiad, contest) or score (test). Pure."""
    b = _choice("basis", basis, NominationBasis)
    assert b is not None
    subj = _text("subject", subject, 100)
    det = _text("detail", detail, 200, required=b != NominationBasis.TEACHER)
    lvl = _choice("level", level, Level, required=False)
    pl = _int("place", place, 1, 10)
    sc = _int("score", score, 0, 100)
    if b in (NominationBasis.OLYMPIAD, NominationBasis.CONTEST) and pl is None:
        raise GiftedError("place", N_("Write the place won (1-10)."))
    if b == NominationBasis.TEST and sc is None:
        raise GiftedError("score", N_("Write the test score (0-100)."))
    t = _int("teacher", teacher, 1, 9999) if teacher.strip() else None
    day = _day("nominated_on", nominated_on)
    assert day is not None
    if day > today:
        raise GiftedError("nominated_on", N_("The date cannot be in the future."))
    return NominationInput(b, subj, det, lvl, pl, sc, t, day)


@dataclass(frozen=True, slots=True)
class ActivityInput:
    kind: str
    title: str
    subject: str
    level: str | None
    planned_from: dt.date
    planned_to: dt.date
    teacher_pk: int | None


def parse_activity(
    kind: str,
    title: str,
    subject: str,
    level: str,
    planned_from: str,
    planned_to: str,
    teacher: str,
) -> ActivityInput:
    k = _choice("kind", kind, ActivityKind)
    assert k is not None
    start = _day("planned_from", planned_from)
    end = _day("planned_to", planned_to, required=False) or start
    assert start is not None and end is not None
    if end < start:
        raise GiftedError("planned_to", N_("The end date is before the start date."))
    if (end - start).days > 366:
        raise GiftedError("planned_to", N_("An activity lasts at most a year."))
    return ActivityInput(
        k,
        _text("title", title, 200),
        _text("subject", subject, 100, required=False),
        _choice("level", level, Level, required=False),
        start,
        end,
        _int("teacher", teacher, 1, 9999) if teacher.strip() else None,
    )


@dataclass(frozen=True, slots=True)
class ResultInput:
    status: str
    done_on: dt.date | None
    result: str
    place: int | None


def parse_result(status: str, done_on: str, result: str, place: str, today: dt.date) -> ResultInput:
    s = _choice("status", status, ActivityStatus)
    assert s is not None
    day = _day("done_on", done_on, required=s == ActivityStatus.DONE)
    if day is not None and day > today:
        raise GiftedError("done_on", N_("The date cannot be in the future."))
    pl = _int("place", place, 1, 10)
    if s != ActivityStatus.DONE and (pl is not None or day is not None):
        raise GiftedError("status", N_("A place or a date needs the status done."))
    return ResultInput(s, day, _text("result", result, 200, required=False), pl)


@dataclass(frozen=True, slots=True)
class SupportInput:
    kind: str
    title: str
    planned_on: dt.date
    planned_tiyn: int


def parse_support(kind: str, title: str, planned_on: str, amount: str) -> SupportInput:
    k = _choice("kind", kind, SupportKind)
    assert k is not None
    day = _day("planned_on", planned_on)
    assert day is not None
    return SupportInput(k, _text("title", title, 200), day, parse_tenge("amount", amount))


# ------------------------------------------------------------------------------- queries


def locality_of(db: Session, school_id: str) -> str | None:
    row = db.get(GiftedSchool, school_id)
    return row.locality if row is not None else None


def memberships_of(db: Session, student_pks: Sequence[int]) -> dict[int, list[rules.Membership]]:
    out: dict[int, list[rules.Membership]] = {pk: [] for pk in student_pks}
    if not student_pks:
        return out
    for m in db.execute(
        select(StudentCategory).where(StudentCategory.student_pk.in_(list(student_pks)))
    ).scalars():
        out[m.student_pk].append(rules.Membership(m.code, m.valid_from, m.valid_to))
    return out


def groups_of(db: Session, student: Student, day: dt.date) -> frozenset[rules.TargetGroup]:
    return rules.target_groups(
        locality_of(db, student.school_id), memberships_of(db, [student.pk])[student.pk], day
    )


def entry_of(db: Session, student_pk: int) -> GiftedEntry | None:
    return db.execute(
        select(GiftedEntry).where(GiftedEntry.student_pk == student_pk)
    ).scalar_one_or_none()


def staff_names(db: Session, pks: Sequence[int | None]) -> dict[int, str]:
    wanted = sorted({p for p in pks if p is not None})
    if not wanted:
        return {}
    return {
        pk: name
        for pk, name in db.execute(
            select(StaffMember.pk, StaffMember.full_name).where(StaffMember.pk.in_(wanted))
        ).all()
    }


def school_staff(db: Session, school_id: str) -> list[StaffMember]:
    return list(
        db.scalars(
            select(StaffMember)
            .where(StaffMember.school_id == school_id, StaffMember.active.is_(True))
            .order_by(StaffMember.full_name)
        )
    )


def _staff_of_school(db: Session, school_id: str, pk: int | None, field: str) -> None:
    if pk is None:
        return
    member = db.get(StaffMember, pk)
    if member is None or member.school_id != school_id:
        raise GiftedError(field, N_("Choose a teacher of the child's school."))


def nominations_of(db: Session, student_pk: int) -> list[Nomination]:
    return list(
        db.scalars(
            select(Nomination)
            .where(Nomination.student_pk == student_pk)
            .order_by(Nomination.nominated_on.desc(), Nomination.pk.desc())
        )
    )


def activities_of(db: Session, entry_pk: int) -> list[Activity]:
    return list(
        db.scalars(
            select(Activity)
            .where(Activity.entry_pk == entry_pk)
            .order_by(Activity.planned_from, Activity.pk)
        )
    )


def support_of(db: Session, entry_pk: int) -> list[Support]:
    return list(
        db.scalars(
            select(Support)
            .where(Support.entry_pk == entry_pk)
            .order_by(Support.planned_on, Support.pk)
        )
    )


def activity_fact(a: Activity, teachers: dict[int, str] | None = None) -> rules.ActivityFact:
    return rules.ActivityFact(
        kind=a.kind,
        planned_from=a.planned_from,
        planned_to=a.planned_to,
        status=a.status,
        done_on=a.done_on,
        place=a.place,
        teacher=(teachers or {}).get(a.teacher_pk) if a.teacher_pk is not None else None,
        title=a.title,
    )


def support_fact(s: Support) -> rules.SupportFact:
    return rules.SupportFact(s.kind, s.planned_on, s.planned_tiyn, s.paid_on, s.paid_tiyn)


def plan_fact_of(db: Session, entry: GiftedEntry, today: dt.date) -> rules.PlanFact:
    return rules.plan_fact(
        [activity_fact(a) for a in activities_of(db, entry.pk)],
        [support_fact(s) for s in support_of(db, entry.pk)],
        today,
    )


@dataclass(frozen=True, slots=True)
class RegistryRow:
    entry: GiftedEntry
    student: Student
    class_name: str
    groups: frozenset[rules.TargetGroup]
    plan: rules.PlanFact


def registry(
    db: Session, school_id: str, class_pks: Sequence[int] | None, today: dt.date, page: int
) -> tuple[list[RegistryRow], int]:
    """One page (from 1) of a school's registry, by name, with groups and plan versus fact;
    and the number of entries in all."""
    base = (
        select(GiftedEntry, Student, SchoolClass.name)
        .join(Student, Student.pk == GiftedEntry.student_pk)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(GiftedEntry.school_id == school_id)
    )
    if class_pks is not None:
        base = base.where(Student.class_pk.in_(list(class_pks)))
    total = db.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = db.execute(
        base.order_by(Student.surname, Student.given_name, Student.pk)
        .offset((page - 1) * PAGE)
        .limit(PAGE)
    ).all()
    locality = locality_of(db, school_id)
    cats = memberships_of(db, [s.pk for _e, s, _c in rows])
    out = [
        RegistryRow(
            e, s, c, rules.target_groups(locality, cats[s.pk], today), plan_fact_of(db, e, today)
        )
        for e, s, c in rows
    ]
    return out, int(total)


def school_nominations(
    db: Session, school_id: str, class_pks: Sequence[int] | None, limit: int = 200
) -> list[tuple[Nomination, Student, bool]]:
    """The school's newest nominations (visible classes) with whether the child is entered."""
    q = (
        select(Nomination, Student, GiftedEntry.pk)
        .join(Student, Student.pk == Nomination.student_pk)
        .outerjoin(GiftedEntry, GiftedEntry.student_pk == Nomination.student_pk)
        .where(Nomination.school_id == school_id)
        .order_by(Nomination.nominated_on.desc(), Nomination.pk.desc())
        .limit(limit)
    )
    if class_pks is not None:
        q = q.where(Student.class_pk.in_(list(class_pks)))
    return [(n, s, e is not None) for n, s, e in db.execute(q).all()]


# ------------------------------------------------------------------------------- changes


def set_locality(db: Session, who: Principal, school_id: str, locality: str) -> None:
    value = _choice("locality", locality, Locality)
    assert value is not None
    row = db.get(GiftedSchool, school_id)
    if row is None:
        row = GiftedSchool(school_id=school_id, locality=value, updated_at_ms=now_ms())
        db.add(row)
    row.locality = value
    row.updated_at_ms = now_ms()
    row.updated_by = who.user_pk
    db.flush()
    audit(db, who, "change", "gifted", school_id=school_id, summary=f"school locality {value}")


def nominate(db: Session, who: Principal, student: Student, form: NominationInput) -> Nomination:
    """Record a nomination (the child must have a data consent); caller commits."""
    if not has_consent(db, student.pk, ConsentKind.DATA):
        raise GiftedError("basis", N_("No data consent is recorded for this student."))
    _staff_of_school(db, student.school_id, form.teacher_pk, "teacher")
    row = Nomination(
        student_pk=student.pk,
        school_id=student.school_id,
        basis=form.basis,
        subject=form.subject,
        detail=form.detail,
        level=form.level,
        place=form.place,
        score=form.score,
        teacher_pk=form.teacher_pk,
        nominated_on=form.nominated_on,
        nominated_by=who.user_pk,
        recorded_at_ms=now_ms(),
    )
    db.add(row)
    db.flush()
    audit(
        db,
        who,
        "change",
        "gifted",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"nomination #{row.pk} ({form.basis}) recorded",
    )
    return row


def enter(db: Session, who: Principal, student: Student, today: dt.date) -> GiftedEntry:
    """Put a nominated child in the registry: only with the parent's registry consent."""
    if entry_of(db, student.pk) is not None:
        raise GiftedError("enter", N_("The child is already in the registry."))
    if not student.active:
        raise GiftedError("enter", N_("The student is inactive."))
    if not has_consent(db, student.pk, ConsentKind.GIFTED):
        raise GiftedError(
            "enter", N_("No parent's consent to the gifted-children registry is recorded.")
        )
    if not nominations_of(db, student.pk):
        raise GiftedError("enter", N_("Record a nomination first."))
    now = now_ms()
    row = GiftedEntry(
        student_pk=student.pk,
        school_id=student.school_id,
        entered_on=today,
        coordinator_pk=who.user_pk,
        created_at_ms=now,
        updated_at_ms=now,
    )
    db.add(row)
    db.flush()
    audit(
        db,
        who,
        "change",
        "gifted",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"entered in the gifted-children registry (entry #{row.pk})",
    )
    return row


def _changed(db: Session, who: Principal, entry: GiftedEntry, summary: str) -> None:
    entry.updated_at_ms = now_ms()
    audit(
        db,
        who,
        "change",
        "gifted",
        student_pk=entry.student_pk,
        school_id=entry.school_id,
        summary=summary,
    )


def update_roadmap(
    db: Session, who: Principal, entry: GiftedEntry, abilities: str, goals: str
) -> None:
    entry.abilities = _text("abilities", abilities, 500, required=False)
    entry.goals = _text("goals", goals, 500, required=False)
    db.flush()
    _changed(db, who, entry, "roadmap abilities, goals changed")


def add_activity(db: Session, who: Principal, entry: GiftedEntry, form: ActivityInput) -> Activity:
    _staff_of_school(db, entry.school_id, form.teacher_pk, "teacher")
    row = Activity(
        entry_pk=entry.pk,
        kind=form.kind,
        title=form.title,
        subject=form.subject,
        level=form.level,
        planned_from=form.planned_from,
        planned_to=form.planned_to,
        teacher_pk=form.teacher_pk,
        created_at_ms=now_ms(),
    )
    db.add(row)
    db.flush()
    _changed(db, who, entry, f"activity #{row.pk} ({form.kind}) planned")
    return row


def item_of(db: Session, model: Any, entry: GiftedEntry, item_pk: int | None) -> Any:
    """An activity or support row of this roadmap; else a form error (not a 404: the page)."""
    row = db.get(model, item_pk) if item_pk is not None else None
    if row is None or row.entry_pk != entry.pk:
        raise GiftedError("item", N_("No such item on this roadmap."))
    return row


def record_result(
    db: Session, who: Principal, entry: GiftedEntry, activity: Activity, form: ResultInput
) -> None:
    activity.status = form.status
    activity.done_on = form.done_on
    activity.result = form.result
    activity.place = form.place
    db.flush()
    _changed(db, who, entry, f"activity #{activity.pk} status {form.status}, result recorded")


def add_support(db: Session, who: Principal, entry: GiftedEntry, form: SupportInput) -> Support:
    row = Support(
        entry_pk=entry.pk,
        kind=form.kind,
        title=form.title,
        planned_on=form.planned_on,
        planned_tiyn=form.planned_tiyn,
        created_at_ms=now_ms(),
    )
    db.add(row)
    db.flush()
    _changed(db, who, entry, f"support #{row.pk} ({form.kind}) planned")
    return row


def record_payment(
    db: Session,
    who: Principal,
    entry: GiftedEntry,
    support: Support,
    paid_on: str,
    amount: str,
    today: dt.date,
) -> None:
    day = _day("paid_on", paid_on)
    assert day is not None
    if day > today:
        raise GiftedError("paid_on", N_("The date cannot be in the future."))
    support.paid_on = day
    support.paid_tiyn = parse_tenge("paid_amount", amount)
    db.flush()
    _changed(db, who, entry, f"support #{support.pk} paid")


def consent_withdrawn(db: Session, who: Principal, student: Student) -> list[str]:
    """The registry consent was withdrawn: the entry, its roadmap, the reminders and the
    nominations go, and queued reminders to the parents are cancelled. Returns the effects
    (English msgids); caller commits (the consents module calls this in the withdrawal's
    transaction)."""
    effects: list[str] = []
    entry = entry_of(db, student.pk)
    cancelled = db.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.device_pk == OUTBOX_DEVICE,
            OutboxMessage.student_pk == student.pk,
            OutboxMessage.status == Status.QUEUED.value,
        )
        .values(status=Status.CANCELLED.value, last_error="gifted registry consent withdrawn")
        .execution_options(synchronize_session=False)
    )
    reminders = db.execute(
        delete(Reminder)
        .where(Reminder.student_pk == student.pk)
        .execution_options(synchronize_session=False)
    )
    parts = [f"{int(getattr(cancelled, 'rowcount', 0) or 0)} queued reminders cancelled"]
    parts.append(f"{int(getattr(reminders, 'rowcount', 0) or 0)} reminders deleted")
    if entry is not None:
        n_act = db.execute(
            delete(Activity)
            .where(Activity.entry_pk == entry.pk)
            .execution_options(synchronize_session=False)
        )
        n_sup = db.execute(
            delete(Support)
            .where(Support.entry_pk == entry.pk)
            .execution_options(synchronize_session=False)
        )
        db.delete(entry)
        parts.append(
            f"registry entry and roadmap deleted ({int(getattr(n_act, 'rowcount', 0) or 0)} "
            f"activities, {int(getattr(n_sup, 'rowcount', 0) or 0)} support items)"
        )
        effects.append(N_("The child was removed from the gifted-children registry."))
    n_nom = db.execute(
        delete(Nomination)
        .where(Nomination.student_pk == student.pk)
        .execution_options(synchronize_session=False)
    )
    removed = int(getattr(n_nom, "rowcount", 0) or 0)
    parts.append(f"{removed} nominations deleted")
    if removed:
        effects.append(N_("The child's nominations were deleted."))
    db.flush()
    audit(
        db,
        who,
        "change",
        "gifted",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="gifted consent withdrawn: " + "; ".join(parts),
    )
    return effects


on_withdrawal(ConsentKind.GIFTED, consent_withdrawn)


# ------------------------------------------------------------------------- the tutoring link


def tutoring_results(db: Session, student_pk: int) -> list[Any]:
    """The child's tutoring course results (``CourseResult``: direction, subject, hours, before,
    after) from the tutoring module, or none when that module is not installed."""
    try:
        module = importlib.import_module("server.tutoring.service")
    except ModuleNotFoundError as err:
        if err.name in ("server.tutoring", "server.tutoring.service"):
            return []
        raise
    results: list[Any] = list(module.course_results_for_student(db, student_pk))
    return results


# ---------------------------------------------------------------------------------- reports


def region_names(db: Session) -> dict[str, str]:
    return {r.id: r.name or r.id for r in db.scalars(select(Region))}


def _entries_with_rows(
    db: Session, school_ids: set[str] | None
) -> list[tuple[GiftedEntry, Student, School]]:
    q = (
        select(GiftedEntry, Student, School)
        .join(Student, Student.pk == GiftedEntry.student_pk)
        .join(School, School.id == GiftedEntry.school_id)
        .order_by(GiftedEntry.pk)
    )
    if school_ids is not None:
        q = q.where(GiftedEntry.school_id.in_(sorted(school_ids)))
    return [(e, s, sch) for e, s, sch in db.execute(q).all()]


NO_REGION = "-"


def annual_statistics(
    db: Session, school_ids: set[str] | None, year: int
) -> list[rules.RegionYear]:
    """The year's statistics of these schools' registries by region (``rules``)."""
    rows = _entries_with_rows(db, school_ids)
    entry_pks = [e.pk for e, _s, _sch in rows]
    acts: dict[int, list[rules.ActivityFact]] = {pk: [] for pk in entry_pks}
    sups: dict[int, list[rules.SupportFact]] = {pk: [] for pk in entry_pks}
    if entry_pks:
        for a in db.scalars(select(Activity).where(Activity.entry_pk.in_(entry_pks))):
            acts[a.entry_pk].append(activity_fact(a))
        for s in db.scalars(select(Support).where(Support.entry_pk.in_(entry_pks))):
            sups[s.entry_pk].append(support_fact(s))
    localities = (
        {
            g.school_id: g.locality
            for g in db.scalars(
                select(GiftedSchool).where(
                    GiftedSchool.school_id.in_({sch.id for *_x, sch in rows})
                )
            )
        }
        if rows
        else {}
    )
    cats = memberships_of(db, [s.pk for _e, s, _sch in rows])
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    entries = [
        rules.EntryYear(
            region=sch.region_id or NO_REGION,
            entered_on=e.entered_on,
            groups=rules.target_groups(
                localities.get(sch.id), cats[s.pk], max(first, e.entered_on), last
            ),
            activities=tuple(acts[e.pk]),
            support=tuple(sups[e.pk]),
        )
        for e, s, sch in rows
    ]
    return rules.annual_statistics(entries, year)


@dataclass(frozen=True, slots=True)
class TeacherRow:
    name: str
    school: str
    award: rules.TeacherAward


def prize_teachers(db: Session, school_ids: set[str] | None, year: int) -> list[TeacherRow]:
    """Teachers who prepared prize-winners in the year: from the roadmaps' activities done with a
    place and from nominations by result."""
    prizes: list[rules.Prize] = []
    q_act = (
        select(Activity, GiftedEntry.student_pk, GiftedEntry.school_id)
        .join(GiftedEntry, GiftedEntry.pk == Activity.entry_pk)
        .where(
            Activity.teacher_pk.is_not(None),
            Activity.status == ActivityStatus.DONE.value,
            Activity.place.is_not(None),
        )
    )
    q_nom = select(Nomination).where(
        Nomination.teacher_pk.is_not(None), Nomination.place.is_not(None)
    )
    if school_ids is not None:
        q_act = q_act.where(GiftedEntry.school_id.in_(sorted(school_ids)))
        q_nom = q_nom.where(Nomination.school_id.in_(sorted(school_ids)))
    for a, student_pk, _school in db.execute(q_act).all():
        if a.done_on is not None and a.place is not None and a.teacher_pk is not None:
            prizes.append(rules.Prize(a.teacher_pk, student_pk, a.done_on, a.place, a.title))
    for n in db.scalars(q_nom):
        if n.place is not None and n.teacher_pk is not None:
            what = n.detail or n.subject
            prizes.append(rules.Prize(n.teacher_pk, n.student_pk, n.nominated_on, n.place, what))
    awards = rules.prize_teachers(prizes, year)
    staff = (
        {
            m.pk: m
            for m in db.scalars(
                select(StaffMember).where(StaffMember.pk.in_([a.teacher_key for a in awards]))
            )
        }
        if awards
        else {}
    )
    schools = {s.id: s.name or s.id for s in db.scalars(select(School))} if awards else {}
    return [
        TeacherRow(
            staff[a.teacher_key].full_name,
            schools.get(staff[a.teacher_key].school_id, staff[a.teacher_key].school_id),
            a,
        )
        for a in awards
        if a.teacher_key in staff
    ]


# -------------------------------------------------------------------------------- reminders

REMINDER_TEXT = N_("Reminder from the gifted-children registry: {name}, {what} on {day}.")
SUPPORT_TEXT = N_("support payment")


@dataclass(frozen=True, slots=True)
class DueRow:
    school_id: str
    student: Student
    item: rules.DueItem


def due_items(
    db: Session, school_ids: set[str] | None, today: dt.date, days_ahead: int
) -> list[DueRow]:
    """Everything on the roadmaps of these schools a reminder is due for."""
    out: list[DueRow] = []
    for e, s, _sch in _entries_with_rows(db, school_ids):
        if not s.active:
            continue  # a student who left, or whose data consent was withdrawn: nothing is said
        items = rules.due_soon(
            [(a.pk, activity_fact(a)) for a in activities_of(db, e.pk)],
            [(x.pk, support_fact(x)) for x in support_of(db, e.pk)],
            today,
            days_ahead,
        )
        out.extend(DueRow(e.school_id, s, i) for i in items)
    return sorted(out, key=lambda r: (r.item.due_on, r.school_id, r.student.surname))


def _body(lang: str, first_name: str, what: str, day: dt.date) -> str:
    return i18n.gettext(REMINDER_TEXT, lang).format(
        name=first_name, what=what, day=day.isoformat()
    )[:500]


def send_reminders(db: Session, today: dt.date, days_ahead: int = 7, now: int | None = None) -> int:
    """Record the reminders of what is due (one per item, due day and recipient, whatever
    reruns): to the coordinator (shown on the registry's reminders page) and, through the
    notification outbox, to each guardian when the parent consented to notifications. Returns
    how many reminders were added; caller commits."""
    t = now if now is not None else now_ms()
    rows = due_items(db, None, today, days_ahead)
    if not rows:
        return 0
    existing = {
        (r.item, r.item_pk, r.due_on, r.recipient)
        for r in db.scalars(
            select(Reminder).where(Reminder.due_on.in_(sorted({r.item.due_on for r in rows})))
        )
    }
    student_pks = sorted({r.student.pk for r in rows})
    notify_ok = consented(db, student_pks)
    guardians: dict[int, list[Guardian]] = {}
    for link, g in db.execute(
        select(StudentGuardian, Guardian)
        .join(Guardian, Guardian.pk == StudentGuardian.guardian_pk)
        .where(StudentGuardian.student_pk.in_(student_pks))
        .order_by(Guardian.pk)
    ).all():
        guardians.setdefault(link.student_pk, []).append(g)
    user_pks = sorted({g.user_pk for gs in guardians.values() for g in gs if g.user_pk})
    langs: dict[int, str] = (
        {
            pk: lang
            for pk, lang in db.execute(select(User.pk, User.lang).where(User.pk.in_(user_pks)))
        }
        if user_pks
        else {}
    )
    added = 0
    for r in rows:
        recipients = ["coordinator"]
        if r.student.pk in notify_ok and r.student.active:
            recipients += [f"guardian:{g.pk}" for g in guardians.get(r.student.pk, [])]
        for rec in recipients:
            key = (r.item.item, r.item.item_pk, r.item.due_on, rec)
            if key in existing:
                continue
            existing.add(key)
            rem = Reminder(
                item=r.item.item,
                item_pk=r.item.item_pk,
                due_on=r.item.due_on,
                recipient=rec,
                student_pk=r.student.pk,
                school_id=r.school_id,
                created_at_ms=t,
            )
            db.add(rem)
            db.flush()
            added += 1
            if rec.startswith("guardian:"):
                g = next(x for x in guardians[r.student.pk] if f"guardian:{x.pk}" == rec)
                channel = "sms" if g.phone.strip() else "email" if g.email.strip() else ""
                if not channel:
                    continue
                lang = langs.get(g.user_pk, i18n.DEFAULT_LANG) if g.user_pk else i18n.DEFAULT_LANG
                lang = lang if lang in i18n.LANGS else i18n.DEFAULT_LANG
                what = r.item.title or i18n.gettext(SUPPORT_TEXT, lang)
                msg = OutboxMessage(
                    device_pk=OUTBOX_DEVICE,
                    seq=rem.pk,
                    guardian_pk=g.pk,
                    channel=channel,
                    student_pk=r.student.pk,
                    school_id=r.school_id,
                    kind=OUTBOX_KIND,
                    lang=lang,
                    body=_body(lang, r.student.given_name, what, r.item.due_on),
                    event_at_ms=t,
                    created_at_ms=t,
                    due_at_ms=t,
                    status=Status.QUEUED.value,
                    attempts=0,
                    last_error="",
                )
                db.add(msg)
                db.flush()
                rem.outbox_id = msg.id
    return added
