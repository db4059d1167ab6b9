"""A file gate: every actuation becomes one line appended to a file, flushed to disk.

For a terminal without a relay (a library desk, a lab bench) and for fault tests: each decision
the terminal acts on is appended as ``TERMINAL SEQ open|red`` and fsynced before ``actuate``
returns, so after a crash every line in the file is something that was actuated, and each names
the journal sequence number it acted on (record before act can be checked against the journal).

The file is opened once, in append mode; a line is written with a single ``write`` (a short
append is not interleaved with another process's), then ``fsync``. A new file's directory is
fsynced too, so the file itself survives a power cut.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from hardware.base import HardwareError

log = logging.getLogger(__name__)


class LogGate:
    """``async with LogGate(gate_id, path) as gate: await gate.actuate(seq, granted)``."""

    def __init__(self, gate_id: str, path: Path) -> None:
        self.gate_id = gate_id
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return fd

    async def __aenter__(self) -> LogGate:
        try:
            self._fd = await asyncio.to_thread(self._open)
        except OSError as err:
            raise HardwareError(f"gate {self.gate_id}: cannot open {self.path}: {err}") from err
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, fd: int, line: bytes) -> None:
        written = os.write(fd, line)
        if written != len(line):  # a full disk: refuse rather than leave half a line unnoticed
            raise OSError(f"short write ({written} of {len(line)} bytes)")
        os.fsync(fd)

    async def actuate(self, seq: int, granted: bool) -> None:
        """Append ``GATE SEQ open`` (granted) or ``GATE SEQ red``; durable when it returns."""
        if self._fd is None:
            raise HardwareError(f"gate {self.gate_id}: not open (use async with)")
        verdict = "open" if granted else "red"
        line = f"{self.gate_id} {seq} {verdict}\n".encode()
        try:
            await asyncio.to_thread(self._append, self._fd, line)
        except OSError as err:
            raise HardwareError(
                f"gate {self.gate_id}: cannot append to {self.path}: {err}"
            ) from err
