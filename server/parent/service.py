"""What a parent sees of their child: entries, exits, meals and manual passes of a day and a
month (in the school's local time), and the notifications sent to them."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import StoredEvent
from server.notify.models import OutboxMessage
from server.people.models import Student

KINDS = ("entry", "exit", "meal_served", "manual_pass")


@dataclass(frozen=True, slots=True)
class Happening:
    at_ms: int
    kind: str  # entry, exit, meal_served, manual_pass
    direction: str  # for a manual pass: in / out
    amount_tiyn: int


@dataclass(slots=True)
class DayRow:
    day: dt.date
    first_entry_ms: int | None = None
    last_exit_ms: int | None = None
    meals: int = 0
    manual_passes: int = 0


@dataclass(slots=True)
class ChildMonth:
    today: list[Happening] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def month_bounds(month: dt.date, tz: zoneinfo.ZoneInfo) -> tuple[int, int]:
    start = dt.datetime(month.year, month.month, 1, tzinfo=tz)
    nxt = dt.datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=tz)
    return int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)


def parse_month(text: str, today: dt.date) -> dt.date:
    """ "2026-11" -> 2026-11-01; anything else: this month."""
    try:
        y, m = text.split("-")
        return dt.date(int(y), int(m), 1)
    except ValueError:
        return today.replace(day=1)


def summarise(happenings: Sequence[Happening], tz: zoneinfo.ZoneInfo, today: dt.date) -> ChildMonth:
    """Pure: the month's events -> today's list, one row per day, totals."""
    out = ChildMonth(totals={k: 0 for k in KINDS})
    days: dict[dt.date, DayRow] = {}
    for h in happenings:
        day = dt.datetime.fromtimestamp(h.at_ms / 1000, tz).date()
        row = days.setdefault(day, DayRow(day))
        out.totals[h.kind] = out.totals.get(h.kind, 0) + 1
        if day == today:
            out.today.append(h)
        is_in = h.kind == "entry" or (h.kind == "manual_pass" and h.direction != "out")
        is_out = h.kind == "exit" or (h.kind == "manual_pass" and h.direction == "out")
        if is_in and row.first_entry_ms is None:
            row.first_entry_ms = h.at_ms
        if is_out:
            row.last_exit_ms = h.at_ms
        if h.kind == "meal_served":
            row.meals += 1
        if h.kind == "manual_pass":
            row.manual_passes += 1
    out.days = [days[d] for d in sorted(days, reverse=True)]
    return out


def happenings(session: Session, student: Student, start_ms: int, end_ms: int) -> list[Happening]:
    rows = session.execute(
        select(StoredEvent.at_ms, StoredEvent.kind, StoredEvent.payload)
        .where(
            StoredEvent.school_id == student.school_id,
            StoredEvent.student_id == student.ref,
            StoredEvent.at_ms >= start_ms,
            StoredEvent.at_ms < end_ms,
            StoredEvent.kind.in_(KINDS),
        )
        .order_by(StoredEvent.at_ms)
    ).all()
    return [
        Happening(
            at_ms=at,
            kind=kind,
            direction=str(_get(payload, "direction") or ""),
            amount_tiyn=int(_get(payload, "amount_tiyn") or 0),
        )
        for at, kind, payload in rows
    ]


def _get(payload: Any, key: str) -> Any:
    return payload.get(key) if isinstance(payload, dict) else None


def notifications(
    session: Session, student_pk: int, guardian_pks: Sequence[int], start_ms: int, end_ms: int
) -> list[OutboxMessage]:
    """The messages to this parent (their guardian records only) about the child."""
    if not guardian_pks:
        return []
    return list(
        session.execute(
            select(OutboxMessage)
            .where(
                OutboxMessage.student_pk == student_pk,
                OutboxMessage.guardian_pk.in_(guardian_pks),
                OutboxMessage.created_at_ms >= start_ms,
                OutboxMessage.created_at_ms < end_ms,
            )
            .order_by(OutboxMessage.id.desc())
            .limit(500)
        ).scalars()
    )
