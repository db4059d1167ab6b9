"""The level rules of the "Elbasy Medal" (seed 004 section 3.2, issue 17 "The level rules, as a
contract"): one participant's journal in, the percent of each direction, the rating and whether
the level is complete out.

Pure: no clock (``today`` is passed in), no I/O. ``parse_journal`` reads the JSON text of the
contract and refuses every bad input with a ``JournalError`` naming the field; ``evaluate`` is
what ``qaqpa server badges evaluate`` and the console's ratings call.

Arithmetic is exact: hours and days are ``Decimal`` (JSON numbers are read as decimals, never as
binary floats) and percents are ``Fraction`` until they are rounded half up to one decimal for
the report. The rating is the mean of the exact (unrounded) direction percents.
"""

from __future__ import annotations

import enum
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, TypeVar

# Bounds of every input (a journal is one participant's: a year of weekly entries in several
# directions is a few hundred entries).
MAX_JOURNAL_BYTES = 2_000_000
MAX_ENTRIES = 20_000
MAX_PARTICIPANT_CHARS = 100
MAX_TITLE_CHARS = 300
MAX_HOURS = Decimal(168)  # one entry can at most cover a whole week
MAX_DAYS = Decimal(366)
MAX_DECIMAL_PLACES = 6
MAX_AGE = 29

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_E = TypeVar("_E", bound=enum.StrEnum)
_PLACES = Decimal(1).scaleb(-MAX_DECIMAL_PLACES)


class Level(enum.StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class Direction(enum.StrEnum):
    """The directions an entry can be written in (and, but for ``work`` below gold, reported)."""

    SPORT = "sport"
    TALENTS = "talents"
    VOLUNTEERING = "volunteering"
    READING = "reading"
    HERITAGE = "heritage"
    TRIP = "trip"
    WORK = "work"


class Section(enum.StrEnum):
    """The three book lists: the Kazakh golden collection, world literature, personal growth."""

    KAZAKH = "kazakh"
    WORLD = "world"
    GROWTH = "growth"


class Status(enum.StrEnum):
    CONFIRMED = "confirmed"
    PENDING = "pending"
    REJECTED = "rejected"


class HeritageMode(enum.StrEnum):
    WEEKS = "weeks"
    BOOK = "book"


WEEKLY_DIRECTIONS = (Direction.SPORT, Direction.TALENTS, Direction.VOLUNTEERING)
LONG_CHOICES = (Direction.SPORT, Direction.TALENTS)
# The order of ``directions`` in the report.
REPORT_ORDER = (
    Direction.SPORT,
    Direction.TALENTS,
    Direction.VOLUNTEERING,
    Direction.READING,
    Direction.HERITAGE,
    Direction.TRIP,
    Direction.WORK,
)
WEEKS_OF_MONTHS: Mapping[int, int] = {3: 13, 6: 26, 9: 39, 12: 52}
MIN_AGE: Mapping[Level, int] = {Level.BRONZE: 14, Level.SILVER: 15, Level.GOLD: 16}
HERITAGE_MONTHS: Mapping[Level, tuple[int, ...]] = {
    Level.BRONZE: (3,),
    Level.SILVER: (3, 6),
    Level.GOLD: (6, 9),
}


class JournalError(ValueError):
    """A journal that does not follow the contract: ``field`` names where (``entries[3].hours``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- the typed journal -----------------------------------------------------------------------


@dataclass(frozen=True)
class HeritagePlan:
    mode: HeritageMode
    months: int | None = None  # only in ``weeks`` mode


@dataclass(frozen=True)
class Plan:
    heritage: HeritagePlan
    long: Direction | None = None  # sport or talents; required at silver and gold


@dataclass(frozen=True)
class HoursEntry:
    """Hours in a weekly direction (sport, talents, volunteering, heritage)."""

    direction: Direction
    day: date
    hours: Decimal
    status: Status


@dataclass(frozen=True)
class BookEntry:
    """A book read (``reading``), or the Kazakh book of heritage in ``book`` mode."""

    direction: Direction
    day: date
    book: str
    section: Section
    status: Status


@dataclass(frozen=True)
class DaysEntry:
    """A trip (``trip``) or work experience (``work``), in days."""

    direction: Direction
    day: date
    days: Decimal
    status: Status


Entry = HoursEntry | BookEntry | DaysEntry


@dataclass(frozen=True)
class Journal:
    participant: str
    birth_date: date
    level: Level
    start: date
    plan: Plan
    entries: tuple[Entry, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Requirements:
    """What a level asks, in the units the rules count. ``level_requirements`` gives the level's
    numbers; the operator may record an individual set for a participant with a disability
    (with its basis, outside this module), which ``evaluate`` then uses instead.

    ``heritage_weeks`` is ``None`` in ``book`` mode; ``work_days`` is ``None`` where work
    experience is not part of the level (no ``work`` direction is reported then). A requirement
    of 0 counts as met.
    """

    weeks: Mapping[Direction, int]  # sport, talents, volunteering
    books: int
    kazakh_books: int
    heritage_weeks: int | None
    trip_days: int
    work_days: int | None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form ``requirements_from_mapping`` reads (to store an individual set)."""
        return {
            "weeks": {d.value: n for d, n in self.weeks.items()},
            "books": self.books,
            "kazakh_books": self.kazakh_books,
            "heritage_weeks": self.heritage_weeks,
            "trip_days": self.trip_days,
            "work_days": self.work_days,
        }


@dataclass(frozen=True)
class Evaluation:
    """Exact percents (``Fraction`` in 0..100) per reported direction, in report order."""

    participant: str
    level: Level
    eligible_age: bool
    percents: Mapping[Direction, Fraction]

    @property
    def rating(self) -> Fraction:
        values = list(self.percents.values())
        return sum(values, Fraction(0)) / len(values) if values else Fraction(0)

    @property
    def complete(self) -> bool:
        return self.eligible_age and all(p == 100 for p in self.percents.values())

    def as_dict(self) -> dict[str, Any]:
        """The report of the contract (``float`` values that print with one decimal)."""
        return {
            "participant": self.participant,
            "level": self.level.value,
            "eligible_age": self.eligible_age,
            "directions": {d.value: float(round_half_up(p)) for d, p in self.percents.items()},
            "rating": float(round_half_up(self.rating)),
            "complete": self.complete,
        }


# --- parsing ---------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise JournalError("journal", f"{name} is not a number this journal accepts")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JournalError(str(key), "the key appears twice in one object")
        out[key] = value
    return out


def parse_journal(raw: str | bytes) -> Journal:
    """The JSON text of one journal, checked against the contract.

    Raises ``JournalError(field, message)`` for: text that is not JSON, ``NaN`` or ``Infinity``,
    a missing, unknown or repeated key, an unknown level, direction, section, status or mode, a
    date not written exactly ``YYYY-MM-DD``, negative or non-numeric hours or days, heritage
    months the level does not allow, ``plan.long`` missing at silver or gold, a work entry below
    gold, and anything over the size bounds.
    """
    if len(raw) > MAX_JOURNAL_BYTES:
        raise JournalError("journal", f"larger than {MAX_JOURNAL_BYTES} bytes")
    try:
        data = json.loads(
            raw,
            parse_float=Decimal,
            parse_constant=_refuse_constant,
            object_pairs_hook=_refuse_duplicates,
        )
    except JournalError:
        raise
    except (ValueError, RecursionError) as err:  # JSONDecodeError, bad UTF-8
        raise JournalError("journal", f"not valid JSON ({err})") from err
    return journal_from_mapping(data)


def _keys(obj: Any, where: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    if not isinstance(obj, Mapping):
        raise JournalError(where or "journal", "must be a JSON object")
    for key in obj:
        if key not in required and key not in optional:
            name = key if isinstance(key, str) else repr(key)
            raise JournalError(f"{where}.{name}" if where else name, "unknown key")
    for key in required:
        if key not in obj:
            raise JournalError(f"{where}.{key}" if where else key, "missing")


def _choice(kind: type[_E], value: Any, where: str) -> _E:
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in kind)
    raise JournalError(where, f"unknown value {str(value)[:40]!r} (one of: {allowed})")


def parse_date(value: Any, where: str) -> date:
    """A date written exactly ``YYYY-MM-DD`` (``20250901`` and ``2025-W36-1`` are refused)."""
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise JournalError(where, "a date must be written exactly YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise JournalError(where, f"not a calendar date ({err})") from err


def _amount(value: Any, where: str, upper: Decimal) -> Decimal:
    """A non-negative finite decimal number (a JSON number, never a string or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise JournalError(where, "must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise JournalError(where, "must be a finite number")
        value = Decimal(repr(value))  # the shortest text of the float: what the JSON said
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError) as err:
        raise JournalError(where, "must be a number") from err
    if not number.is_finite():
        raise JournalError(where, "must be a finite number")
    if number < 0:
        raise JournalError(where, "must not be negative")
    if number > upper:
        raise JournalError(where, f"must be at most {upper}")
    if number != number.quantize(_PLACES):  # keeps every sum exact in Decimal's precision
        raise JournalError(where, f"at most {MAX_DECIMAL_PLACES} decimal places")
    return number + 0  # normalises -0 and keeps the value exact


def _title(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise JournalError(where, "must be a string")
    if len(value) > MAX_TITLE_CHARS:
        raise JournalError(where, f"longer than {MAX_TITLE_CHARS} characters")
    if not title_key(value):
        raise JournalError(where, "must not be empty")
    return value


def _plan(obj: Any, level: Level) -> Plan:
    _keys(obj, "plan", ("heritage",), ("long",))
    long: Direction | None = None
    if "long" in obj:
        long = _choice(Direction, obj["long"], "plan.long")
        if long not in LONG_CHOICES:
            raise JournalError("plan.long", "must be sport or talents")
    elif level is not Level.BRONZE:
        raise JournalError("plan.long", f"missing (required at {level.value})")
    heritage = obj["heritage"]
    if not isinstance(heritage, Mapping) or "mode" not in heritage:
        _keys(heritage, "plan.heritage", ("mode",), ("months",))
    mode = _choice(HeritageMode, heritage["mode"], "plan.heritage.mode")
    if mode is HeritageMode.BOOK:
        _keys(heritage, "plan.heritage", ("mode",))
        return Plan(heritage=HeritagePlan(mode), long=long)
    _keys(heritage, "plan.heritage", ("mode", "months"))
    months = heritage["months"]
    allowed = HERITAGE_MONTHS[level]
    if isinstance(months, bool) or not isinstance(months, int) or months not in allowed:
        raise JournalError(
            "plan.heritage.months",
            f"{str(months)[:20]} is not allowed at {level.value} (one of: "
            + ", ".join(str(m) for m in allowed)
            + ")",
        )
    return Plan(heritage=HeritagePlan(mode, months), long=long)


def _entry(obj: Any, where: str, level: Level) -> Entry:
    if not isinstance(obj, Mapping):
        raise JournalError(where, "must be a JSON object")
    if "direction" not in obj:
        raise JournalError(f"{where}.direction", "missing")
    direction = _choice(Direction, obj["direction"], f"{where}.direction")
    if direction is Direction.WORK and level is not Level.GOLD:
        raise JournalError(f"{where}.direction", "work experience is part of gold only")
    book_form = direction is Direction.READING or (
        direction is Direction.HERITAGE and "book" in obj
    )
    if book_form:
        _keys(obj, where, ("direction", "date", "book", "section", "status"))
        return BookEntry(
            direction=direction,
            day=parse_date(obj["date"], f"{where}.date"),
            book=_title(obj["book"], f"{where}.book"),
            section=_choice(Section, obj["section"], f"{where}.section"),
            status=_choice(Status, obj["status"], f"{where}.status"),
        )
    if direction in (Direction.TRIP, Direction.WORK):
        _keys(obj, where, ("direction", "date", "days", "status"))
        return DaysEntry(
            direction=direction,
            day=parse_date(obj["date"], f"{where}.date"),
            days=_amount(obj["days"], f"{where}.days", MAX_DAYS),
            status=_choice(Status, obj["status"], f"{where}.status"),
        )
    _keys(obj, where, ("direction", "date", "hours", "status"))
    return HoursEntry(
        direction=direction,
        day=parse_date(obj["date"], f"{where}.date"),
        hours=_amount(obj["hours"], f"{where}.hours", MAX_HOURS),
        status=_choice(Status, obj["status"], f"{where}.status"),
    )


def journal_from_mapping(data: Any) -> Journal:
    """The decoded JSON object of one journal, checked like ``parse_journal`` checks it."""
    _keys(data, "", ("participant", "birth_date", "level", "start", "plan", "entries"))
    participant = data["participant"]
    if not isinstance(participant, str) or not participant.strip():
        raise JournalError("participant", "must be a non-empty string")
    if len(participant) > MAX_PARTICIPANT_CHARS:
        raise JournalError("participant", f"longer than {MAX_PARTICIPANT_CHARS} characters")
    level = _choice(Level, data["level"], "level")
    birth_date = parse_date(data["birth_date"], "birth_date")
    start = parse_date(data["start"], "start")
    plan = _plan(data["plan"], level)
    raw_entries = data["entries"]
    if not isinstance(raw_entries, list):
        raise JournalError("entries", "must be a JSON array")
    if len(raw_entries) > MAX_ENTRIES:
        raise JournalError("entries", f"more than {MAX_ENTRIES} entries")
    entries = tuple(_entry(e, f"entries[{i}]", level) for i, e in enumerate(raw_entries))
    return Journal(participant, birth_date, level, start, plan, entries)


# --- the rules -------------------------------------------------------------------------------


def title_key(title: str) -> str:
    """A book title as compared: Unicode NFC, trimmed, case-folded."""
    return unicodedata.normalize("NFC", title).strip().casefold()


def age_on(birth_date: date, day: date) -> int:
    """Completed years on ``day`` (a 29 February birthday is reached on 1 March in common years)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def eligible_age(birth_date: date, level: Level, start: date) -> bool:
    return MIN_AGE[level] <= age_on(birth_date, start) <= MAX_AGE


def level_requirements(level: Level, plan: Plan) -> Requirements:
    """The level's numbers (seed 004 section 3.2), for this plan's long direction and heritage."""
    heritage_weeks = (
        WEEKS_OF_MONTHS[plan.heritage.months]
        if plan.heritage.mode is HeritageMode.WEEKS and plan.heritage.months is not None
        else None
    )
    if level is Level.BRONZE:
        weeks = {Direction.SPORT: 13, Direction.TALENTS: 13, Direction.VOLUNTEERING: 13}
        return Requirements(weeks, 3, 1, heritage_weeks, 2, None)
    long = plan.long or Direction.SPORT
    other = Direction.TALENTS if long is Direction.SPORT else Direction.SPORT
    if level is Level.SILVER:
        weeks = {long: 26, other: 13, Direction.VOLUNTEERING: 26}
        return Requirements(weeks, 6, 2, heritage_weeks, 3, None)
    weeks = {long: 39, other: 26, Direction.VOLUNTEERING: 52}
    return Requirements(weeks, 9, 3, heritage_weeks, 3, 5)


MAX_REQUIRED = 520  # ten years of weeks: a bound on any individual number


def requirements_from_mapping(data: Any) -> Requirements:
    """An individual set of requirements recorded by the operator (``Requirements.as_dict``
    form), checked: every key present, whole numbers in 0..520, Kazakh books within books.
    Raises ``JournalError`` naming the field (``requirements.weeks.sport``)."""
    keys = ("weeks", "books", "kazakh_books", "heritage_weeks", "trip_days", "work_days")
    _keys(data, "requirements", keys)

    def whole(value: Any, where: str, nullable: bool = False) -> int | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise JournalError(where, "must be a whole number" + (" or null" if nullable else ""))
        if not 0 <= value <= MAX_REQUIRED:
            raise JournalError(where, f"must be within 0..{MAX_REQUIRED}")
        return value

    weeks_in = data["weeks"]
    _keys(weeks_in, "requirements.weeks", [d.value for d in WEEKLY_DIRECTIONS])
    weeks: dict[Direction, int] = {}
    for d in WEEKLY_DIRECTIONS:
        n = whole(weeks_in[d.value], f"requirements.weeks.{d.value}")
        assert n is not None
        weeks[d] = n
    books = whole(data["books"], "requirements.books")
    kazakh = whole(data["kazakh_books"], "requirements.kazakh_books")
    trip = whole(data["trip_days"], "requirements.trip_days")
    assert books is not None and kazakh is not None and trip is not None
    if kazakh > books:
        raise JournalError("requirements.kazakh_books", "must not exceed books")
    return Requirements(
        weeks=weeks,
        books=books,
        kazakh_books=kazakh,
        heritage_weeks=whole(data["heritage_weeks"], "requirements.heritage_weeks", True),
        trip_days=trip,
        work_days=whole(data["work_days"], "requirements.work_days", True),
    )


def _ratio(have: Fraction | Decimal | int, need: int) -> Fraction:
    """``min(100, 100 × have / need)``, exact; a requirement of 0 is met."""
    if need <= 0:
        return Fraction(100)
    return min(Fraction(100), Fraction(100) * Fraction(have) / need)


def weeks_met(entries: Sequence[HoursEntry]) -> int:
    """ISO 8601 weeks (week-numbering year, week) whose hours add up to at least 1."""
    per_week: dict[tuple[int, int], Decimal] = {}
    for entry in entries:
        iso = entry.day.isocalendar()
        key = (iso.year, iso.week)
        per_week[key] = per_week.get(key, Decimal(0)) + entry.hours
    return sum(1 for hours in per_week.values() if hours >= 1)


def reading_titles(entries: Sequence[BookEntry]) -> dict[str, Section]:
    """Each distinct title (``title_key``) with the section of its earliest entry (by date, then
    by order in the journal). ``entries`` are the counted (confirmed, in window) reading ones."""
    first: dict[str, tuple[date, int, Section]] = {}
    for order, entry in enumerate(entries):
        key = title_key(entry.book)
        seen = first.get(key)
        if seen is None or (entry.day, order) < seen[:2]:
            first[key] = (entry.day, order, entry.section)
    return {key: section for key, (_, _, section) in first.items()}


def filled_book_slots(sections: Sequence[Section], books: int, kazakh_books: int) -> int:
    """Kazakh books fill the Kazakh slots first; any beyond them fill the other slots."""
    kazakh = sum(1 for s in sections if s is Section.KAZAKH)
    others = len(sections) - kazakh
    kazakh_slots = min(kazakh_books, books)
    in_kazakh = min(kazakh, kazakh_slots)
    return in_kazakh + min(books - kazakh_slots, others + (kazakh - in_kazakh))


def evaluate_journal(
    journal: Journal, today: date, requirements: Requirements | None = None
) -> Evaluation:
    """The exact evaluation of a checked journal on ``today``."""
    need = requirements or level_requirements(journal.level, journal.plan)
    counted = [
        e
        for e in journal.entries
        if e.status is Status.CONFIRMED and journal.start <= e.day <= today
    ]
    hours = [e for e in counted if isinstance(e, HoursEntry)]
    books = [e for e in counted if isinstance(e, BookEntry)]
    days = [e for e in counted if isinstance(e, DaysEntry)]

    percents: dict[Direction, Fraction] = {}
    for direction in WEEKLY_DIRECTIONS:
        met = weeks_met([e for e in hours if e.direction is direction])
        percents[direction] = _ratio(met, need.weeks.get(direction, 0))

    titles = reading_titles([e for e in books if e.direction is Direction.READING])
    filled = filled_book_slots(list(titles.values()), need.books, need.kazakh_books)
    percents[Direction.READING] = _ratio(filled, need.books)

    if need.heritage_weeks is not None:
        met = weeks_met([e for e in hours if e.direction is Direction.HERITAGE])
        percents[Direction.HERITAGE] = _ratio(met, need.heritage_weeks)
    else:
        own_book = any(
            e.direction is Direction.HERITAGE
            and e.section is Section.KAZAKH
            and title_key(e.book) not in titles
            for e in books
        )
        percents[Direction.HERITAGE] = Fraction(100 if own_book else 0)

    trips = [e.days for e in days if e.direction is Direction.TRIP]
    percents[Direction.TRIP] = _ratio(max(trips, default=Decimal(0)), need.trip_days)
    if need.work_days is not None:
        work = sum((e.days for e in days if e.direction is Direction.WORK), Decimal(0))
        percents[Direction.WORK] = _ratio(work, need.work_days)

    ordered = {d: percents[d] for d in REPORT_ORDER if d in percents}
    return Evaluation(
        participant=journal.participant,
        level=journal.level,
        eligible_age=eligible_age(journal.birth_date, journal.level, journal.start),
        percents=ordered,
    )


def round_half_up(value: Fraction) -> Decimal:
    """``value`` (0 or more) rounded half up to one decimal."""
    tenths = math.floor(value * 10 + Fraction(1, 2))
    return Decimal(tenths).scaleb(-1)


def evaluate(
    journal: Mapping[str, Any] | Journal, today: date, requirements: Requirements | None = None
) -> dict[str, Any]:
    """The contract's report for one journal on ``today``:
    ``{"participant", "level", "eligible_age", "directions": {name: percent}, "rating",
    "complete"}``. A mapping (decoded JSON) is checked first and may raise ``JournalError``.
    ``requirements`` replaces the level's numbers (an individual set, e.g. for a disability).
    """
    checked = journal if isinstance(journal, Journal) else journal_from_mapping(journal)
    return evaluate_journal(checked, today, requirements).as_dict()
