"""What the home page shows for one school today, in the signed-in user's scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.dashboard import calc
from server.models import School
from server.people.models import Student
from server.reports import service as reports
from server.reports.calc import DayRow, Ev, ManualPass, day_bounds

FEED = 20  # refused taps on the home page; the refusals page has them all


@dataclass(slots=True)
class Refusal:
    at_ms: int
    reason: str
    terminal: str
    student_pk: int | None
    student_name: str  # "" for an unknown card: the card stays at the school


@dataclass(slots=True)
class SchoolDay:
    school: School
    day: dt.date
    zone: str
    presence: calc.Presence | None = None
    manual: list[tuple[DayRow, ManualPass]] = field(default_factory=list)
    meals: dict[str, int] | None = None
    status: reports.SchoolStatus | None = None
    refusals: list[Refusal] | None = None
    refusal_counts: dict[str, int] = field(default_factory=dict)


def _names(db: Session, school_id: str, refs: set[str]) -> dict[str, tuple[int, str]]:
    if not refs:
        return {}
    rows = db.execute(
        select(Student.ref, Student.pk, Student.surname, Student.given_name).where(
            Student.school_id == school_id, Student.ref.in_(sorted(refs))
        )
    )
    return {ref: (pk, f"{surname} {given}") for ref, pk, surname, given in rows}


def refusals(
    db: Session, school_id: str, day: dt.date, zone: str, *, limit: int | None = None
) -> tuple[list[Refusal], dict[str, int]]:
    start, end = day_bounds(day, zone)
    evs: list[Ev] = calc.refusals(reports.events(db, school_id, start, end, ["denied"]))
    counts = calc.refusals_by_reason(evs)
    shown = evs if limit is None else evs[:limit]
    names = _names(db, school_id, {e.student_id for e in shown if e.student_id})
    out = []
    for ev in shown:
        pk, name = names.get(ev.student_id or "", (None, ""))
        out.append(
            Refusal(
                at_ms=ev.at_ms,
                reason=str(ev.payload.get("reason", "")),
                terminal=str(ev.payload.get("terminal", "")),
                student_pk=pk,
                student_name=name,
            )
        )
    return out, counts


def school_day(
    db: Session,
    who: Principal,
    school: School,
    today: dt.date,
    now_ms: int,
    class_pks: list[int] | None = None,
) -> SchoolDay:
    """The blocks this user may see: attendance (of the whole school, or of ``class_pks`` for a
    class teacher), meals, devices and alarms, refused taps."""
    zone = school.timezone
    out = SchoolDay(school=school, day=today, zone=zone)
    sid = school.id
    whole = who.whole_school("reports.attendance", sid)
    if whole or class_pks:
        rows = reports.attendance_day_rows(db, sid, None if whole else class_pks, today)
        out.presence = calc.presence(rows)
        out.manual = sorted(
            ((r, m) for r in rows for m in r.manual_passes), key=lambda rm: rm[1].at_ms
        )
    if who.whole_school("reports.meals", sid) or who.whole_school("canteen.view", sid):
        start, end = day_bounds(today, zone)
        out.meals = calc.meals_by_kind(reports.events(db, sid, start, end, ["meal_served"]))
    if who.whole_school("status.view", sid):
        found = reports.school_status(db, [sid], now_ms)
        out.status = found[0] if found else None
        out.refusals, out.refusal_counts = refusals(db, sid, today, zone, limit=FEED)
    return out
