"""The rules of parent notifications as pure functions: which kinds an event carries, the
defaults, quiet hours, retry backoff, the message text. No clock, no I/O, no database."""

from __future__ import annotations

import datetime as dt
import enum
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from server import clock
from server.console import i18n


def N_(message: str) -> str:
    """Mark a message for the catalogues; translated later in the guardian's language."""
    return message


class Channel(enum.StrEnum):
    SMS = "sms"
    EMAIL = "email"
    PUSH = "push"


class Kind(enum.StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    MANUAL_PASS = "manual_pass"
    MEAL = "meal"
    LOW_BALANCE = "low_balance"


class Status(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Never held by quiet hours: a child let in without a card is what parents must hear at once.
URGENT: frozenset[Kind] = frozenset({Kind.MANUAL_PASS})

KIND_LABELS: dict[Kind, str] = {
    Kind.ENTRY: N_("Entry"),
    Kind.EXIT: N_("Exit"),
    Kind.MANUAL_PASS: N_("Manual pass"),
    Kind.MEAL: N_("Meal"),
    Kind.LOW_BALANCE: N_("Low balance"),
}
CHANNEL_LABELS: dict[Channel, str] = {
    Channel.SMS: N_("SMS"),
    Channel.EMAIL: N_("E-mail"),
    Channel.PUSH: N_("Push"),
}
STATUS_LABELS: dict[Status, str] = {
    Status.QUEUED: N_("queued"),
    Status.SENDING: N_("sending"),
    Status.SENT: N_("sent"),
    Status.FAILED: N_("failed"),
    Status.CANCELLED: N_("cancelled"),
}


# ------------------------------------------------------------------------------ preferences


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A window of the school's local day, in minutes since midnight; may cross midnight."""

    start_min: int
    end_min: int

    def contains(self, minute: int) -> bool:
        if self.start_min == self.end_min:
            return False
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min


@dataclass(frozen=True, slots=True)
class Preferences:
    subscriptions: frozenset[tuple[Kind, Channel]] = field(default_factory=frozenset)
    quiet: QuietHours | None = None

    def channels_for(self, kinds: Iterable[Kind]) -> dict[Channel, list[Kind]]:
        """Channel -> the kinds (in the given order) the guardian wants on it."""
        out: dict[Channel, list[Kind]] = {}
        for k in kinds:
            for ch in Channel:
                if (k, ch) in self.subscriptions:
                    out.setdefault(ch, []).append(k)
        return out

    def to_rows(self) -> list[list[str]]:
        return sorted([k.value, c.value] for k, c in self.subscriptions)


def default_preferences(has_phone: bool) -> Preferences:
    """Entry, exit and manual pass by SMS when the guardian has a phone; nothing otherwise."""
    if not has_phone:
        return Preferences()
    return Preferences(
        frozenset((k, Channel.SMS) for k in (Kind.ENTRY, Kind.EXIT, Kind.MANUAL_PASS))
    )


def preferences_from_row(
    subscriptions: Iterable[Iterable[str]], quiet_start: int | None, quiet_end: int | None
) -> Preferences:
    subs: set[tuple[Kind, Channel]] = set()
    for pair in subscriptions:
        k, c = list(pair)[:2]
        if k in Kind._value2member_map_ and c in Channel._value2member_map_:
            subs.add((Kind(k), Channel(c)))
    quiet = (
        QuietHours(quiet_start, quiet_end)
        if quiet_start is not None and quiet_end is not None
        else None
    )
    return Preferences(frozenset(subs), quiet)


class PreferenceError(ValueError):
    """A preferences form that cannot be saved: ``field`` names the input."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_clock(text: str, field_name: str) -> int | None:
    """ "22:30" -> 1350 minutes; "" -> None."""
    text = text.strip()
    if not text:
        return None
    hh, sep, mm = text.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise PreferenceError(field_name, N_("a time like 22:00 is expected"))
    h, m = int(hh), int(mm)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise PreferenceError(field_name, N_("a time like 22:00 is expected"))
    return h * 60 + m


def parse_preferences(form: Mapping[str, Any]) -> Preferences:
    """From the form: checkboxes named ``<kind>:<channel>``, ``quiet_start``, ``quiet_end``."""
    subs = frozenset(
        (k, c) for k in Kind for c in Channel if form.get(f"{k.value}:{c.value}") in ("on", "1")
    )
    start = parse_clock(str(form.get("quiet_start", "")), "quiet_start")
    end = parse_clock(str(form.get("quiet_end", "")), "quiet_end")
    if (start is None) != (end is None):
        raise PreferenceError(
            "quiet_end" if end is None else "quiet_start",
            N_("give both the start and the end of quiet hours, or neither"),
        )
    if start is not None and start == end:
        raise PreferenceError(
            "quiet_end", N_("quiet hours must not start and end at the same time")
        )
    quiet = QuietHours(start, end) if start is not None and end is not None else None
    return Preferences(subs, quiet)


def format_clock(minute: int | None) -> str:
    return "" if minute is None else f"{minute // 60:02d}:{minute % 60:02d}"


# ----------------------------------------------------------------------------- the planner


def event_kinds(kind: str, payload: Mapping[str, Any], low_balance_tiyn: int) -> list[Kind]:
    """The notification kinds one stored event carries (most important first)."""
    if kind == "entry":
        return [Kind.ENTRY]
    if kind == "exit":
        return [Kind.EXIT]
    if kind == "manual_pass":
        return [Kind.MANUAL_PASS]
    if kind == "meal_served":
        out = [Kind.MEAL]
        balance = payload.get("balance_after_tiyn")
        if isinstance(balance, int) and balance < low_balance_tiyn:
            out.insert(0, Kind.LOW_BALANCE)
        return out
    return []


def due_at(now_ms: int, kinds: Iterable[Kind], quiet: QuietHours | None, zone: str) -> int:
    """When a message may go: now, or, inside quiet hours, when the window ends. A message
    with an urgent kind (a manual pass) is never held."""
    if quiet is None or any(k in URGENT for k in kinds):
        return now_ms
    tz = _zone(zone)
    local = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    minute = local.hour * 60 + local.minute
    if not quiet.contains(minute):
        return now_ms
    at = dt.time(quiet.end_min // 60, quiet.end_min % 60)
    end = dt.datetime.combine(local.date(), at, tzinfo=tz)
    if end <= local:
        end = dt.datetime.combine(local.date() + dt.timedelta(days=1), at, tzinfo=tz)
    return int(end.timestamp() * 1000)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    return clock.zone(name)


def local_clock(at_ms: int, zone: str) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, _zone(zone)).strftime("%H:%M")


def money(tiyn: int) -> str:
    sign = "-" if tiyn < 0 else ""
    tenge, rest = divmod(abs(tiyn), 100)
    return f"{sign}{tenge}" + (f",{rest:02d}" if rest else "") + " ₸"


TEXTS: dict[str, str] = {
    "entry": N_("{time} {name} entered school ({school})."),
    "exit": N_("{time} {name} left school ({school})."),
    "manual_pass_in": N_(
        "{time} {name} was let into school without a card by a teacher ({school})."
    ),
    "manual_pass_out": N_(
        "{time} {name} was let out of school without a card by a teacher ({school})."
    ),
    "meal_free": N_("{time} {name} had a free meal ({school})."),
    "meal_paid": N_("{time} {name} had a meal for {amount} ({school})."),
    "low_balance": N_("{name}'s canteen balance is low: {balance} ({school})."),
}


def message_text(
    kinds: Iterable[Kind],
    payload: Mapping[str, Any],
    *,
    lang: str,
    first_name: str,
    school: str,
    at_ms: int,
    zone: str,
) -> str:
    """The guardian's message: first name, local time, school; no class, no card, no surname."""
    values = {
        "name": first_name,
        "school": school,
        "time": local_clock(at_ms, zone),
        "amount": money(int(payload.get("amount_tiyn") or 0)),
        "balance": money(int(payload.get("balance_after_tiyn") or 0)),
    }
    parts: list[str] = []
    for k in kinds:
        if k is Kind.MANUAL_PASS:
            key = "manual_pass_out" if payload.get("direction") == "out" else "manual_pass_in"
        elif k is Kind.MEAL:
            key = "meal_paid" if int(payload.get("amount_tiyn") or 0) > 0 else "meal_free"
        else:
            key = k.value
        parts.append(i18n.gettext(TEXTS[key], lang).format(**values))
    return " ".join(parts)[:500]


def pick_lang(user_lang: str | None) -> str:
    """The guardian's language: their console account's, else Kazakh."""
    return user_lang if user_lang in i18n.LANGS else i18n.DEFAULT_LANG


# -------------------------------------------------------------------------------- delivery


def backoff_ms(attempt: int, *, base_s: float, cap_s: float, jitter: float) -> int:
    """Delay before retry number ``attempt`` (1 = after the first failure): exponential,
    capped, with jitter in [0, 1) spreading it over the upper half (so workers do not retry in
    lockstep, and no retry comes sooner than half the nominal delay)."""
    nominal = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return int(nominal * (0.5 + 0.5 * jitter) * 1000)


def after_failure(attempts: int, max_attempts: int) -> Status:
    """A failed send goes back to the queue until ``max_attempts`` were made."""
    return Status.FAILED if attempts >= max_attempts else Status.QUEUED


def scrub(error: str, *secrets: str) -> str:
    """An error for the outbox: the recipient's address never stays in it."""
    for s in secrets:
        if s:
            error = error.replace(s, "<address>")
    return " ".join(error.split())[:300]
