"""The registry's rules as pure functions: the decree's target groups on a date (or over a
period), a roadmap's plan versus fact, the annual statistics by region, and the teachers who
prepared prize-winners. No clock, no I/O, no database: ``today`` and the rows are passed in.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

N_ = str

# Social categories (server.consents) that make a family low-income or large for the decree.
LOW_INCOME_CODES = frozenset({"targeted_assistance", "below_subsistence"})
LARGE_FAMILY_CODES = frozenset({"large_family"})
PRIZE_PLACES = frozenset({1, 2, 3})


class TargetGroup(enum.StrEnum):
    RURAL = "rural"  # living in a rural area (the school is rural)
    URBAN_LARGE_FAMILY = "urban_large_family"
    URBAN_LOW_INCOME = "urban_low_income"


GROUP_LABELS: dict[str, str] = {
    TargetGroup.RURAL: N_("Rural student"),
    TargetGroup.URBAN_LARGE_FAMILY: N_("Urban, large family"),
    TargetGroup.URBAN_LOW_INCOME: N_("Urban, low-income family"),
}


@dataclass(frozen=True, slots=True)
class Membership:
    """A social category with its inclusive validity (from ``StudentCategory``)."""

    code: str
    valid_from: dt.date
    valid_to: dt.date

    def overlaps(self, start: dt.date, end: dt.date) -> bool:
        return self.valid_from <= end and self.valid_to >= start


def target_groups(
    locality: str | None,
    memberships: Iterable[Membership],
    start: dt.date,
    end: dt.date | None = None,
) -> frozenset[TargetGroup]:
    """The decree's groups a child belongs to on ``start`` (or at some day of ``start..end``).

    A rural school's student is in the rural group whatever the family; an urban student is in a
    family group while a category of that kind is valid. A school of unknown locality gives no
    group until the coordinator sets it.
    """
    stop = end if end is not None else start
    if locality == "rural":
        return frozenset({TargetGroup.RURAL})
    if locality != "urban":
        return frozenset()
    codes = {m.code for m in memberships if m.overlaps(start, stop)}
    out: set[TargetGroup] = set()
    if codes & LARGE_FAMILY_CODES:
        out.add(TargetGroup.URBAN_LARGE_FAMILY)
    if codes & LOW_INCOME_CODES:
        out.add(TargetGroup.URBAN_LOW_INCOME)
    return frozenset(out)


def percent(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` in percent, rounded half up to one decimal; None for no whole."""
    if whole <= 0:
        return None
    q = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return float(q)


# ------------------------------------------------------------------------------ plan vs fact


@dataclass(frozen=True, slots=True)
class ActivityFact:
    kind: str
    planned_from: dt.date
    planned_to: dt.date
    status: str  # planned | done | missed | cancelled
    done_on: dt.date | None = None
    place: int | None = None
    teacher: str | None = None  # who prepared the child (a staff member's name)
    title: str = ""


@dataclass(frozen=True, slots=True)
class SupportFact:
    kind: str
    planned_on: dt.date
    planned_tiyn: int
    paid_on: dt.date | None = None
    paid_tiyn: int | None = None


@dataclass(frozen=True, slots=True)
class PlanFact:
    activities_planned: int  # not cancelled
    activities_due: int  # planned to end by today (not cancelled)
    activities_done: int
    activities_overdue: int  # due, neither done nor marked missed
    activities_missed: int
    prizes: int  # done with a place 1-3
    done_percent: float | None  # done of due
    support_planned_tiyn: int
    support_due_tiyn: int  # planned on or before today
    support_paid_tiyn: int
    support_overdue: int  # due and not paid
    paid_percent: float | None  # paid of due amount


def plan_fact(
    activities: Sequence[ActivityFact], support: Sequence[SupportFact], today: dt.date
) -> PlanFact:
    live = [a for a in activities if a.status != "cancelled"]
    due = [a for a in live if a.planned_to <= today]
    done = [a for a in live if a.status == "done"]
    missed = [a for a in live if a.status == "missed"]
    overdue = [a for a in due if a.status == "planned"]
    due_done = sum(1 for a in due if a.status == "done")
    due_support = [s for s in support if s.planned_on <= today]
    due_tiyn = sum(s.planned_tiyn for s in due_support)
    paid = sum(s.paid_tiyn or 0 for s in support if s.paid_on is not None)
    paid_due = sum(s.paid_tiyn or 0 for s in due_support if s.paid_on is not None)
    return PlanFact(
        activities_planned=len(live),
        activities_due=len(due),
        activities_done=len(done),
        activities_overdue=len(overdue),
        activities_missed=len(missed),
        prizes=sum(1 for a in done if a.place in PRIZE_PLACES),
        done_percent=percent(due_done, len(due)),
        support_planned_tiyn=sum(s.planned_tiyn for s in support),
        support_due_tiyn=due_tiyn,
        support_paid_tiyn=paid,
        support_overdue=sum(1 for s in due_support if s.paid_on is None),
        paid_percent=percent(min(paid_due, due_tiyn), due_tiyn),
    )


# --------------------------------------------------------------------------------- reminders


@dataclass(frozen=True, slots=True)
class DueItem:
    item: str  # activity | support
    item_pk: int
    due_on: dt.date
    title: str


def due_soon(
    activities: Iterable[tuple[int, ActivityFact]],
    support: Iterable[tuple[int, SupportFact]],
    today: dt.date,
    days_ahead: int,
) -> list[DueItem]:
    """What a reminder is due for: an activity that starts within ``days_ahead`` days (or has
    ended and still waits for its result), a support payment planned within them (or overdue)."""
    horizon = today + dt.timedelta(days=days_ahead)
    out: list[DueItem] = []
    for pk, a in activities:
        if a.status != "planned":
            continue
        if today <= a.planned_from <= horizon:
            out.append(DueItem("activity", pk, a.planned_from, a.title))
        elif a.planned_to < today:
            out.append(DueItem("activity", pk, a.planned_to, a.title))
    for pk, s in support:
        if s.paid_on is None and s.planned_on <= horizon:
            out.append(DueItem("support", pk, s.planned_on, ""))
    return sorted(out, key=lambda d: (d.due_on, d.item, d.item_pk))


# ---------------------------------------------------------------------- annual statistics


@dataclass(frozen=True, slots=True)
class EntryYear:
    """One registry entry with what the year needs: its region, groups, activities, support."""

    region: str
    entered_on: dt.date
    groups: frozenset[TargetGroup]
    activities: tuple[ActivityFact, ...] = ()
    support: tuple[SupportFact, ...] = ()


@dataclass(slots=True)
class RegionYear:
    region: str
    gifted: int = 0  # in the registry during the year
    rural: int = 0
    urban_large_or_low_income: int = 0
    urban_large_family: int = 0
    urban_low_income: int = 0
    other: int = 0  # in the registry, in none of the decree's groups
    activities_done: Counter[str] = field(default_factory=Counter)  # kind -> count
    support_paid_tiyn: Counter[str] = field(default_factory=Counter)  # kind -> tiyn
    prize_winners: int = 0  # children with at least one prize place in the year
    prizes: int = 0

    @property
    def activities_total(self) -> int:
        return sum(self.activities_done.values())

    @property
    def support_total_tiyn(self) -> int:
        return sum(self.support_paid_tiyn.values())


def in_year(day: dt.date | None, year: int) -> bool:
    return day is not None and day.year == year


def annual_statistics(entries: Iterable[EntryYear], year: int) -> list[RegionYear]:
    """Per region (by id), the year's figures: children in the registry (entered by 31 December)
    by target group (groups as of any day of the year), activities done and support paid in the
    year by kind, prize places won in the year and the children who won them."""
    last = dt.date(year, 12, 31)
    out: dict[str, RegionYear] = {}
    for e in entries:
        if e.entered_on > last:
            continue
        r = out.setdefault(e.region, RegionYear(e.region))
        r.gifted += 1
        if TargetGroup.RURAL in e.groups:
            r.rural += 1
        urban = e.groups & {TargetGroup.URBAN_LARGE_FAMILY, TargetGroup.URBAN_LOW_INCOME}
        if urban:
            r.urban_large_or_low_income += 1
        r.urban_large_family += TargetGroup.URBAN_LARGE_FAMILY in e.groups
        r.urban_low_income += TargetGroup.URBAN_LOW_INCOME in e.groups
        if not e.groups:
            r.other += 1
        won = 0
        for a in e.activities:
            if a.status == "done" and in_year(a.done_on, year):
                r.activities_done[a.kind] += 1
                if a.place in PRIZE_PLACES:
                    won += 1
        r.prizes += won
        r.prize_winners += won > 0
        for s in e.support:
            if in_year(s.paid_on, year):
                r.support_paid_tiyn[s.kind] += s.paid_tiyn or 0
    return [out[k] for k in sorted(out)]


def statistics_total(rows: Sequence[RegionYear]) -> RegionYear:
    t = RegionYear("")
    for r in rows:
        t.gifted += r.gifted
        t.rural += r.rural
        t.urban_large_or_low_income += r.urban_large_or_low_income
        t.urban_large_family += r.urban_large_family
        t.urban_low_income += r.urban_low_income
        t.other += r.other
        t.activities_done.update(r.activities_done)
        t.support_paid_tiyn.update(r.support_paid_tiyn)
        t.prize_winners += r.prize_winners
        t.prizes += r.prizes
    return t


# ------------------------------------------------------------------ teachers of prize-winners


@dataclass(frozen=True, slots=True)
class Prize:
    """A prize place won (an activity's result or a nomination by result) and who prepared it."""

    teacher_key: int
    student_key: int
    day: dt.date
    place: int
    what: str


@dataclass(slots=True)
class TeacherAward:
    teacher_key: int
    prizes: int = 0
    firsts: int = 0
    students: set[int] = field(default_factory=set)
    what: list[str] = field(default_factory=list)


def prize_teachers(prizes: Iterable[Prize], year: int) -> list[TeacherAward]:
    """Teachers who prepared prize-winners in ``year``: most prize places first, then most first
    places, then most children; the same result recorded twice (the same child, day, place and
    title) counts once."""
    seen: set[tuple[int, int, dt.date, int, str]] = set()
    out: dict[int, TeacherAward] = {}
    for p in prizes:
        if p.day.year != year or p.place not in PRIZE_PLACES:
            continue
        key = (p.teacher_key, p.student_key, p.day, p.place, p.what)
        if key in seen:
            continue
        seen.add(key)
        t = out.setdefault(p.teacher_key, TeacherAward(p.teacher_key))
        t.prizes += 1
        t.firsts += p.place == 1
        t.students.add(p.student_key)
        if p.what and p.what not in t.what:
            t.what.append(p.what)
    return sorted(
        out.values(), key=lambda t: (-t.prizes, -t.firsts, -len(t.students), t.teacher_key)
    )
