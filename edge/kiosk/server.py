"""Runs the kiosk app with uvicorn inside the daemon's own asyncio loop (no second process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from pathlib import Path

import uvicorn

from edge.core.reasons import Lang
from edge.kiosk import PAGE
from edge.kiosk.app import SESSION_RECHECK_S, create_app
from edge.kiosk.hub import KioskHub
from edge.web.guard import SignInThrottle
from edge.web.sessions import StaffSessions

SESSION_HOURS = 12.0  # a school day

log = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # the daemon owns SIGTERM / SIGINT; uvicorn must not replace its handlers
        yield


class KioskServer:
    """``async with KioskServer(hub, host, port, token) as k: k.url`` serves until exit.

    With ``tls=(certfile, keyfile)`` it serves HTTPS and its cookies are Secure. At start, a
    staff token other than the last one revokes every kiosk session (``StaffSessions.start``)."""

    def __init__(
        self,
        hub: KioskHub,
        host: str,
        port: int,
        token: str,
        language: Lang = Lang.KK,
        *,
        session_hours: float = SESSION_HOURS,
        throttle: SignInThrottle | None = None,
        tls: tuple[Path, Path] | None = None,
        recheck_s: float = SESSION_RECHECK_S,
    ) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self.tls = tls
        self.sessions = StaffSessions(
            hub.store, PAGE, token, lifetime_s=session_hours * 3600, throttle=throttle
        )
        self._app = create_app(
            hub, self.sessions, language, secure_cookies=tls is not None, recheck_s=recheck_s
        )
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    async def __aenter__(self) -> KioskServer:
        await self.sessions.start()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,  # a URL may carry the sign-in token
            lifespan="off",
            timeout_graceful_shutdown=1,
            ws="none",
            ssl_certfile=str(self.tls[0]) if self.tls else None,
            ssl_keyfile=str(self.tls[1]) if self.tls else None,
        )
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="kiosk")
        async with asyncio.timeout(10):
            while not self._server.started:  # uvicorn exposes only a flag
                if self._task.done():
                    await self._task  # raises what stopped it
                    raise RuntimeError("the kiosk server stopped while starting")
                await asyncio.sleep(0.01)
        log.info("canteen kiosk at %s (terminals: %s)", self.url, ", ".join(self.hub.terminals))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # open event streams would hold a graceful exit
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    async with asyncio.timeout(5):
                        await self._task
                except TimeoutError:
                    self._task.cancel()
                    await asyncio.gather(self._task, return_exceptions=True)
        if self._sock is not None:
            self._sock.close()
