"""Staff sign-in to the staff page: the member's own card at a reader, then their PIN.

The page claims a reader (``capture.ReaderInput``); the next card read there must be an active
staff card, and the PIN (typed on the page, or on the reader's keypad ending with ``#``) must
match the member's keyed verifier (``pins``). Wrong PINs are limited per member (doubling
delays, then a lockout until a new PIN is set from the console) and every failure also counts in
the page's global throttle (``edge.web.guard``), whatever the card. A signed-in member gets a
short session of their own (``web_sessions`` with their staff id), HttpOnly, SameSite=Strict."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from edge.core.model import Staff
from edge.staff import PAGE
from edge.staff.capture import ReaderBusy, ReaderInput
from edge.staff.pins import PinRule, locked, pin_delay_s, pin_matches
from edge.store import EdgeStore, WebSession
from edge.web.guard import SignInThrottle, csrf_token, same_secret
from edge.web.sessions import AGENT_CHARS, SEEN_EVERY_MS, printable, wall_ms
from protocol.messages import OwnerKind

log = logging.getLogger(__name__)

CARD_WAIT_S = 30.0  # how long a sign-in waits for the card (and the keypad entry)


class Refusal(enum.StrEnum):
    """Why a sign-in failed (the page shows it in kk/ru/en)."""

    NO_CARD = "no_card"  # no card at the reader in time
    NOT_STAFF = "not_staff"  # unknown, blocked or a student's card
    NO_PIN = "no_pin"  # no PIN set for this member yet
    WRONG_PIN = "wrong_pin"
    WAIT = "wait"  # too many wrong PINs: wait ``retry_after`` seconds
    LOCKED = "locked"  # locked until a new PIN is set from the console
    BUSY = "busy"  # another page waits at this reader
    UNKNOWN_READER = "unknown_reader"


@dataclass(frozen=True, slots=True)
class StaffUser:
    """The signed-in staff member of a request."""

    session_id: str
    staff_id: str
    name: str
    roles: frozenset[str]
    classes: frozenset[str]
    csrf: str
    expires_ms: int


@dataclass(frozen=True, slots=True)
class SignInResult:
    cookie: str | None = None
    user: StaffUser | None = None
    refusal: Refusal | None = None
    retry_after: int | None = None


class StaffAuth:
    """Card + PIN sign-in and the sessions of the staff page."""

    def __init__(
        self,
        store: EdgeStore,
        readers: ReaderInput,
        pin_key: bytes,
        sign_in_terminals: list[str],
        *,
        lifetime_s: float,
        rule: PinRule | None = None,
        throttle: SignInThrottle | None = None,
        card_wait_s: float = CARD_WAIT_S,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.store = store
        self.readers = readers
        self._key = pin_key
        self.terminals = list(sign_in_terminals)
        self.lifetime_ms = int(lifetime_s * 1000)
        self.rule = rule or PinRule()
        self.throttle = throttle or SignInThrottle()
        self.card_wait_s = card_wait_s
        self._now_ms = now_ms

    async def sign_in(
        self, terminal: str, typed_pin: str, *, address: str, agent: str
    ) -> SignInResult:
        if terminal not in self.terminals:
            return SignInResult(refusal=Refusal.UNKNOWN_READER)
        if self.throttle.wait_s() > 0:
            return SignInResult(refusal=Refusal.WAIT, retry_after=self.throttle.retry_after())
        try:
            async with self.readers.claim(terminal) as claim:
                try:
                    async with asyncio.timeout(self.card_wait_s):
                        credential = await claim.card()
                        pin = typed_pin or await claim.keypad_entry()
                except TimeoutError:
                    return SignInResult(refusal=Refusal.NO_CARD)
        except ReaderBusy:
            return SignInResult(refusal=Refusal.BUSY)
        staff = self._staff_of(credential)
        if staff is None:
            self._global_failure()
            return SignInResult(refusal=Refusal.NOT_STAFF)
        return await self._check_pin(staff, pin, address=address, agent=agent)

    def _staff_of(self, credential: str) -> Staff | None:
        card = self.store.state.card(credential)
        if card is None or card.owner_kind is not OwnerKind.STAFF or card.blocked_reason:
            return None
        return self.store.state.staff(card.owner_id)

    def _global_failure(self) -> None:
        delay = self.throttle.failed()
        if delay > 0:
            log.warning(
                "staff page: %d failed sign-ins; sign-ins refused for %.0f s",
                self.throttle.recent_failures,
                delay,
            )

    async def _check_pin(self, staff: Staff, pin: str, *, address: str, agent: str) -> SignInResult:
        row = await self.store.staff_pin(staff.id)
        if row is None:
            return SignInResult(refusal=Refusal.NO_PIN)
        now = self._now_ms()
        if locked(row.failures, self.rule):
            return SignInResult(refusal=Refusal.LOCKED)
        if now < row.not_before_ms:
            wait = math.ceil((row.not_before_ms - now) / 1000)
            return SignInResult(refusal=Refusal.WAIT, retry_after=max(1, wait))
        if not pin_matches(self._key, staff.id, pin, row.verifier):
            delay = pin_delay_s(row.failures + 1, self.rule)
            failures = await self.store.record_pin_attempt(
                staff.id, ok=False, not_before_ms=now + int(delay * 1000)
            )
            self._global_failure()
            log.info("staff page: a wrong PIN (%d in a row)", failures)
            if locked(failures, self.rule):
                log.warning("staff page: a staff PIN is locked after %d wrong entries", failures)
                return SignInResult(refusal=Refusal.LOCKED)
            return SignInResult(refusal=Refusal.WRONG_PIN)
        if row.failures:
            await self.store.record_pin_attempt(staff.id, ok=True, not_before_ms=0)
        return await self._new_session(staff, now, address=address, agent=agent)

    async def _new_session(
        self, staff: Staff, now: int, *, address: str, agent: str
    ) -> SignInResult:
        secret = secrets.token_urlsafe(32)
        row = WebSession(
            id=secrets.token_hex(6),
            page=PAGE,
            staff_id=staff.id,
            address=printable(address, 64),
            agent=printable(agent, AGENT_CHARS),
            created_ms=now,
            expires_ms=now + self.lifetime_ms,
            seen_ms=now,
            secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        )
        await self.store.add_web_session(row)
        log.info("staff page: session %s signed in", row.id)
        user = self._user(row.id, staff, csrf_token(secret), row.expires_ms)
        return SignInResult(cookie=f"{row.id}.{secret}", user=user)

    def _user(self, sid: str, staff: Staff, csrf: str, expires_ms: int) -> StaffUser:
        name = self.store.staff_names.get(staff.id, "")
        return StaffUser(sid, staff.id, name, staff.roles, staff.classes, csrf, expires_ms)

    async def check(self, cookie: str | None) -> StaffUser | None:
        """The signed-in member a cookie stands for: a session of this page, not revoked, not
        expired, of a member still on the roster."""
        sid, dot, secret = (cookie or "").partition(".")
        if not dot or not sid or len(sid) > 32 or not secret or len(secret) > 128:
            return None
        row = await self.store.web_session(sid)
        if row is None or row.page != PAGE or row.staff_id is None:
            return None
        if not same_secret(hashlib.sha256(secret.encode()).hexdigest(), row.secret_hash):
            return None
        now = self._now_ms()
        if not row.active(now):
            return None
        staff = self.store.state.staff(row.staff_id)
        if staff is None:
            return None
        if now - row.seen_ms >= SEEN_EVERY_MS:
            await self.store.touch_web_session(sid, now)
        return self._user(sid, staff, csrf_token(secret), row.expires_ms)

    async def end(self, session_id: str, why: str = "signed out") -> None:
        await self.store.revoke_web_sessions([session_id], why=why, now_ms=self._now_ms())
