"""Serve an ASGI app with uvicorn inside the daemon's own asyncio loop (no second process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # the daemon owns SIGTERM / SIGINT; uvicorn must not replace its handlers
        yield


class InLoopHttp:
    """``async with InLoopHttp(app, host, port, name) as s: s.url`` serves until exit; with
    ``tls=(certfile, keyfile)`` over HTTPS."""

    def __init__(
        self, app: Any, host: str, port: int, name: str, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.tls = tls
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    async def __aenter__(self) -> InLoopHttp:
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
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            ws="none",
            ssl_certfile=str(self.tls[0]) if self.tls else None,
            ssl_keyfile=str(self.tls[1]) if self.tls else None,
        )
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self.name)
        async with asyncio.timeout(10):
            while not self._server.started:  # uvicorn exposes only a flag
                if self._task.done():
                    await self._task
                    raise RuntimeError(f"the {self.name} server stopped while starting")
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
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
