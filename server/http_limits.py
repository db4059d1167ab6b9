"""Request body limits, enforced while the body is read (an ASGI middleware).

A body declared larger than its route's limit (``Content-Length``) is answered 413 before a
byte of it is read; a body sent without a length (chunked) is counted as it arrives and answered
413 as soon as it passes the limit, so a client cannot make the server hold more than the limit
plus one network chunk. ``deploy/nginx/qaqpa.conf`` repeats the same limits at the proxy (a test
keeps them equal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """``default`` for every path not named in ``routes`` (exact paths)."""

    default: int = 1 * MIB
    routes: Mapping[str, int] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        return self.routes.get(path, self.default)


# Forms are small; the roster import takes a 5 MB file plus its multipart framing; a device's
# enrolment and the payment provider's callback are a few hundred bytes (the provider's contract
# caps a callback at 10,000 bytes).
LIMITS = BodyLimits(
    default=1 * MIB,
    routes={
        "/roster/import": 6 * MIB,
        "/api/v1/enrol": 4 * KIB,
        "/canteen/api/payments/callback": 10_000,
    },
)


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes its limit; FastAPI passes an HTTPException
    through its body parsing unchanged, so the route never runs."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"The request body is too large: at most {limit} bytes are accepted here."


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits = LIMITS) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Raised where no exception handler answered it (outside FastAPI's routing).
            if started:
                raise
            await _send_413(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps({"detail": too_large_message(limit)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the connection cannot be reused.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
