"""The fire alarm at the school (README, "Fire alarm and power to the gates").

The fire-alarm panel's dry contact is wired to an input of an OSDP reader (``fire_input_no``).
When it becomes active every turnstile of the school is held free at once, whatever the daemon
is doing (a tap waiting for its commit, a full disk, no policy, the link down): the gates are
released *first*, the start of the evacuation is journaled *after* (life before the record; the
record of a tap is still made before its own actuation). When the contact is released the
gates lock again and the end is journaled. While it lasts the duty page shows the evacuation
list: who is inside by the day's entries and exits (the anti-passback presence).

This is the daemon's part only. The gates' own wiring keeps the exits free when the daemon, the
edge or its power is gone (fail-safe exit, fail-secure entry): see the README.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from edge.core.model import Presence
from edge.store import EdgeStore
from hardware.base import FreeGate, HardwareError
from protocol.messages import AlarmCode, OwnerKind

log = logging.getLogger(__name__)

HOLD_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Inside:
    """One person inside by the day's entries and exits (for the evacuation list)."""

    person_id: str
    kind: OwnerKind
    name: str  # the staff page shows it to staff only; never logged
    class_name: str
    since: dt.datetime | None = None


class Evacuation:
    def __init__(self, store: EdgeStore, clock: Callable[[], dt.datetime]) -> None:
        self._store = store
        self._clock = clock
        self._gates: dict[str, FreeGate] = {}
        self.active = False
        self.since: dt.datetime | None = None
        self.source = ""
        self.released: dict[str, bool] = {}  # terminal -> held free (False: the command failed)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, terminal: str, gate: object) -> None:
        """A terminal's gate, if the fire alarm can hold it free (OSDP output, relay)."""
        if isinstance(gate, FreeGate):
            self._gates[terminal] = gate
            if self.active:  # a terminal that (re)started during the evacuation
                self._spawn(self._hold(terminal, gate, True))

    def input_changed(self, source: str, active: bool) -> None:
        """From the reader driver (on the loop): the fire-alarm contact changed."""
        self._spawn(self.set(active, source))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="fire-alarm")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def set(self, active: bool, source: str) -> None:
        async with self._lock:
            if active == self.active:
                return
            self.active = active
            self.source = source
            self.since = self._clock() if active else None
            log.warning("fire alarm %s (%s)", "STARTED" if active else "ended", source)
            # the gates first, all at once
            await asyncio.gather(*(self._hold(t, g, active) for t, g in self._gates.items()))
            held = sum(self.released.values()) if active else 0
            detail = (
                f"evacuation: {held} of {len(self._gates)} turnstiles held free"
                if active
                else "evacuation over: turnstiles locked again"
            )
            try:
                await self._store.journal_alarm(source, AlarmCode.FIRE_ALARM, active, detail)
            except Exception as err:  # a full disk must not matter here: the gates are free
                log.error("fire alarm not journaled: %s", err)

    async def _hold(self, terminal: str, gate: FreeGate, free: bool) -> None:
        try:
            async with asyncio.timeout(HOLD_TIMEOUT_S):
                await gate.hold_open(free)
            self.released[terminal] = free
        except (HardwareError, TimeoutError) as err:
            self.released[terminal] = False
            log.error(
                "fire alarm: turnstile %s not %s: %s", terminal, "freed" if free else "locked", err
            )

    def inside(self) -> list[Inside]:
        """Who is inside now by today's entries and exits (the school's local day)."""
        store = self._store
        policy = store.policy
        zone = policy.timezone if policy is not None else dt.UTC
        today = self._clock().astimezone(zone).date()
        out: list[Inside] = []
        for pid, (day, state) in store.state.presence_by_person.items():
            if day != today or state is not Presence.INSIDE:
                continue
            if pid.startswith("staff:"):
                sid = pid.removeprefix("staff:")
                out.append(Inside(sid, OwnerKind.STAFF, store.staff_names.get(sid, ""), ""))
                continue
            student = store.state.student(pid)
            out.append(
                Inside(
                    pid,
                    OwnerKind.STUDENT,
                    store.display_names.get(pid, ""),
                    student.class_name if student is not None else "",
                )
            )
        out.sort(key=lambda p: (p.kind.value, p.class_name, p.name, p.person_id))
        return out
