"""The kiosk's client side for the benchmark and the tests: signing a device in as the page does
(``sign_in``) and a minimal server-sent-events reader of the kiosk stream (``ScreenStream``)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from edge.kiosk.app import COOKIE, CSRF_HEADER, FORM_COOKIE

_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@dataclass(frozen=True, slots=True)
class KioskLogin:
    cookie: str  # the device's session cookie value
    csrf: str  # what the page sends with every write


async def sign_in(http: httpx.AsyncClient, token: str) -> KioskLogin:
    """Sign ``http`` (its ``base_url`` the kiosk) in with the staff token through the sign-in
    form; afterwards its writes carry the CSRF header. Raises ``PermissionError`` if refused."""
    await http.get("/")  # the sign-in form and its double-submit cookie
    form = http.cookies.get(FORM_COOKIE, "")
    answer = await http.post("/login", data={"token": token, "csrf": form})
    cookie = answer.cookies.get(COOKIE)
    if answer.status_code != 303 or cookie is None:
        raise PermissionError(f"the kiosk refused the sign-in ({answer.status_code})")
    page = await http.get("/")
    found = _CSRF_META.search(page.text)
    if page.status_code != 200 or found is None:
        raise PermissionError(f"the kiosk page did not open after sign-in ({page.status_code})")
    http.headers[CSRF_HEADER] = found.group(1)
    return KioskLogin(cookie, found.group(1))


class ScreenStream:
    """``async with ScreenStream(host, port, terminal, cookie) as s: await s.next()``"""

    def __init__(self, host: str, port: int, terminal: str, cookie: str) -> None:
        self.host, self.port, self.terminal = host, port, terminal
        self._cookie = f"{COOKIE}={cookie}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> ScreenStream:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(
            (
                f"GET /api/stream?terminal={self.terminal} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
                f"Cookie: {self._cookie}\r\nConnection: close\r\n\r\n"
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
        """The next screen (chunked transfer framing and keepalives are skipped); raises
        ``ConnectionError`` when the server ends the stream."""
        assert self._reader is not None
        while True:
            line = await self._reader.readline()
            if not line or line == b"0\r\n":  # closed, or the last chunk of the response
                raise ConnectionError("kiosk stream closed")
            if line.startswith(b"data: "):
                screen: dict[str, Any] = json.loads(line[6:])
                return screen
