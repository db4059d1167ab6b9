"""Keyboard-wedge style readers: one credential per text line from a character device.

Many USB desk readers "type" the card number followed by Enter; on a Linux kiosk they are read
from their tty or hidraw-to-line bridge, and in tests and the demo from a FIFO or a pty. The
device is opened read-write so that a FIFO never reports end-of-file between writers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

from hardware.base import CredentialRead, Misread, ReaderEvent, ReaderStatus, normalise_credential

log = logging.getLogger(__name__)
_VALID = re.compile(r"^[A-Z0-9]+:[A-Z0-9:]+$")
MAX_LINE = 256


class LineReader:
    """Yields a CredentialRead per valid line (``EM:0004567891``); other lines are Misreads."""

    def __init__(self, reader_id: str, path: Path, *, default_prefix: str = "EM") -> None:
        self.reader_id = reader_id
        self.path = path
        self.default_prefix = default_prefix
        self.misreads = 0
        self._fd: int | None = None
        self._queue: asyncio.Queue[ReaderEvent] = asyncio.Queue()
        self._buf = b""

    async def __aenter__(self) -> LineReader:
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        self._queue.put_nowait(ReaderStatus(self.reader_id, True, "opened"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as err:
            log.warning("reader %s: read failed (%s)", self.reader_id, err.strerror)
            asyncio.get_running_loop().remove_reader(self._fd)
            self._queue.put_nowait(
                ReaderStatus(self.reader_id, False, err.strerror or "read failed")
            )
            return
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > MAX_LINE:
            self._misread("line too long")
            self._buf = b""
        now = time.monotonic()
        for raw in lines:
            text = raw.decode("ascii", "replace").strip()
            if not text:
                continue
            cred = normalise_credential(text if ":" in text else f"{self.default_prefix}:{text}")
            if _VALID.fullmatch(cred):
                self._queue.put_nowait(CredentialRead(self.reader_id, cred, now))
            else:
                self._misread("not a credential")

    def _misread(self, detail: str) -> None:
        self.misreads += 1
        self._queue.put_nowait(Misread(self.reader_id, detail))

    async def events(self) -> AsyncIterator[ReaderEvent]:
        while True:
            yield await self._queue.get()
