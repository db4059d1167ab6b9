"""Per-device staff sessions of an edge page.

Staff sign a device in once with the page's staff token (typed, or a link with ``?token=`` that
the page exchanges at once); the device gets a random session, not the token: the cookie is
``<id>.<secret>``, the store keeps only the secret's SHA-256, with the page, the device's address
and browser, and an expiry (a school day by default). A session can be listed and revoked (``qaqpa
edge kiosk-sessions``); a new staff token revokes every session of the page at the next start;
failed sign-ins are throttled for the page as a whole (``guard.SignInThrottle``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.store import EdgeStore, WebSession
from edge.web.guard import SignInThrottle, csrf_token, same_secret

log = logging.getLogger(__name__)

SEEN_EVERY_MS = 5 * 60 * 1000  # "last seen" is written at most this often per session
AGENT_CHARS = 120
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def wall_ms() -> int:
    return int(time.time() * 1000)


def token_mark(token: str, salt: bytes | None = None) -> str:
    """A slow salted hash of a staff token, kept to notice that the token changed (the store
    never holds the token itself). Blocking (~50 ms): run it in a thread."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def mark_matches(token: str, mark: str) -> bool:
    kind, _, rest = mark.partition("$")
    salt_hex, _, _ = rest.partition("$")
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        return False
    return kind == "scrypt" and same_secret(token_mark(token, salt), mark)


def printable(text: str, limit: int) -> str:
    """A browser's User-Agent as stored and listed: printable ASCII, bounded."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A request's valid session: its id (for revocation) and its CSRF token."""

    id: str
    csrf: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a sign-in: ``cookie`` when issued, else ``retry_after`` (throttled) or
    neither (a wrong token)."""

    cookie: str | None = None
    session: ActiveSession | None = None
    retry_after: int | None = None


class StaffSessions:
    """The sessions of one page (``page``) signed in with one staff token."""

    def __init__(
        self,
        store: EdgeStore,
        page: str,
        token: str,
        *,
        lifetime_s: float,
        throttle: SignInThrottle | None = None,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.store = store
        self.page = page
        self._token = token
        self.lifetime_ms = int(lifetime_s * 1000)
        self.throttle = throttle or SignInThrottle()
        self._now_ms = now_ms

    async def start(self) -> list[str]:
        """Record the staff token's mark; when the token changed since the last start, revoke
        every session of the page. Returns the ids revoked."""
        mark = await self.store.web_token_mark(self.page)
        if mark is not None and await asyncio.to_thread(mark_matches, self._token, mark):
            return []
        new_mark = await asyncio.to_thread(token_mark, self._token)
        revoked = await self.store.replace_web_token(self.page, new_mark, now_ms=self._now_ms())
        if mark is not None:
            log.warning("%s: the staff token changed: %d sessions revoked", self.page, len(revoked))
        return revoked

    async def sign_in(self, token: str, *, address: str, agent: str) -> SignIn:
        # The throttle check, the comparison and the count run without an await between them.
        if self.throttle.wait_s() > 0:
            return SignIn(retry_after=self.throttle.retry_after())
        if not same_secret(token, self._token):
            delay = self.throttle.failed()
            if delay > 0:
                log.warning(
                    "%s: %d failed sign-ins in %.0f min; sign-ins refused for %.0f s",
                    self.page,
                    self.throttle.recent_failures,
                    self.throttle.rule.window_s / 60,
                    delay,
                )
            else:
                log.info("%s: a sign-in with a wrong token", self.page)
            return SignIn()
        now = self._now_ms()
        secret = secrets.token_urlsafe(32)
        row = WebSession(
            id=secrets.token_hex(6),
            page=self.page,
            staff_id=None,
            address=printable(address, 64),
            agent=printable(agent, AGENT_CHARS),
            created_ms=now,
            expires_ms=now + self.lifetime_ms,
            seen_ms=now,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        )
        await self.store.add_web_session(row)
        log.info("%s: session %s signed in", self.page, row.id)
        return SignIn(
            cookie=f"{row.id}.{secret}",
            session=ActiveSession(row.id, csrf_token(secret), row.expires_ms),
        )

    async def check(self, cookie: str | None) -> ActiveSession | None:
        """The session a cookie stands for, if it is of this page, not revoked, not expired."""
        sid, dot, secret = (cookie or "").partition(".")
        if not dot or not sid or len(sid) > 32 or not secret or len(secret) > 128:
            return None
        row = await self.store.web_session(sid)
        if row is None or row.page != self.page:
            return None
        if not same_secret(hashlib.sha256(secret.encode()).hexdigest(), row.secret_hash):
            return None
        now = self._now_ms()
        if not row.active(now):
            return None
        if now - row.seen_ms >= SEEN_EVERY_MS:
            await self.store.touch_web_session(sid, now)
        return ActiveSession(sid, csrf_token(secret), row.expires_ms)

    async def end(self, session_id: str, why: str = "signed out") -> None:
        await self.store.revoke_web_sessions([session_id], why=why, now_ms=self._now_ms())
