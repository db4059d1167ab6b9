"""The dashboard's numbers, pure: computed from report rows and events, never from a clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.reports.calc import DayRow, Ev

# A tap refused for these reasons is not a refusal a person on duty acts on: the student pays
# (a PAY screen) or chose nothing yet.
NOT_REFUSALS = frozenset({"pay"})


@dataclass(frozen=True, slots=True)
class Presence:
    present: int  # arrived today and not gone out since
    left: int  # arrived, then went out
    late: int  # arrived after their shift's lessons began
    absent: int  # no arrival today
    total: int


def presence(rows: Sequence[DayRow]) -> Presence:
    arrived = [r for r in rows if r.arrival_ms is not None]
    left = sum(
        1
        for r in arrived
        if r.departure_ms is not None and r.arrival_ms is not None and r.departure_ms > r.arrival_ms
    )
    return Presence(
        present=len(arrived) - left,
        left=left,
        late=sum(1 for r in arrived if r.late),
        absent=len(rows) - len(arrived),
        total=len(rows),
    )


def meals_by_kind(events: Iterable[Ev]) -> dict[str, int]:
    """Meals served, by kind (free, paid, voucher)."""
    counts: Counter[str] = Counter()
    for ev in events:
        if ev.kind == "meal_served":
            counts[str(ev.payload.get("meal", "free"))] += 1
    return dict(sorted(counts.items()))


def refusals(events: Iterable[Ev]) -> list[Ev]:
    """Refused taps, newest first: blocked or unknown cards, passback, outside hours..."""
    out = [
        ev
        for ev in events
        if ev.kind == "denied" and str(ev.payload.get("reason", "")) not in NOT_REFUSALS
    ]
    return sorted(out, key=lambda e: (e.at_ms, e.seq), reverse=True)


def refusals_by_reason(events: Iterable[Ev]) -> dict[str, int]:
    return dict(Counter(str(ev.payload.get("reason", "")) for ev in refusals(events)).most_common())
