"""Alarms at the school as pure rules: which alarms are still raised, whether the link to the
centre is down, and what the readers show between taps so that someone in the building learns
of an alarm that no SMS can carry. No clock, no I/O: ``now_ms`` is passed in."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from protocol.messages import AlarmEvent

# The link is taken as down when the oldest unsent event has waited this long (a connected edge
# sends within seconds).
LINK_DOWN_AFTER_MS = 120_000


class Signal(enum.StrEnum):
    """What the readers show between taps."""

    QUIET = "quiet"  # nothing wrong: the LED's idle state
    ALARM = "alarm"  # an alarm is active (the person on duty was told by SMS): amber blink
    ALARM_OFFLINE = "alarm_offline"  # and the centre cannot tell anyone: amber blink and a beep


def active_alarms(recent_newest_first: Iterable[AlarmEvent]) -> list[AlarmEvent]:
    """The alarms still raised: the newest event per (terminal, code) wins."""
    seen: set[tuple[str, str]] = set()
    out = []
    for ev in recent_newest_first:
        key = (ev.terminal, ev.code.value)
        if key in seen:
            continue
        seen.add(key)
        if ev.active:
            out.append(ev)
    return out


def link_down(backlog: int, oldest_unsent_ms: int | None, now_ms: int) -> bool:
    return (
        backlog > 0
        and oldest_unsent_ms is not None
        and now_ms - oldest_unsent_ms >= LINK_DOWN_AFTER_MS
    )


def signal(active: Sequence[AlarmEvent], link_is_down: bool) -> Signal:
    if not active:
        return Signal.QUIET
    return Signal.ALARM_OFFLINE if link_is_down else Signal.ALARM


def beep_due(sig: Signal, last_beep_ms: int | None, now_ms: int, every_ms: int) -> bool:
    """A beep when the readers start showing an alarm nobody outside can learn of, then again
    every ``every_ms`` while it lasts (not at every poll: a gate that beeps for ever is
    switched off)."""
    if sig is not Signal.ALARM_OFFLINE:
        return False
    return last_beep_ms is None or now_ms - last_beep_ms >= every_ms
