"""The life cycle shared by the server's long-running MQTT services (ingest, downlink)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
import signal
import threading
import time
from types import TracebackType
from typing import Self

from server.db import is_unreachable


class StartAbandoned(Exception):
    """A stop was asked for (SIGTERM, SIGINT) while ``start`` was still waiting (for the
    database): the service gives up starting."""


class ThreadedService(abc.ABC):
    """A service whose ``start`` / ``stop`` run paho's and its own threads; usable ``with``,
    ``async with`` (start and stop off the event loop) or as a process's main loop."""

    _stop_requested: threading.Event | None = None

    @property
    def stop_requested(self) -> threading.Event:
        """Set by SIGTERM or SIGINT under ``run_forever``: a ``start`` still waiting for the
        database waits on it and raises ``StartAbandoned`` when it is set."""
        if self._stop_requested is None:
            self._stop_requested = threading.Event()
        return self._stop_requested

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def run_forever(self, alongside: ThreadedService | None = None) -> None:
        """For ``qaqpa server ingest`` / ``downlink``: run until SIGTERM or SIGINT.

        ``alongside`` (the downlink's due-policy job) is started after the signals are caught
        and stopped after this service: a SIGTERM at any moment of start-up is a clean stop,
        never the default death by signal."""
        done = self.stop_requested
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        with alongside if alongside is not None else contextlib.nullcontext():
            try:
                self.start()
            except StartAbandoned as err:
                logging.getLogger(__name__).info("%s", err)
                self.stop()  # what start had made
                return
            done.wait()
            self.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


class DatabasePacing:
    """How a background loop waits and what it logs while its rounds fail.

    The database unreachable (stopped, restarting): one warning when it goes, one line a minute
    while it stays away, one when it answers again, and pauses that double from ``first_s`` up
    to ``cap_s`` (jittered): no traceback every second, no retry storm, and the loop lives on.
    Any other error is logged with its traceback every time, as before, and paced the same way.
    """

    def __init__(
        self, name: str, logger: logging.Logger, first_s: float = 0.5, cap_s: float = 5.0
    ) -> None:
        self.name = name
        self._log = logger
        self._first_s = first_s
        self._cap_s = cap_s
        self._failures = 0
        self._down_since: float | None = None
        self._last_said = 0.0
        self.outages = 0  # times the database went away and came back

    @property
    def database_down(self) -> bool:
        return self._down_since is not None

    def failed(self, err: BaseException) -> float:
        """Record a failed round (call from ``except``); the pause before the next one."""
        self._failures += 1
        now = time.monotonic()
        if is_unreachable(err):
            if self._down_since is None:
                self._down_since = self._last_said = now
                self._log.warning(
                    "%s: the database is unreachable (%s); trying again",
                    self.name,
                    type(err).__name__,
                )
            elif now - self._last_said >= 60.0:
                self._last_said = now
                self._log.warning(
                    "%s: the database is still unreachable after %.0f s",
                    self.name,
                    now - self._down_since,
                )
        else:
            self._log.error("%s: a round failed; trying again", self.name, exc_info=err)
        base = min(self._cap_s, self._first_s * 2.0 ** min(self._failures - 1, 16))
        return float(base * (0.75 + 0.25 * random.random()))

    def succeeded(self) -> None:
        """Record a round that worked (the database answered)."""
        if self._down_since is not None:
            self._log.warning(
                "%s: the database answers again after %.1f s",
                self.name,
                time.monotonic() - self._down_since,
            )
            self._down_since = None
            self.outages += 1
        self._failures = 0
