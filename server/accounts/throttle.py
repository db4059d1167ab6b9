"""Sign-in throttling by login AND address, with delays that grow with each failure.

Why not a lock per login: anyone could lock a known login out every few minutes. Why not per
address alone: a school's staff share one NAT address, so one mistyping teacher (or one attacker
inside the school) would shut the whole school out. A pair (login, address) gets a few free
failures, then each further attempt waits twice as long as the one before, up to a cap; a
success or an hour without failures forgets the pair. The decisions are pure functions of the
pair's record and ``now``; ``LoginThrottle`` keeps the records in the API process's memory
(bounded; one API process, as ``qaqpa server api`` runs).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

FREE_FAILURES = 3
BASE_DELAY_MS = 2_000
MAX_DELAY_MS = 15 * 60_000
FORGET_MS = 60 * 60_000
MAX_PAIRS = 100_000


@dataclass(frozen=True, slots=True)
class Failures:
    count: int
    last_ms: int


def delay_after(count: int) -> int:
    """How long a pair with ``count`` failures waits before its next attempt (ms)."""
    if count < FREE_FAILURES:
        return 0
    doublings: int = min(count - FREE_FAILURES, 30)
    return min(BASE_DELAY_MS << doublings, MAX_DELAY_MS)


def wait_ms(record: Failures | None, now_ms: int) -> int:
    """0 if the pair may try now, else the milliseconds left."""
    if record is None or now_ms - record.last_ms >= FORGET_MS:
        return 0
    return max(0, record.last_ms + delay_after(record.count) - now_ms)


def after_failure(record: Failures | None, now_ms: int) -> Failures:
    if record is None or now_ms - record.last_ms >= FORGET_MS:
        return Failures(1, now_ms)
    return Failures(record.count + 1, now_ms)


class LoginThrottle:
    """The records of the pairs that failed recently (thread-safe: sync routes run in threads)."""

    def __init__(self, max_pairs: int = MAX_PAIRS) -> None:
        self._records: dict[tuple[str, str], Failures] = {}
        self._lock = threading.Lock()
        self._max_pairs = max_pairs

    @staticmethod
    def key(login: str, address: str) -> tuple[str, str]:
        return (login.strip().lower()[:100], address)

    def wait_ms(self, login: str, address: str, now_ms: int) -> int:
        with self._lock:
            return wait_ms(self._records.get(self.key(login, address)), now_ms)

    def failed(self, login: str, address: str, now_ms: int) -> None:
        k = self.key(login, address)
        with self._lock:
            self._records[k] = after_failure(self._records.pop(k, None), now_ms)
            if len(self._records) > self._max_pairs:
                self._prune(now_ms)

    def succeeded(self, login: str, address: str) -> None:
        with self._lock:
            self._records.pop(self.key(login, address), None)

    def _prune(self, now_ms: int) -> None:
        for k in [k for k, r in self._records.items() if now_ms - r.last_ms >= FORGET_MS]:
            del self._records[k]
        # Still full (a spray of made-up logins): drop the oldest half. Dicts keep insertion
        # order and a failure re-inserts its pair, so the first are the least recent.
        excess = len(self._records) - self._max_pairs // 2
        if excess > 0 and len(self._records) > self._max_pairs:
            for k in list(self._records)[:excess]:
                del self._records[k]
