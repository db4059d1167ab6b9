"""The life cycle shared by the server's long-running MQTT services (ingest, downlink)."""

from __future__ import annotations

import abc
import asyncio
import signal
import threading
from types import TracebackType
from typing import Self


class ThreadedService(abc.ABC):
    """A service whose ``start`` / ``stop`` run paho's and its own threads; usable ``with``,
    ``async with`` (start and stop off the event loop) or as a process's main loop."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def run_forever(self) -> None:
        """For ``qaqpa server ingest`` / ``downlink``: run until SIGTERM or SIGINT."""
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        self.start()
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
