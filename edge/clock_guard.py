"""The school's time when the wall clock cannot be trusted (README, "Wrong clock").

An edge that loses power may come back with its wall clock at an old date (no RTC battery), or
a clock that jumps forward or back while it runs (a bad RTC, an NTP step, a hand). Taps carry
their time into the meal ledger and the server's reports, so a wrong time is worse than a late
one: a jump back by a year would open a new "day" and serve a second free meal in the same
period; a jump forward by a day would do the same; a time outside the entry hours would refuse
a whole school.

:class:`ClockGuard` keeps the school's time as a trusted anchor plus the monotonic time elapsed
since it (``CLOCK_MONOTONIC`` never jumps). It follows the wall clock while the wall clock agrees
with that (within ``tolerance_s``, so NTP slewing is followed), and goes *in doubt* when:

* at start, the wall clock is before the last journaled event's time (the anchor is then that
  time: a lower bound of the real time, since nothing can have happened before it), or
* while running, the wall clock moved against the monotonic clock by more than ``tolerance_s``
  (forward or back; the anchor then stays where it was, so the corrected time is exact up to
  the monotonic clock's drift).

In doubt, :meth:`now` returns the corrected time and events are journaled with the
``clock_in_doubt`` flag. The doubt clears only with the centre's time: the ``issued_at_ms`` of a
signed ack that acknowledges events this edge sent on this connection (so it is fresh, not a
replay). From then on the anchor is the centre's time, and the wall clock's known error (its
offset) is subtracted while it keeps agreeing. What the edge cannot know by itself: a wall clock
that is wrong *forward* at start (it cannot tell a day without power from a clock a day fast).
That is corrected, and said, by the first signed ack.

No I/O: the daemon journals the alarm when :attr:`on_change` tells it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TOLERANCE_S = 120.0


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class ClockState:
    in_doubt: bool
    reason: str  # "" | "behind_journal" | "jumped_back" | "jumped_forward"
    since: dt.datetime | None  # corrected time at which the doubt started
    wall_offset_s: float  # the wall clock minus the corrected time (its known error)
    centre_seen: bool  # the anchor came from the centre's time at least once


class ClockGuard:
    def __init__(
        self,
        wall: Callable[[], dt.datetime] = _utc_now,
        mono: Callable[[], float] = time.monotonic,
        *,
        tolerance_s: float = TOLERANCE_S,
    ) -> None:
        self._wall = wall
        self._mono = mono
        self._tol = tolerance_s
        self._anchor: dt.datetime = wall()
        self._anchor_mono = mono()
        self._offset = 0.0  # the wall clock's known error (wall - true), seconds
        self._doubt = False
        self._reason = ""
        self._since: dt.datetime | None = None
        self._centre_seen = False
        # called with the new state whenever the doubt starts or ends
        self.on_change: Callable[[ClockState, str], None] | None = None

    # ------------------------------------------------------------------------------ reading

    def _corrected(self, m: float) -> dt.datetime:
        return self._anchor + dt.timedelta(seconds=m - self._anchor_mono)

    def now(self) -> dt.datetime:
        """The school's time: the wall clock while it is trusted, the corrected time otherwise.
        Checks for a jump at every call."""
        wall, m = self._wall(), self._mono()
        expected = self._corrected(m)
        drift = (wall - expected).total_seconds() - self._offset
        if self._doubt:
            return expected
        if abs(drift) <= self._tol:  # follow the wall clock (minus its known error)
            self._anchor = wall - dt.timedelta(seconds=self._offset)
            self._anchor_mono = m
            return self._anchor
        reason = "jumped_forward" if drift > 0 else "jumped_back"
        self._enter_doubt(reason, expected, wall, drift)
        return expected

    def now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    @property
    def in_doubt(self) -> bool:
        return self._doubt

    def state(self) -> ClockState:
        self.now()  # a jump since the last look shows at once
        return ClockState(
            self._doubt,
            self._reason,
            self._since,
            round(self._offset + self._drift(), 1) if self._doubt else round(self._offset, 1),
            self._centre_seen,
        )

    def _drift(self) -> float:
        return (self._wall() - self._corrected(self._mono())).total_seconds() - self._offset

    # ------------------------------------------------------------------------------ inputs

    def start(self, last_journaled_ms: int | None) -> None:
        """At the daemon's start: a wall clock before the last journaled event is in doubt."""
        wall, m = self._wall(), self._mono()
        self._anchor, self._anchor_mono = wall, m
        if last_journaled_ms is None:
            return
        last = dt.datetime.fromtimestamp(last_journaled_ms / 1000, dt.UTC)
        behind = (last - wall).total_seconds()
        if behind > self._tol:
            self._anchor = last  # nothing can have happened before it: a lower bound
            self._enter_doubt("behind_journal", last, wall, -behind)

    def centre_time(self, issued_at_ms: int) -> None:
        """The centre's time, from a fresh signed message: the anchor from now on."""
        wall, m = self._wall(), self._mono()
        centre = dt.datetime.fromtimestamp(issued_at_ms / 1000, dt.UTC)
        self._anchor, self._anchor_mono = centre, m
        self._offset = (wall - centre).total_seconds()
        self._centre_seen = True
        if abs(self._offset) > self._tol:
            log.warning("the wall clock is %+.0f s off the centre's time", self._offset)
        if self._doubt:
            self._doubt = False
            self._reason = ""
            self._since = None
            log.warning("clock: the centre's time arrived; no longer in doubt")
            self._notify(f"centre time; the wall clock is {self._offset:+.0f} s off")

    # ------------------------------------------------------------------------------ helpers

    def _enter_doubt(
        self, reason: str, expected: dt.datetime, wall: dt.datetime, drift: float
    ) -> None:
        self._doubt = True
        self._reason = reason
        self._since = expected
        log.warning(
            "clock in doubt (%s): the wall clock is %+.0f s off the corrected time", reason, drift
        )
        self._notify(f"{reason}: wall clock {wall.isoformat(timespec='seconds')}, {drift:+.0f} s")

    def _notify(self, detail: str) -> None:
        if self.on_change is not None:
            self.on_change(self.state_now(), detail)

    def state_now(self) -> ClockState:
        """The state without a new look at the clocks (for callbacks)."""
        return ClockState(self._doubt, self._reason, self._since, self._offset, self._centre_seen)
