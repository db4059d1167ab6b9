"""A minimal server-sent-events reader of the kiosk stream (the benchmark's and tests' page)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from edge.kiosk.app import COOKIE, session_value


class ScreenStream:
    """``async with ScreenStream(host, port, terminal, token) as s: await s.next()``"""

    def __init__(self, host: str, port: int, terminal: str, token: str) -> None:
        self.host, self.port, self.terminal = host, port, terminal
        self._cookie = f"{COOKIE}={session_value(token)}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> ScreenStream:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(
            (
                f"GET /api/stream?terminal={self.terminal} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: {self._cookie}\r\n\r\n"
            ).encode()
        )
        await self._writer.drain()
        status = await self._reader.readline()
        if b" 200 " not in status:
            raise ConnectionError(f"kiosk stream refused: {status!r}")
        header = await self._reader.readline()
        while header not in (b"\r\n", b""):  # the response headers, up to the blank line
            header = await self._reader.readline()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def next(self) -> dict[str, Any]:
        """The next screen (chunked transfer framing and keepalives are skipped)."""
        assert self._reader is not None
        while True:
            line = await self._reader.readline()
            if not line:
                raise ConnectionError("kiosk stream closed")
            if line.startswith(b"data: "):
                screen: dict[str, Any] = json.loads(line[6:])
                return screen
