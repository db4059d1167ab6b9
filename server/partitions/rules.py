"""Monthly partitions of ``events`` as pure functions: names, bounds, which months to create and
which are past their retention period. No clock, no I/O.

The partition key is the event's own ``at_ms`` (the edge journals it with the event and a
re-send carries the same value), split at UTC month boundaries. A month of events is retired
when the month ended more than the retention period ago (``retire_due``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

DAY_MS = 86_400_000
PREFIX = "events_p"
DEFAULT = "events_default"
_NAME = re.compile(r"^events_p(\d{4})(\d{2})$")
# Months created ahead of the current one (and behind it, for late events) by ``ensure``.
AHEAD = 3
BEHIND = 1


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 9999:
            raise ValueError(f"no such month {self.year}-{self.month}")

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.year:04d}{self.month:02d}"

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shift(self, months: int) -> Month:
        n = self.year * 12 + self.month - 1 + months
        return Month(n // 12, n % 12 + 1)

    @property
    def start_ms(self) -> int:
        return _ms(dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC))

    @property
    def end_ms(self) -> int:
        return self.shift(1).start_ms


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1000


def month_of(at_ms: int) -> Month:
    t = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    return Month(t.year, t.month)


def parse_name(name: str) -> Month | None:
    m = _NAME.match(name)
    return Month(int(m.group(1)), int(m.group(2))) if m else None


def parse_label(text: str) -> Month:
    """``2026-11`` -> Month(2026, 11); ValueError with the reason otherwise."""
    try:
        year, month = text.split("-")
        return Month(int(year), int(month))
    except ValueError as err:
        raise ValueError(f"month {text!r} is not YYYY-MM") from err


def wanted(now_ms: int, ahead: int = AHEAD, behind: int = BEHIND) -> list[Month]:
    """The months ``ensure`` keeps ready: ``behind`` before the current one to ``ahead`` after."""
    cur = month_of(now_ms)
    return [cur.shift(i) for i in range(-behind, ahead + 1)]


def retire_due(months: Iterable[Month], now_ms: int, days: int) -> list[Month]:
    """Months that ended ``days`` full days ago or more (the same period as the erasure of a
    leaver's data: README, "Retention"). The current month is never due."""
    cur = month_of(now_ms)
    return sorted(m for m in months if m < cur and m.end_ms + days * DAY_MS <= now_ms)


def is_partition(name: str | None) -> bool:
    """A partition of ``events`` (the models describe the partitioned table only)."""
    return name == DEFAULT or (name is not None and _NAME.match(name) is not None)
