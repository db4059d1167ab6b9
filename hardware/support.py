"""Plumbing shared by the drivers: reconnect backoff, availability tracking, the event queue and a
dedicated thread that runs a blocking read and hands the results to the event loop.

Nothing here knows about a particular device.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Generic, Self, TypeVar

from hardware.base import ReaderEvent, ReaderStatus

log = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Capped exponential backoff with "equal jitter", a pure function.

    ``attempt`` counts failures from 0; ``jitter`` is a number in [0, 1) supplied by the caller
    (``random.random()`` in production, a fixed value in tests). The result lies in
    ``[d/2, d)`` where ``d = min(cap, base * 2**attempt)``, so many readers that failed together
    (a power cut) do not retry in lockstep, and no delay ever exceeds ``cap``.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    # 2**attempt overflows a float for huge attempts; the cap is reached long before 64.
    delay: float = min(cap, base * float(2 ** min(attempt, 64)))
    return delay / 2 + (delay / 2) * jitter


@dataclass(slots=True)
class Backoff:
    """Stateful wrapper of :func:`backoff_delay` for one reconnect loop."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        delay = backoff_delay(self.attempt, base=self.base, cap=self.cap, jitter=self.rng.random())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class Availability:
    """Online/offline state of one reader: logs a change once and returns the event to emit.

    Repeated failures of an offline reader (each reconnect attempt) produce nothing, so a reader
    unplugged for a day logs one WARNING, not thousands.
    """

    def __init__(self, reader_id: str) -> None:
        self.reader_id = reader_id
        self.online: bool | None = None  # None: not yet known

    def set(self, online: bool, detail: str = "") -> ReaderStatus | None:
        if self.online is online:
            return None
        self.online = online
        if online:
            log.info("reader %s online %s", self.reader_id, detail)
        else:
            log.warning("reader %s offline: %s", self.reader_id, detail)
        return ReaderStatus(self.reader_id, online, detail)


class EventChannel:
    """A bounded queue of reader events with an async iterator over it.

    A full queue means nobody consumes the events; new events are dropped with one warning
    rather than growing memory without bound.
    """

    def __init__(self, name: str, maxsize: int = 1024) -> None:
        self._name = name
        self._queue: asyncio.Queue[ReaderEvent] = asyncio.Queue(maxsize)
        self._dropping = False
        self.dropped = 0

    def put(self, event: ReaderEvent | None) -> None:
        if event is None:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._dropping:
                log.warning("%s: event queue full, dropping events", self._name)
                self._dropping = True
            return
        self._dropping = False

    async def __aiter__(self) -> AsyncIterator[ReaderEvent]:
        while True:
            yield await self._queue.get()


class OneTaskDevice(abc.ABC):
    """The owner of one device: ``async with`` starts its ``_run`` task in a TaskGroup, leaving
    cancels and awaits it; ``events()`` iterates what the task emits on ``_events``."""

    _events: EventChannel
    _tasks: asyncio.TaskGroup | None = None
    _main: asyncio.Task[None] | None = None
    _task_prefix = "device"
    reader_id: str

    @abc.abstractmethod
    async def _run(self) -> None:
        """The device's loop: read, decode, emit on ``_events``, reopen after failures."""

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._main = self._tasks.create_task(
            self._run(), name=f"{self._task_prefix}-{self.reader_id}"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._main is not None:
            self._main.cancel()
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)
        self._tasks = None

    def events(self) -> AsyncIterator[ReaderEvent]:
        return aiter(self._events)


async def run_blocking_cleanup(fn: Callable[[], object], what: str, within: float = 5.0) -> None:
    """Run a blocking clean-up call (close a port, stop a library thread) off the loop, giving
    up waiting after ``within`` seconds with one warning: shutdown must not hang on a device."""
    try:
        async with asyncio.timeout(within):
            await asyncio.to_thread(fn)
    except TimeoutError:
        log.warning("%s did not finish within %.1fs", what, within)


class ThreadPump(Generic[T]):
    """Runs ``step()`` over and over in a dedicated thread and delivers each result (or the
    exception it raised) to an asyncio queue through ``loop.call_soon_threadsafe``.

    ``step`` must return within a short time (a serial read with a timeout, a pyscard wait
    with a timeout): that bounds how long :meth:`stop` takes. After an exception the thread
    stops; the owner decides whether to reopen the device and start a new pump.
    """

    def __init__(self, name: str, step: Callable[[], T], loop: asyncio.AbstractEventLoop) -> None:
        self._step = step
        self._loop = loop
        self._stop = threading.Event()
        self.queue: asyncio.Queue[T | BaseException] = asyncio.Queue(256)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _deliver(self, item: T | BaseException) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("%s: reader thread queue full, data dropped", self._thread.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item: T | BaseException = self._step()
            except Exception as err:  # delivered to the owner, which logs and reconnects
                item = err
            if self._stop.is_set():
                return
            try:
                self._loop.call_soon_threadsafe(self._deliver, item)
            except RuntimeError:  # loop closed under us
                return
            if isinstance(item, BaseException):
                return

    async def stop(self, join_timeout: float = 3.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, join_timeout)
            if self._thread.is_alive():
                log.warning(
                    "%s: reader thread did not stop in %.1fs", self._thread.name, join_timeout
                )
