"""Sign-in throttling per (login, address) with growing delays instead of a lock per login; the
same work and the same answer whether or not a login exists; sign-ins are audited. The clock is
frozen (time-machine), so no assertion depends on how fast the machine is."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts import passwords
from server.accounts.throttle import (
    BASE_DELAY_MS,
    FORGET_MS,
    FREE_FAILURES,
    MAX_DELAY_MS,
    Failures,
    LoginThrottle,
    after_failure,
    delay_after,
    wait_ms,
)
from server.audit.models import AuditEntry
from server.console import i18n
from tests.support.console import Browser, World, password_of

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def test_delays_grow_and_are_capped() -> None:
    assert [delay_after(n) for n in range(FREE_FAILURES)] == [0] * FREE_FAILURES
    delays = [delay_after(n) for n in range(FREE_FAILURES, FREE_FAILURES + 5)]
    assert delays == [BASE_DELAY_MS * 2**i for i in range(5)]
    assert delay_after(10_000) == MAX_DELAY_MS
    r = None
    for _ in range(FREE_FAILURES):
        r = after_failure(r, 1000)
    assert wait_ms(r, 1000) == BASE_DELAY_MS and wait_ms(r, 1000 + BASE_DELAY_MS) == 0
    # An hour without failures forgets the pair.
    assert wait_ms(Failures(50, 0), FORGET_MS) == 0
    assert after_failure(Failures(50, 0), FORGET_MS) == Failures(1, FORGET_MS)


def test_the_throttle_stays_bounded() -> None:
    t = LoginThrottle(max_pairs=100)
    for i in range(1000):
        t.failed(f"made-up-{i}", "10.0.0.1", 1000 + i)
    assert len(t._records) <= 100
    t.failed("admin1", "10.0.0.2", 5000)
    assert t.wait_ms("admin1", "10.0.0.2", 5000) == 0  # one failure is free


def _client(app, address: str) -> Browser:  # type: ignore[no-untyped-def]
    b = Browser(TestClient(app, client=(address, 50000)))
    b.get("/login")
    return b


def test_failures_from_one_address_do_not_lock_the_login_elsewhere(app, world: World) -> None:  # type: ignore[no-untyped-def]
    with time_machine.travel(T0, tick=False) as clock:
        attacker = _client(app, "203.0.113.7")
        for _ in range(FREE_FAILURES + 5):
            r = attacker.post("/login", {"login": "admin1", "password": "nope-nope-1"})
            assert r.status_code in (401, 429)
        # The attacker's pair waits, even with the right password (not checked meanwhile).
        r = attacker.post("/login", {"login": "admin1", "password": password_of("admin1")})
        assert r.status_code == 429
        # The teacher behind the school's NAT address signs in at once.
        teacher = _client(app, "198.51.100.20")
        r = teacher.post("/login", {"login": "admin1", "password": password_of("admin1")})
        assert r.status_code == 303
        # After the delay the attacker's pair may try again (and it is one attempt).
        clock.shift(dt.timedelta(milliseconds=delay_after(FREE_FAILURES) + 1))
        r = attacker.post("/login", {"login": "admin1", "password": "nope-nope-1"})
        assert r.status_code == 401


def test_the_delay_grows_with_each_failure(app, world: World) -> None:  # type: ignore[no-untyped-def]
    with time_machine.travel(T0, tick=False) as clock:
        b = _client(app, "203.0.113.8")
        waited = []
        for _ in range(4):
            while True:
                r = b.post("/login", {"login": "duty1", "password": "nope-nope-1"})
                if r.status_code == 401:
                    break
                assert r.status_code == 429
                clock.shift(dt.timedelta(seconds=1))
                waited[-1] += 1
            waited.append(0)
        assert waited[: FREE_FAILURES - 1] == [0] * (FREE_FAILURES - 1)
        grown = waited[FREE_FAILURES - 1 : -1]
        assert grown == sorted(grown) and grown[0] > 0


@pytest.mark.parametrize("login", ["admin1", "no-such-login"])
def test_the_same_work_and_answer_whether_the_login_exists(
    app, world: World, login: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    real = passwords._hasher

    class Counting:
        def hash(self, password: str) -> str:
            calls.append("hash")
            return real.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            calls.append("verify")
            return real.verify(stored, password)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    b = _client(app, "192.0.2.1")
    r = b.post("/login", {"login": login, "password": "wrong-password-9"})
    assert r.status_code == 401 and i18n.gettext("Wrong login or password.", "kk") in r.text
    assert len(calls) == 1  # one argon2 operation either way


def test_sign_ins_and_failures_are_audited(app, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    b = _client(app, "192.0.2.2")
    b.post("/login", {"login": "admin1", "password": "wrong-password-9"})
    b.post("/login", {"login": "ghost", "password": "wrong-password-9"})
    b.post("/login", {"login": "admin1", "password": password_of("admin1")})
    rows = db.execute(
        select(AuditEntry.action, AuditEntry.user_pk, AuditEntry.summary)
        .where(AuditEntry.subject == "account")
        .order_by(AuditEntry.pk)
    ).all()
    assert [tuple(r) for r in rows] == [
        ("sign_in_failed", world.users["admin1"], "wrong password"),
        ("sign_in_failed", None, "unknown or inactive login"),
        ("sign_in", world.users["admin1"], "password"),
    ]
    assert all("ghost" not in r.summary and "wrong-password" not in r.summary for r in rows)
