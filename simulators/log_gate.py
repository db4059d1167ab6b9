"""A simulated relay that appends each actuation to a file and fsyncs it.

Fault tests read this file after killing the daemon: every line is something that was actuated,
so every line must have a committed journal record (record before act).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hardware.base import PassageResult


class LogActuator:
    def __init__(self, path: Path, terminal: str) -> None:
        self.path = path
        self.terminal = terminal

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    async def actuate(self, seq: int, granted: bool) -> PassageResult:
        verdict = "open" if granted else "red"
        await asyncio.to_thread(self._append, f"{self.terminal} {seq} {verdict}\n")
        return PassageResult.UNKNOWN
