"""The board of trustees' report as pure functions over plain rows (seed 002: the board decided
on consent, biometrics, cards, who answers for the system, and to take parents' concerns into
account; this is what it reads at its next meeting). No I/O, no clock."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

N_ = str

KINDS = ("data", "biometric", "notifications")
KIND_LABEL = {
    "data": N_("Personal data"),
    "biometric": N_("Biometrics"),
    "notifications": N_("Notifications"),
}
TOPICS = ("biometrics", "data", "cards", "meals", "notifications", "other")
TOPIC_LABEL = {
    "biometrics": N_("Biometrics"),
    "data": N_("Personal data"),
    "cards": N_("Cards"),
    "meals": N_("Meals"),
    "notifications": N_("Notifications"),
    "other": N_("Other"),
}


@dataclass(frozen=True, slots=True)
class Coverage:
    kind: str
    given: int
    withdrawn: int
    none: int

    @property
    def total(self) -> int:
        return self.given + self.withdrawn + self.none

    @property
    def percent(self) -> int:
        return round(100 * self.given / self.total) if self.total else 0


def coverage(
    students: Iterable[int], decisions: Mapping[int, Mapping[str, bool]]
) -> list[Coverage]:
    """Per consent kind, the active students whose current decision is given, withdrawn, or
    none recorded. ``decisions``: student -> kind -> granted (the newest decision)."""
    pks = list(students)
    out = []
    for kind in KINDS:
        c: Counter[str] = Counter()
        for pk in pks:
            d = decisions.get(pk, {}).get(kind)
            c["none" if d is None else "given" if d else "withdrawn"] += 1
        out.append(Coverage(kind, c["given"], c["withdrawn"], c["none"]))
    return out


@dataclass(frozen=True, slots=True)
class Biometrics:
    without: int  # active students without biometric consent (withdrawn or never given)
    withdrawn: int  # of them: consent withdrawn
    with_card: int  # of them: an active card (the seed's alternative)
    without_card: int  # of them: no active card (a manual pass is their only way in)


def biometrics(
    students: Iterable[int],
    decisions: Mapping[int, Mapping[str, bool]],
    with_active_card: set[int],
) -> Biometrics:
    refused = [pk for pk in students if not decisions.get(pk, {}).get("biometric", False)]
    withdrawn = sum(1 for pk in refused if decisions.get(pk, {}).get("biometric") is False)
    carded = sum(1 for pk in refused if pk in with_active_card)
    return Biometrics(len(refused), withdrawn, carded, len(refused) - carded)


def by_count(items: Iterable[str]) -> list[tuple[str, int]]:
    """Counts, largest first, then by name."""
    return sorted(Counter(items).items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(frozen=True, slots=True)
class ConcernRow:
    raised_on: dt.date
    topic: str
    text: str
    answer: str
    answered_on: dt.date | None


@dataclass(slots=True)
class Concerns:
    rows: list[ConcernRow] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(1 for r in self.rows if r.answered_on is not None)

    @property
    def open(self) -> int:
        return len(self.rows) - self.answered

    def by_topic(self) -> list[tuple[str, int, int]]:
        """(topic, raised, answered) in TOPICS order, topics that occur only."""
        out = []
        for t in TOPICS:
            rs = [r for r in self.rows if r.topic == t]
            if rs:
                out.append((t, len(rs), sum(1 for r in rs if r.answered_on is not None)))
        return out


def check_concern(topic: str, text: str, raised_on: dt.date, today: dt.date) -> tuple[str, str]:
    """A concern form: topic, text (no parent's name is asked for), a date not in the future."""
    if topic not in TOPICS:
        raise ConcernError("topic", N_("Choose a topic."))
    body = " ".join(text.split())
    if not body:
        raise ConcernError("text", N_("Write the concern."))
    if len(body) > 1000:
        raise ConcernError("text", N_("At most 1000 characters."))
    if raised_on > today:
        raise ConcernError("raised_on", N_("The date cannot be in the future."))
    return topic, body


def check_answer(text: str) -> str:
    body = " ".join(text.split())
    if not body:
        raise ConcernError("answer", N_("Write the answer."))
    if len(body) > 1000:
        raise ConcernError("answer", N_("At most 1000 characters."))
    return body


class ConcernError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def period_default(today: dt.date) -> tuple[dt.date, dt.date]:
    """The school year so far: from 1 September (of last year before September)."""
    year = today.year if today.month >= 9 else today.year - 1
    return dt.date(year, 9, 1), today
