"""The real daemon (``run_daemon``) in this process, fed through the harness's FIFOs: for fault
tests that drive what a child process cannot be told (the wall clock it reads, its store's
filesystem) and look at the journal while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from edge.clock_guard import ClockGuard
from edge.daemon import run_daemon
from edge.store.journal import _event
from protocol.messages import Event
from tests.support.edge_harness import School
from tests.support.wait import wait_until_async


class InProcDaemon:
    def __init__(self, school: School, store: Path) -> None:
        self.school = school
        self.store = store
        self._fds: dict[str, int] = {}

    def tap(self, terminal: str, credential: str) -> None:
        fd = self._fds.get(terminal)
        if fd is None:
            fd = os.open(self.school.fifo(terminal), os.O_RDWR | os.O_NONBLOCK)
            self._fds[terminal] = fd
        os.write(fd, (credential + "\n").encode())

    def journal(self) -> list[Event]:
        with contextlib.closing(sqlite3.connect(f"file:{self.store}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT event FROM journal ORDER BY seq").fetchall()
        return [_event(blob) for (blob,) in rows]

    async def tap_and_record(self, terminal: str, credential: str) -> Event:
        """Tap and wait for the tap's event (the next one at ``terminal``)."""
        before = sum(1 for e in self.journal() if e.terminal == terminal)
        self.tap(terminal, credential)
        await wait_until_async(
            lambda: sum(1 for e in self.journal() if e.terminal == terminal) > before,
            15,
            f"an event at {terminal}",
        )
        return [e for e in self.journal() if e.terminal == terminal][before]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


@contextlib.asynccontextmanager
async def running(
    school: School,
    *,
    guard: ClockGuard | None = None,
    wall: Callable[..., object] | None = None,
    store: Path | None = None,
) -> AsyncIterator[InProcDaemon]:
    """``run_daemon`` on ``school.config`` until the block ends (then stopped as by SIGTERM)."""
    kwargs: dict[str, object] = {}
    if guard is not None:
        kwargs["guard"] = guard
    if wall is not None:
        kwargs["clock"] = wall
    task = asyncio.create_task(run_daemon(school.config, **kwargs))  # type: ignore[arg-type]
    daemon = InProcDaemon(school, store or school.root / "edge.sqlite")
    try:
        await wait_until_async(
            lambda: task.done() or all(school.fifo(t).exists() for t in school.terminals),
            10,
            "the daemon started",
        )
        await asyncio.sleep(0.3)  # the readers opened their FIFOs
        if task.done():
            task.result()
        yield daemon
    finally:
        daemon.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
