"""Helpers of the hardware tests: wait for a reader event with a deadline, never sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from hardware.base import ReaderEvent


@dataclass
class EventLog:
    """Consumes a reader's events in the background and lets a test wait for one."""

    events: list[ReaderEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def consume(self, stream: AsyncIterator[ReaderEvent]) -> None:
        async for event in stream:
            self.events.append(event)
            self._changed.set()

    async def wait_for(
        self, predicate: Callable[[ReaderEvent], bool], within: float, start: int = 0
    ) -> ReaderEvent:
        """The first event from index ``start`` matching ``predicate``; fails after timeout."""
        try:
            async with asyncio.timeout(within):
                while True:
                    for event in self.events[start:]:
                        if predicate(event):
                            return event
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"no matching event within {within}s; got {self.events!r}")

    def of_type(self, kind: type) -> list[ReaderEvent]:
        return [event for event in self.events if isinstance(event, kind)]
