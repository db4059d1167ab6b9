"""The reports' arithmetic as pure functions over plain rows: no database, no clock.

Days are local days of the school (its timezone): an entry at 23:30 UTC is the next morning's
05:30 in Asia/Almaty and belongs to that day. The service module turns database rows into the
small records below; the console, the parent page and the exports all reuse these functions.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server import clock

MOVES = ("entry", "exit", "manual_pass")
GRADES = "grades"  # the free-meal column of the free grades (1-4); categories use their codes
OTHER = "other"  # a free meal of a student no longer known as eligible (roster changed since)


# ------------------------------------------------------------------------------------ records


@dataclass(frozen=True, slots=True)
class Ev:
    """One stored uplink event, as much of it as the reports read."""

    at_ms: int
    kind: str
    student_id: str | None = None
    staff_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    device_pk: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Pupil:
    pk: int
    ref: str
    name: str
    class_pk: int
    class_name: str
    grade: int
    shift: int


@dataclass(frozen=True, slots=True)
class Membership:
    """A social category with inclusive validity dates (as the edge has it)."""

    code: str
    valid_from: dt.date
    valid_to: dt.date

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to


# --------------------------------------------------------------------------------- local time


def zone_of(name: str) -> zoneinfo.ZoneInfo:
    return clock.zone(name)


def local_dt(at_ms: int, zone: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(at_ms / 1000, zone_of(zone))


def local_day(at_ms: int, zone: str) -> dt.date:
    return local_dt(at_ms, zone).date()


def local_clock(at_ms: int | None, zone: str) -> str:
    return "" if at_ms is None else local_dt(at_ms, zone).strftime("%H:%M")


def day_bounds(day: dt.date, zone: str) -> tuple[int, int]:
    """[start, end) of a local day in epoch ms (23 or 25 hours on a DST change)."""
    tz = zone_of(zone)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def month_days(month: dt.date) -> list[dt.date]:
    first = month.replace(day=1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return [first + dt.timedelta(days=i) for i in range((nxt - first).days)]


def month_bounds(month: dt.date, zone: str) -> tuple[int, int]:
    days = month_days(month)
    return day_bounds(days[0], zone)[0], day_bounds(days[-1], zone)[1]


def parse_month(text: str) -> dt.date:
    """``2026-11`` -> 2026-11-01; ValueError with the reason otherwise."""
    try:
        year, month = text.split("-")
        return dt.date(int(year), int(month), 1)
    except ValueError as err:
        raise ValueError(f"month {text!r} is not YYYY-MM") from err


# ----------------------------------------------------------------------------------- moves


def effective(events: Iterable[Ev]) -> list[Ev]:
    """Events with granted passes the person did not take removed: a ``not_passed`` event names
    the ``granted_seq`` of its device's entry or exit that did not happen."""
    evs = list(events)
    cancelled = {
        (e.device_pk, int(e.payload.get("granted_seq", 0))) for e in evs if e.kind == "not_passed"
    }
    if not cancelled:
        return evs
    return [
        e for e in evs if not (e.kind in ("entry", "exit") and (e.device_pk, e.seq) in cancelled)
    ]


def direction(ev: Ev) -> str | None:
    """ "in", "out", or None for an event that is not a pass through the entrance."""
    if ev.kind == "entry":
        return "in"
    if ev.kind == "exit":
        return "out"
    if ev.kind == "manual_pass":
        d = ev.payload.get("direction")
        return d if d in ("in", "out") else None
    return None


def _hhmm(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    h, m = text.split(":")
    return int(h), int(m)


def is_late(arrival_ms: int, zone: str, starts_at: str | None) -> bool:
    """Late when the arrival's local minute is after the lessons' start (08:00:59 is on time)."""
    start = _hhmm(starts_at)
    if start is None:
        return False
    t = local_dt(arrival_ms, zone)
    return (t.hour, t.minute) > start


# ------------------------------------------------------------------------------ attendance


@dataclass(frozen=True, slots=True)
class ManualPass:
    at_ms: int
    direction: str
    authorised_by: str  # the staff member's name when known, else their ref


@dataclass(frozen=True, slots=True)
class DayRow:
    pupil: Pupil
    arrival_ms: int | None
    departure_ms: int | None
    late: bool
    manual_passes: tuple[ManualPass, ...]

    @property
    def absent(self) -> bool:
        return self.arrival_ms is None


def attendance_day(
    pupils: Sequence[Pupil],
    events: Iterable[Ev],
    zone: str,
    day: dt.date,
    starts: Mapping[int, str | None],
    staff_names: Mapping[str, str] | None = None,
) -> list[DayRow]:
    """Each pupil's first arrival and last departure on ``day``, late against their shift's
    lessons start (``starts``: shift number -> "HH:MM"), and the manual passes with who
    authorised them. No arrival: absent (a departure alone does not make a pupil present)."""
    names = staff_names or {}
    first_in: dict[str, int] = {}
    last_out: dict[str, int] = {}
    manual: dict[str, list[ManualPass]] = defaultdict(list)
    for ev in sorted(effective(events), key=lambda e: (e.at_ms, e.seq)):
        if ev.student_id is None or local_day(ev.at_ms, zone) != day:
            continue
        d = direction(ev)
        if d == "in":
            first_in.setdefault(ev.student_id, ev.at_ms)
        elif d == "out":
            last_out[ev.student_id] = ev.at_ms
        if ev.kind == "manual_pass" and d is not None:
            by = str(ev.payload.get("authorised_by", ""))
            manual[ev.student_id].append(ManualPass(ev.at_ms, d, names.get(by, by)))
    rows = []
    for p in pupils:
        arrival = first_in.get(p.ref)
        departure = last_out.get(p.ref)
        if departure is not None and arrival is not None and departure < arrival:
            departure = None  # left before the day's first arrival: a previous visit
        rows.append(
            DayRow(
                pupil=p,
                arrival_ms=arrival,
                departure_ms=departure,
                late=arrival is not None and is_late(arrival, zone, starts.get(p.shift)),
                manual_passes=tuple(manual.get(p.ref, ())),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class MonthRow:
    pupil: Pupil
    present: int
    late: int
    absent: int


def arrivals_by_day(events: Iterable[Ev], zone: str) -> dict[dt.date, dict[str, int]]:
    """local day -> student ref -> first arrival (ms)."""
    out: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for ev in sorted(effective(events), key=lambda e: (e.at_ms, e.seq)):
        if ev.student_id is not None and direction(ev) == "in":
            out[local_day(ev.at_ms, zone)].setdefault(ev.student_id, ev.at_ms)
    return out


def attendance_month(
    pupils: Sequence[Pupil],
    events: Iterable[Ev],
    zone: str,
    school_days: Iterable[dt.date],
    starts: Mapping[int, str | None],
) -> list[MonthRow]:
    """Per pupil over the school days given (days the school was open): days present, days late,
    days absent."""
    days = sorted(set(school_days))
    arrivals = arrivals_by_day(events, zone)
    rows = []
    for p in pupils:
        present = late = 0
        for d in days:
            at = arrivals.get(d, {}).get(p.ref)
            if at is not None:
                present += 1
                late += is_late(at, zone, starts.get(p.shift))
        rows.append(MonthRow(p, present, late, len(days) - present))
    return rows


def open_days(events: Iterable[Ev], zone: str) -> set[dt.date]:
    """Days the school was open: any student arrived."""
    return set(arrivals_by_day(events, zone))


def present_per_day(
    refs: Iterable[str], events: Iterable[Ev], zone: str, days: Sequence[dt.date]
) -> list[tuple[dt.date, int]]:
    wanted = set(refs)
    arrivals = arrivals_by_day(events, zone)
    return [(d, len(wanted & arrivals.get(d, {}).keys())) for d in days]


# ----------------------------------------------------------------------------------- meals


def free_category(
    grade: int | None,
    memberships: Iterable[Membership],
    day: dt.date,
    free_grades: Iterable[int],
    free_categories: Sequence[str],
) -> str:
    """The budget line a free meal is counted under: the free grades first (a grade 1-4 pupil is
    counted once, there), else the first of the policy's categories the pupil held that day."""
    if grade is not None and grade in set(free_grades):
        return GRADES
    held = {m.code for m in memberships if m.valid_on(day)}
    for code in free_categories:
        if code in held:
            return code
    return OTHER


@dataclass(slots=True)
class MealReport:
    """Free meals by (day, period, category) and paid meals by day, for one school."""

    free: Counter[tuple[dt.date, str, str]] = field(default_factory=Counter)
    paid: Counter[dt.date] = field(default_factory=Counter)
    paid_tiyn: Counter[dt.date] = field(default_factory=Counter)
    voucher: Counter[dt.date] = field(default_factory=Counter)

    def categories(self, order: Sequence[str]) -> list[str]:
        """The statement's columns: the policy's order, then any others that occur."""
        seen = {c for (_d, _p, c) in self.free}
        cols = [GRADES, *order]
        return cols + sorted(seen - set(cols))

    def periods(self) -> list[str]:
        return sorted({p for (_d, p, _c) in self.free})

    def free_by_day(self) -> dict[dt.date, Counter[str]]:
        out: dict[dt.date, Counter[str]] = defaultdict(Counter)
        for (d, _p, c), n in self.free.items():
            out[d][c] += n
        return out

    def free_total(self) -> int:
        return sum(self.free.values())


def meal_report(
    events: Iterable[Ev],
    zone: str,
    grade_of: Mapping[str, int],
    memberships_of: Mapping[str, Sequence[Membership]],
    free_grades: Iterable[int],
    free_categories: Sequence[str],
) -> MealReport:
    """Count ``meal_served`` events. The day is the edge's ``local_date`` (the day it decided
    on), else the local day of the event time."""
    rep = MealReport()
    grades = set(free_grades)
    for ev in events:
        if ev.kind != "meal_served" or ev.student_id is None:
            continue
        day = _meal_day(ev, zone)
        meal = ev.payload.get("meal")
        if meal == "free":
            cat = free_category(
                grade_of.get(ev.student_id),
                memberships_of.get(ev.student_id, ()),
                day,
                grades,
                free_categories,
            )
            rep.free[(day, str(ev.payload.get("period", "")), cat)] += 1
        elif meal == "paid":
            rep.paid[day] += 1
            rep.paid_tiyn[day] += int(ev.payload.get("amount_tiyn", 0))
        elif meal == "voucher":
            rep.voucher[day] += 1
    return rep


def _meal_day(ev: Ev, zone: str) -> dt.date:
    text = ev.payload.get("local_date")
    if isinstance(text, str):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    return local_day(ev.at_ms, zone)


# --------------------------------------------------------------------------------- library


def library_counts(events: Iterable[Ev]) -> Counter[str]:
    """student ref -> library visits."""
    return Counter(
        e.student_id for e in events if e.kind == "library_visit" and e.student_id is not None
    )


# ------------------------------------------------------------------------------ evacuation


@dataclass(frozen=True, slots=True)
class LastMove:
    """A person's last pass today: who (student ref or staff ref), and which way."""

    student_id: str | None
    staff_id: str | None
    kind: str
    direction: str | None
    at_ms: int


def inside(last: Iterable[LastMove]) -> tuple[set[str], set[str]]:
    """(student refs, staff refs) inside: their last pass of the day was inwards."""
    students: set[str] = set()
    staff: set[str] = set()
    for m in last:
        d = m.direction or direction(Ev(m.at_ms, m.kind))
        if d != "in":
            continue
        if m.student_id is not None:
            students.add(m.student_id)
        elif m.staff_id is not None:
            staff.add(m.staff_id)
    return students, staff


# ---------------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class DeviceLine:
    device: str
    online: bool
    since_ms: int | None
    last_seen_ms: int | None
    backlog: int
    oldest_unsent_ms: int | None
    readers_offline: tuple[str, ...]
    gaps: int


def device_line(
    device: str,
    online: bool,
    since_ms: int | None,
    last_seen_ms: int | None,
    last_status: Mapping[str, Any] | None,
    gaps: Sequence[Any] | None,
) -> DeviceLine:
    st = last_status or {}
    readers = st.get("readers_offline") or []
    return DeviceLine(
        device=device,
        online=online,
        since_ms=since_ms,
        last_seen_ms=last_seen_ms,
        backlog=int(st.get("backlog") or 0),
        oldest_unsent_ms=st.get("oldest_unsent_ms"),
        readers_offline=tuple(str(r) for r in readers),
        gaps=len(gaps or ()),
    )


def active_alarms(alarm_events: Iterable[Ev]) -> list[Ev]:
    """Alarms still raised: the newest event per (device, terminal, code) has ``active``."""
    newest: dict[tuple[int, str, str], Ev] = {}
    for ev in sorted(alarm_events, key=lambda e: (e.at_ms, e.seq)):
        key = (ev.device_pk, str(ev.payload.get("terminal", "")), str(ev.payload.get("code", "")))
        newest[key] = ev
    return [e for e in newest.values() if e.payload.get("active")]
