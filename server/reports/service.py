"""The reports' database side: load plain rows for ``calc`` (which does the arithmetic).

Reusable by other modules: ``student_day_events`` (a parent's view of one child's entries, exits,
manual passes, meals and library visits), ``attendance_day_rows``, ``meal_month``.
Callers check scope and write the audit entry; nothing here decides who may see what.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, func, or_, select, tuple_
from sqlalchemy.orm import Session

from server.clock import DEFAULT_ZONE
from server.consents.models import StudentCategory
from server.models import Device, IngestProgress, School, ServerAlarm, StoredEvent
from server.people.models import SchoolClass, StaffMember, Student
from server.reports import calc
from server.reports.calc import Ev, Membership, Pupil
from server.sync.changelog import load_state
from server.sync.state import SchoolState

E = StoredEvent
ALARM_LOOKBACK_MS = 7 * 24 * 3600 * 1000
SERVER_ALARM_LOOKBACK_MS = 24 * 3600 * 1000


def zone_of(db: Session, school_id: str) -> str:
    zone = db.execute(select(School.timezone).where(School.id == school_id)).scalar_one_or_none()
    return zone or DEFAULT_ZONE


def pupils(db: Session, school_id: str, class_pks: Iterable[int] | None = None) -> list[Pupil]:
    """Active students of the school (or of the given classes), by class then name."""
    q = (
        select(Student, SchoolClass)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Student.school_id == school_id, Student.active.is_(True))
        .order_by(
            SchoolClass.grade, SchoolClass.name, Student.surname, Student.given_name, Student.pk
        )
    )
    if class_pks is not None:
        q = q.where(Student.class_pk.in_(list(class_pks)))
    return [
        Pupil(st.pk, st.ref, st.full_name, c.pk, c.name, c.grade, c.shift)
        for st, c in db.execute(q)
    ]


def _ev(r: Row[Any]) -> Ev:
    return Ev(r.at_ms, r.kind, r.student_id, r.staff_id, r.payload or {}, r.device_pk, r.seq)


def events(
    db: Session,
    school_id: str,
    start_ms: int,
    end_ms: int,
    kinds: Sequence[str],
    refs: Iterable[str] | None = None,
) -> list[Ev]:
    """The school's events of ``kinds`` in [start, end), optionally only of these students.
    Asking for entries or exits brings the ``not_passed`` events that cancel some of them."""
    wanted = set(kinds)
    if wanted & {"entry", "exit"}:
        wanted.add("not_passed")
    q = select(E.at_ms, E.kind, E.student_id, E.staff_id, E.payload, E.device_pk, E.seq).where(
        E.school_id == school_id,
        E.at_ms >= start_ms,
        E.at_ms < end_ms,
        E.kind.in_(sorted(wanted)),
    )
    if refs is not None:
        q = q.where(E.student_id.in_(sorted(set(refs))))
    return [_ev(r) for r in db.execute(q.order_by(E.at_ms, E.seq))]


def _refs(ps: Sequence[Pupil], class_pks: Iterable[int] | None) -> list[str] | None:
    """Filter events by student only for some classes; the whole school needs no list."""
    return None if class_pks is None else [p.ref for p in ps]


def shift_starts(state: SchoolState) -> dict[int, str | None]:
    if state.policy is None:
        return {}
    return {s.number: s.starts_at for s in state.policy.shifts}


def staff_names(db: Session, school_id: str) -> dict[str, str]:
    q = select(StaffMember.ref, StaffMember.full_name).where(StaffMember.school_id == school_id)
    return {ref: name for ref, name in db.execute(q)}


# ------------------------------------------------------------------------------ attendance


def attendance_day_rows(
    db: Session, school_id: str, class_pks: Iterable[int] | None, day: dt.date
) -> list[calc.DayRow]:
    zone = zone_of(db, school_id)
    ps = pupils(db, school_id, class_pks)
    start, end = calc.day_bounds(day, zone)
    evs = events(db, school_id, start, end, calc.MOVES, _refs(ps, class_pks)) if ps else []
    starts = shift_starts(load_state(db, school_id))
    return calc.attendance_day(ps, evs, zone, day, starts, staff_names(db, school_id))


@dataclass(slots=True)
class MonthAttendance:
    rows: list[calc.MonthRow]
    school_days: list[dt.date]
    per_day: list[tuple[dt.date, int]]


def attendance_month_rows(
    db: Session, school_id: str, class_pks: Iterable[int] | None, month: dt.date
) -> MonthAttendance:
    zone = zone_of(db, school_id)
    ps = pupils(db, school_id, class_pks)
    start, end = calc.month_bounds(month, zone)
    evs = events(db, school_id, start, end, calc.MOVES, _refs(ps, class_pks)) if ps else []
    open_days = _open_days(db, school_id, start, end, zone)
    starts = shift_starts(load_state(db, school_id))
    days = calc.month_days(month)
    return MonthAttendance(
        rows=calc.attendance_month(ps, evs, zone, open_days, starts),
        school_days=sorted(open_days),
        per_day=calc.present_per_day([p.ref for p in ps], evs, zone, days),
    )


def _open_days(db: Session, school_id: str, start: int, end: int, zone: str) -> set[dt.date]:
    """Days any student of the school arrived: the school was open (absences count only then).
    One row per (hour bucket) keeps this small for a large school."""
    bucket = E.at_ms // 3_600_000
    q = (
        select(func.min(E.at_ms))
        .where(
            E.school_id == school_id,
            E.at_ms >= start,
            E.at_ms < end,
            E.kind.in_(("entry", "manual_pass")),
            E.student_id.is_not(None),
        )
        .group_by(bucket)
    )
    return {calc.local_day(ms, zone) for ms in db.execute(q).scalars()}


# ----------------------------------------------------------------------------------- meals


@dataclass(slots=True)
class MealMonth:
    report: calc.MealReport
    categories: list[str]  # the statement's columns (calc.GRADES first)
    free_grades: list[int]
    days: list[dt.date]


def meal_month(db: Session, school_id: str, month: dt.date) -> MealMonth:
    zone = zone_of(db, school_id)
    state = load_state(db, school_id)
    start, end = calc.month_bounds(month, zone)
    # A day's meals may be stamped a few minutes either side of midnight by the edge's clock:
    # read a day more on each side and keep the meals whose local date is in the month.
    evs = events(db, school_id, start - 86_400_000, end + 86_400_000, ("meal_served",))
    days = calc.month_days(month)
    grade_of = {ref: rec.grade for ref, rec in state.students.items()}
    for ref, grade in db.execute(
        select(Student.ref, SchoolClass.grade)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Student.school_id == school_id)
    ):
        grade_of.setdefault(ref, grade)
    members = {
        ref: [
            Membership(
                c.code, dt.date.fromisoformat(c.valid_from), dt.date.fromisoformat(c.valid_to)
            )
            for c in rec.categories
        ]
        for ref, rec in state.students.items()
    }
    # A student no longer on the edges (data consent withdrawn, erased, left) keeps the
    # categories recorded here, so a month's statement does not change when they go.
    for ref, code, valid_from, valid_to in db.execute(
        select(
            Student.ref, StudentCategory.code, StudentCategory.valid_from, StudentCategory.valid_to
        )
        .join(StudentCategory, StudentCategory.student_pk == Student.pk)
        .where(Student.school_id == school_id)
    ):
        if ref not in state.students:
            members.setdefault(ref, []).append(Membership(code, valid_from, valid_to))
    policy = state.policy
    grades = list(policy.free_meal_grades) if policy else []
    cats = list(policy.free_meal_categories) if policy else []
    rep = calc.meal_report(evs, zone, grade_of, members, grades, cats)
    inside = set(days)
    rep.free = type(rep.free)({k: v for k, v in rep.free.items() if k[0] in inside})
    for counter in (rep.paid, rep.paid_tiyn, rep.voucher):
        for d in [d for d in counter if d not in inside]:
            del counter[d]
    return MealMonth(rep, rep.categories(cats), sorted(grades), days)


# --------------------------------------------------------------------------------- library


def library_month(
    db: Session, school_id: str, class_pks: Iterable[int] | None, month: dt.date
) -> tuple[list[Pupil], dict[str, int]]:
    zone = zone_of(db, school_id)
    ps = pupils(db, school_id, class_pks)
    start, end = calc.month_bounds(month, zone)
    evs = events(db, school_id, start, end, ("library_visit",), _refs(ps, class_pks)) if ps else []
    return ps, dict(calc.library_counts(evs))


# ------------------------------------------------------------------------------ evacuation


@dataclass(slots=True)
class Headcount:
    at_ms: int
    students: list[Pupil]  # inside, by class then name
    staff: list[tuple[str, str]]  # (ref, name) inside
    by_class: dict[str, list[Pupil]] = field(default_factory=dict)


def last_moves(db: Session, school_id: str, start_ms: int, end_ms: int) -> list[calc.LastMove]:
    """Each person's last pass in [start, end): one query with a window function over the
    school's events of the day (the (school_id, at_ms) index bounds it)."""
    cancelled = [
        (dev, int(granted))
        for dev, granted in db.execute(
            select(E.device_pk, E.payload["granted_seq"].as_integer()).where(
                E.school_id == school_id,
                E.at_ms >= start_ms,
                E.at_ms < end_ms,
                E.kind == "not_passed",
            )
        )
        if granted is not None
    ]
    ranked = select(
        E.student_id,
        E.staff_id,
        E.kind,
        E.at_ms,
        E.payload["direction"].as_string().label("direction"),
        func.row_number()
        .over(partition_by=(E.student_id, E.staff_id), order_by=(E.at_ms.desc(), E.seq.desc()))
        .label("rn"),
    ).where(
        E.school_id == school_id,
        E.at_ms >= start_ms,
        E.at_ms < end_ms,
        E.kind.in_(calc.MOVES),
        or_(E.student_id.is_not(None), E.staff_id.is_not(None)),
    )
    if cancelled:
        ranked = ranked.where(tuple_(E.device_pk, E.seq).not_in(cancelled))
    sub = ranked.subquery()
    q = select(sub.c.student_id, sub.c.staff_id, sub.c.kind, sub.c.direction, sub.c.at_ms).where(
        sub.c.rn == 1
    )
    return [
        calc.LastMove(r.student_id, r.staff_id, r.kind, r.direction, r.at_ms) for r in db.execute(q)
    ]


def headcount(
    db: Session, school_id: str, now_ms: int, class_pks: Iterable[int] | None = None
) -> Headcount:
    """Who is inside now: the last pass of today (local day) was inwards."""
    zone = zone_of(db, school_id)
    start, end = calc.day_bounds(calc.local_day(now_ms, zone), zone)
    student_refs, staff_refs = calc.inside(last_moves(db, school_id, start, end))
    ps = [p for p in pupils(db, school_id, class_pks) if p.ref in student_refs]
    staff: list[tuple[str, str]] = []
    if class_pks is None:  # staff are counted for the whole building only
        names = staff_names(db, school_id)
        staff = sorted(((r, names.get(r, r)) for r in staff_refs), key=lambda x: x[1])
    by_class: dict[str, list[Pupil]] = defaultdict(list)
    for p in ps:
        by_class[p.class_name].append(p)
    return Headcount(now_ms, ps, staff, dict(by_class))


# ---------------------------------------------------------------------------------- status


@dataclass(slots=True)
class SchoolStatus:
    school_id: str
    name: str
    devices: list[calc.DeviceLine]
    alarms: list[Ev]
    server_alarms: int
    last_event_ms: int | None
    zone: str = DEFAULT_ZONE

    @property
    def online(self) -> int:
        return sum(d.online for d in self.devices)

    @property
    def backlog(self) -> int:
        return sum(d.backlog for d in self.devices)

    @property
    def readers_offline(self) -> list[str]:
        return [f"{d.device}/{r}" for d in self.devices for r in d.readers_offline]

    @property
    def ok(self) -> bool:
        return (
            bool(self.devices)
            and self.online == len(self.devices)
            and not self.readers_offline
            and not self.alarms
        )


def school_status(db: Session, schools: Iterable[str] | None, now_ms: int) -> list[SchoolStatus]:
    """Every school of ``schools`` (None: all) with its edges, alarms and last event; schools
    with a problem first."""
    q = select(School.id, School.name, School.timezone).order_by(School.id)
    if schools is not None:
        q = q.where(School.id.in_(sorted(schools)))
    known = list(db.execute(q))
    ids = [s for s, _n, _z in known]
    if not ids:
        return []
    devs: dict[str, list[calc.DeviceLine]] = defaultdict(list)
    for d, gaps in db.execute(
        select(Device, IngestProgress.gaps)
        .outerjoin(IngestProgress, IngestProgress.device_pk == Device.pk)
        .where(Device.school_id.in_(ids))
        .order_by(Device.device_id)
    ):
        devs[d.school_id].append(
            calc.device_line(
                d.device_id, d.online, d.online_changed_ms, d.last_seen_ms, d.last_status, gaps
            )
        )
    last = {
        s: ms
        for s, ms in db.execute(
            select(
                School.id,
                select(func.max(E.at_ms)).where(E.school_id == School.id).scalar_subquery(),
            ).where(School.id.in_(ids))
        )
    }
    alarm_rows = db.execute(
        select(
            E.at_ms, E.kind, E.student_id, E.staff_id, E.payload, E.device_pk, E.seq, E.school_id
        ).where(E.school_id.in_(ids), E.kind == "alarm", E.at_ms >= now_ms - ALARM_LOOKBACK_MS)
    ).all()
    alarms_of: dict[str, list[Ev]] = defaultdict(list)
    for r in alarm_rows:
        alarms_of[r.school_id].append(_ev(r))
    server = dict(
        db.execute(
            select(ServerAlarm.school, func.count())
            .where(
                ServerAlarm.school.in_(ids), ServerAlarm.at_ms >= now_ms - SERVER_ALARM_LOOKBACK_MS
            )
            .group_by(ServerAlarm.school)
        ).all()
    )
    out = [
        SchoolStatus(
            s,
            n,
            devs.get(s, []),
            calc.active_alarms(alarms_of.get(s, [])),
            int(server.get(s, 0)),
            last.get(s),
            z,
        )
        for s, n, z in known
    ]
    out.sort(key=lambda st: (st.ok, st.school_id))
    return out


# ------------------------------------------------------------------------- one student's day


@dataclass(frozen=True, slots=True)
class StudentEvent:
    """One thing that happened to a student, for a parent's or a teacher's page."""

    at_ms: int
    day: dt.date
    time: str  # local "HH:MM"
    kind: str  # entry, exit, manual_pass, meal_served, library_visit
    direction: str | None = None  # in / out for passes
    authorised_by: str | None = None  # a manual pass: the staff member's name (or ref)
    period: str | None = None  # a meal's period
    meal: str | None = None  # free / paid / voucher
    amount_tiyn: int | None = None
    terminal: str = ""


STUDENT_KINDS = ("entry", "exit", "manual_pass", "meal_served", "library_visit")


def student_day_events(
    db: Session, student_pk: int, day_from: dt.date, day_to: dt.date
) -> list[StudentEvent]:
    """The student's passes, meals and library visits on local days ``day_from``..``day_to``
    (inclusive), oldest first. Granted passes the student did not take are left out.
    The caller checks scope and audits the view."""
    st = db.get(Student, student_pk)
    if st is None:
        return []
    zone = zone_of(db, st.school_id)
    start = calc.day_bounds(day_from, zone)[0]
    end = calc.day_bounds(day_to, zone)[1]
    rows = db.execute(
        select(E.at_ms, E.kind, E.student_id, E.staff_id, E.payload, E.device_pk, E.seq, E.terminal)
        .where(
            E.school_id == st.school_id,
            E.student_id == st.ref,
            E.at_ms >= start,
            E.at_ms < end,
            E.kind.in_((*STUDENT_KINDS, "not_passed")),
        )
        .order_by(E.at_ms, E.seq)
    ).all()
    terminals = {(r.device_pk, r.seq): r.terminal for r in rows}
    names = staff_names(db, st.school_id)
    out = []
    for ev in calc.effective(_ev(r) for r in rows):
        if ev.kind not in STUDENT_KINDS:
            continue
        p = ev.payload
        by = p.get("authorised_by") if ev.kind == "manual_pass" else None
        out.append(
            StudentEvent(
                at_ms=ev.at_ms,
                day=calc.local_day(ev.at_ms, zone),
                time=calc.local_clock(ev.at_ms, zone),
                kind=ev.kind,
                direction=calc.direction(ev),
                authorised_by=names.get(str(by), str(by)) if by else None,
                period=p.get("period") if ev.kind == "meal_served" else None,
                meal=p.get("meal") if ev.kind == "meal_served" else None,
                amount_tiyn=p.get("amount_tiyn") if ev.kind == "meal_served" else None,
                terminal=terminals.get((ev.device_pk, ev.seq), ""),
            )
        )
    return out
