"""A parent is not flooded: 60 routine events (entries and exits through a turnstile that
stutters) give at most ``sms_per_hour`` SMS in an hour and then one digest; a manual pass is
sent at once even while the parent's routine SMS are held. Real PostgreSQL and the SMS sink;
the worker runs at given times (no sleeping)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.clock import now_ms
from server.notify.delivery import DeliveryWorker, digest
from server.notify.planner import Planner
from server.notify.settings import NotifySettings
from simulators.notify_sinks import SmsSink
from tests.support.console import World
from tests.support.notify import add_device, consent, outbox, store

CHILD = "s1-3a-1"  # parent1's child
MINUTE = 60_000


def run(engine: Engine, nset: NotifySettings, now: int) -> None:
    Planner(engine, nset).run_once(now)
    w = DeliveryWorker(engine, nset, rand=lambda: 0.0)
    while w.run_once(now):
        pass


def test_sixty_events_give_bounded_sms_and_a_manual_pass_is_not_held(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    limit = nset.sms_per_hour
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    start = now_ms() - 90 * MINUTE
    # One event a minute for an hour; the worker runs after each, as a live one would.
    for i in range(60):
        at = start + i * MINUTE
        store(db, dev, "S1", "entry" if i % 2 == 0 else "exit", CHILD, at)
        run(engine, nset, at + 1000)
        if i == 30:
            # A child let through without a card: the parent hears it at once.
            store(
                db, dev, "S1", "manual_pass", CHILD, at + 2000, authorised_by="t-1", direction="in"
            )
            run(engine, nset, at + 3000)
            assert "картасыз" in sms.delivered[-1].message
    in_the_first_hour = len(sms.delivered)
    assert in_the_first_hour <= limit + 1  # the routine limit and the manual pass
    rows = outbox(db)
    assert len(rows) == 61
    # An hour after the first SMS, everything held goes as one digest.
    run(engine, nset, start + 61 * MINUTE + 1000)
    rows = outbox(db)
    assert all(m.status == "sent" for m in rows), {m.status for m in rows}
    assert len(sms.delivered) == in_the_first_hour + 1
    assert sms.delivered[-1].message.count("\n") >= 5  # many events in one message
    assert len(sms.delivered) <= limit + 2


def test_digest_is_bounded() -> None:
    assert digest(["a" * 400, "b" * 400], limit=600).endswith("…")
    assert len(digest(["x"] * 1000, limit=600)) <= 600
