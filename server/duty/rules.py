"""Duty rules as pure functions: a shift's window, who is on duty at an instant, whom an alarm
goes to, and the alarm's text. No clock, no I/O: the local time is passed in.

Seed 002: each shift has a named person responsible for the system (the deputy director for
emergencies); an alarm goes to that person, and to the school's administrators when nobody is
named for the moment it happens.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

N_ = str

# A school's two shifts by default (a school sets each day's times when it plans them).
DEFAULT_WINDOWS: dict[int, tuple[str, str]] = {1: ("07:00", "13:30"), 2: ("13:30", "19:30")}
SHIFTS = (1, 2, 3)
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

# Alarm codes an edge raises (protocol AlarmCode) and the centre's own: an edge not heard from.
EDGE_OFFLINE = "edge_offline"
ALARM_TEXT: dict[str, str] = {
    "reader_offline": N_("A reader or camera is offline"),
    "outbox_high_water": N_("The edge's outbox is 80% full: the link to the centre is down"),
    "secure_channel_refused": N_("A reader refused the secure channel"),
    "gate_fault": N_("A turnstile fault"),
    "downlink_refused": N_("The edge refused a message from the centre"),
    "clock_in_doubt": N_("The edge's clock jumped: its times are in doubt until the link is back"),
    "store_full": N_("The edge could not write (storage full): taps were refused"),
    "fire_alarm": N_("Fire alarm at the school: every turnstile released"),
    EDGE_OFFLINE: N_("The school's edge is offline (no link, stopped, or its store is damaged)"),
}


class DutyError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Slot:
    day: dt.date
    shift: int
    starts: str
    ends: str
    user_pk: int


def check_window(shift: int, starts: str, ends: str) -> tuple[str, str]:
    """A shift number and its local window "HH:MM"-"HH:MM" (within one day); DutyError names
    the bad field."""
    if shift not in SHIFTS:
        raise DutyError("shift", N_("A shift is 1, 2 or 3."))
    s, e = starts.strip(), ends.strip()
    if not _CLOCK.match(s):
        raise DutyError("starts", N_("A time as HH:MM."))
    if not _CLOCK.match(e):
        raise DutyError("ends", N_("A time as HH:MM."))
    if e <= s:
        raise DutyError("ends", N_("The shift must end after it starts."))
    return s, e


def on_duty(slots: Sequence[Slot], local: dt.datetime) -> Slot | None:
    """The slot covering the local instant (its day, starts <= time < ends), earliest shift
    first when two overlap."""
    clock = local.strftime("%H:%M")
    for slot in sorted(slots, key=lambda s: (s.shift, s.starts)):
        if slot.day == local.date() and slot.starts <= clock < slot.ends:
            return slot
    return None


@dataclass(frozen=True, slots=True)
class Recipient:
    user_pk: int | None
    routed_to: str  # on_duty | school_admin | nobody


def recipients(on_duty_user: int | None, admins: Sequence[int]) -> list[Recipient]:
    """The person on duty; else every school administrator; else nobody (the console and
    the edge's own duty page still show it)."""
    if on_duty_user is not None:
        return [Recipient(on_duty_user, "on_duty")]
    if admins:
        return [Recipient(a, "school_admin") for a in sorted(set(admins))]
    return [Recipient(None, "nobody")]


def channel_for(phone: str, email: str, user_pk: int, push: bool = False) -> tuple[str, str] | None:
    """(channel, address) for a staff member: SMS to a phone, else push to their account (when
    the centre has a push service), else e-mail; None: no way to reach them."""
    if phone.strip():
        return "sms", phone.strip()
    if push:
        return "push", str(user_pk)
    if email.strip():
        return "email", email.strip()
    return None


def alarm_body(
    text: str, school_name: str, device: str, terminal: str, detail: str, clock: str
) -> str:
    """What the person on duty reads (already translated ``text``): no student, no card."""
    where = terminal if terminal and terminal != device else device
    extra = f" ({detail[:80]})" if detail else ""
    return f"Qaqpa {clock} {school_name}: {text}: {where}{extra}"[:500]


def week_of(day: dt.date) -> list[dt.date]:
    """Monday to Saturday of the week holding ``day`` (Kazakh schools have six-day weeks)."""
    monday = day - dt.timedelta(days=day.weekday())
    return [monday + dt.timedelta(days=i) for i in range(6)]
