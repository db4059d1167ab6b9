"""What the daemon knows of the school's faults that the journal may not (yet) hold: the clock in
doubt, a store that cannot write (which cannot be journaled while it lasts), the evacuation.

One object, read by the duty page, the readers' LEDs and the kiosk (README, "Operations: faults
and what staff see")."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from edge.clock_guard import ClockGuard
from edge.evacuation import Evacuation
from edge.pipeline import Pipeline
from protocol.messages import AlarmCode, AlarmEvent


@dataclass
class SchoolFaults:
    clock: ClockGuard
    evacuation: Evacuation
    pipeline: Pipeline | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def unjournaled_alarms(self) -> list[AlarmEvent]:
        """Alarms active now that the journal cannot show: the store cannot write."""
        pipeline = self.pipeline
        fault = pipeline.store_fault if pipeline is not None else None
        if fault is None:
            return []
        return [
            AlarmEvent(
                seq=1,
                at_ms=_ms(fault.since),
                terminal=pipeline.store.device if pipeline is not None else "edge",
                code=AlarmCode.STORE_FULL,
                active=True,
                detail=f"{fault.refused} taps refused: {fault.detail}"[:500],
            )
        ]


def _ms(at: dt.datetime) -> int:
    return max(0, int(at.timestamp() * 1000))
