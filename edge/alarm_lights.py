"""The readers' LEDs and buzzers as the school's own alarm (seed 002: someone at the school must
learn of a fault even when the link is down and no SMS reaches the deputy on duty).

Every ``interval_s`` it reads the alarms this edge journaled and its outbox, decides with the
pure rules of ``edge.core.alarms``, and when the decision changes sets every registered reader's
idle LED (amber blinking while an alarm is active, off otherwise); while nobody outside can learn
of it (the link is down) the readers beep once, then again every ``beep_every_s``. A reader that
is offline or refuses the command is skipped (its own alarm says so)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edge.core.alarms import Signal, active_alarms, beep_due, link_down, signal
from edge.store import EdgeStore
from hardware.base import AlarmIndicator, HardwareError
from protocol.messages import AlarmEvent

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class AlarmLights:
    def __init__(
        self,
        store: EdgeStore,
        *,
        interval_s: float = 10.0,
        beep_every_s: float = 900.0,
        now_ms: Callable[[], int] = _now_ms,
        unjournaled: Callable[[], list[AlarmEvent]] | None = None,
    ) -> None:
        self._store = store
        self._interval = interval_s
        self._beep_every_ms = int(beep_every_s * 1000)
        self._now_ms = now_ms
        # alarms active now that the journal cannot hold (a store that cannot write)
        self._unjournaled = unjournaled
        self._indicators: dict[str, AlarmIndicator] = {}
        self._shown: Signal = Signal.QUIET
        self._last_beep_ms: int | None = None

    def register(self, terminal: str, feedback: object) -> None:
        """A terminal's reader feedback, if it can show an alarm (OSDP readers can)."""
        if isinstance(feedback, AlarmIndicator):
            self._indicators[terminal] = feedback

    @property
    def shown(self) -> Signal:
        return self._shown

    async def check(self) -> Signal:
        """One look: decide and, when something changed, tell the readers."""
        recent = await self._store.recent_alarms(200)
        if self._unjournaled is not None:
            recent = self._unjournaled() + recent
        stats = await self._store.outbox_stats()
        now = self._now_ms()
        sig = signal(active_alarms(recent), link_down(stats.backlog, stats.oldest_unsent_ms, now))
        beep = beep_due(sig, self._last_beep_ms, now, self._beep_every_ms)
        if sig is not self._shown or beep:
            for terminal, ind in self._indicators.items():
                try:
                    async with asyncio.timeout(5):
                        await ind.indicate(sig is not Signal.QUIET, beep)
                except (HardwareError, TimeoutError) as err:
                    log.info("alarm lights: reader of %s not told: %s", terminal, err)
            if sig is not self._shown:
                log.warning("alarm lights: %s -> %s", self._shown.value, sig.value)
            self._shown = sig
            if beep:
                self._last_beep_ms = now
        if sig is not Signal.ALARM_OFFLINE:
            self._last_beep_ms = None
        return sig

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a store hiccup must not stop the daemon
                log.exception("alarm lights: check failed")
            await asyncio.sleep(self._interval)
