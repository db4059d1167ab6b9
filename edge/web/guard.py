"""Guards of the edge's web pages: the global sign-in throttle (a pure delay rule and its small
shell), CSRF tokens bound to a session, and the security headers the console sends.

The throttle counts every failed sign-in of a page together, whatever the address: a school's
network has many addresses an attacker can use, and its staff share few. Failures beyond the
free ones close the page's sign-in for a growing time (doubling up to a cap), during which any
attempt is refused before the token is even compared; a signed-in device is not affected."""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

# The console's headers (server/console/app.py), for every response of an edge page, SSE too.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("cache-control", "no-store"),  # pages carry children's names and balances
)


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    """How failed sign-ins of one page slow the next ones (all addresses together)."""

    free: int = 5  # failures within the window before any delay (typing mistakes)
    base_s: float = 1.0  # the first delay; each further failure doubles it
    cap_s: float = 60.0  # at most one guess a minute, however many devices guess
    window_s: float = 900.0  # failures older than this are forgotten


def sign_in_delay(failures: int, rule: ThrottleRule) -> float:
    """Seconds the page refuses sign-ins after its ``failures``-th failure in the window."""
    if failures < rule.free:
        return 0.0
    return min(rule.cap_s, rule.base_s * 2.0 ** min(failures - rule.free, 64))


class SignInThrottle:
    """``wait_s()`` before comparing a token (refuse while > 0), ``failed()`` after a wrong one.

    Both are synchronous: an attempt is checked and counted without yielding to the event loop,
    so guesses sent at the same moment cannot all slip through one opening."""

    def __init__(
        self, rule: ThrottleRule | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.rule = rule or ThrottleRule()
        self._clock = clock
        self._failures: deque[float] = deque()
        self._not_before = 0.0

    def wait_s(self) -> float:
        return max(0.0, self._not_before - self._clock())

    def retry_after(self) -> int:
        """``wait_s`` rounded up to whole seconds (for a Retry-After header)."""
        return max(1, math.ceil(self.wait_s()))

    def failed(self) -> float:
        """Count a wrong token; returns the delay now imposed on the page's sign-ins."""
        now = self._clock()
        while self._failures and self._failures[0] <= now - self.rule.window_s:
            self._failures.popleft()
        self._failures.append(now)
        delay = sign_in_delay(len(self._failures), self.rule)
        self._not_before = max(self._not_before, now + delay)
        return delay

    @property
    def recent_failures(self) -> int:
        return len(self._failures)


def csrf_token(secret: str) -> str:
    """The synchroniser token of a session: derived from the cookie's secret (never stored), so
    a page of another origin, which cannot read the cookie, cannot know it."""
    return hmac.new(secret.encode(), b"qaqpa-edge-csrf", hashlib.sha256).hexdigest()[:43]


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any lengths."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """Pure ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response that does not set
    them itself (it wraps only ``http.response.start``, so event streams pass through as they
    are, unlike a ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
