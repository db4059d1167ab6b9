"""Withdrawing a consent in the console cancels the parents' queued messages in the same
transaction: none can go out after the withdrawal is saved, whatever the workers do next."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from server.clock import now_ms
from server.notify.planner import Planner
from server.notify.settings import NotifySettings
from tests.support.console import Browser, World
from tests.support.notify import CHILD, add_device, consent, outbox, store


def _queue_two(db: Session, world: World, engine: Engine, nset: NotifySettings) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD], granted=True)
    store(db, dev, "S1", "entry", CHILD)
    store(db, dev, "S1", "exit", CHILD)
    Planner(engine, nset).run_once(now_ms())
    assert [m.status for m in outbox(db)] == ["queued", "queued"]


def _withdraw(browser: Browser, student_pk: int, kind: str) -> None:
    browser.get(f"/students/{student_pk}/consents")
    r = browser.post(
        f"/students/{student_pk}/consents",
        {
            "kind": kind,
            "decision": "withdrawn",
            "given_by": "Parent One",
            "document": "Withdrawal 7",
            "signed_on": "2026-11-20",
        },
    )
    assert r.status_code in (200, 303), r.text


def test_notifications_withdrawal_cancels_the_queue_at_once(
    browser: Browser,
    db: Session,
    world: World,
    engine: Engine,
    nset: NotifySettings,
) -> None:
    _queue_two(db, world, engine, nset)
    browser.login("admin1")
    _withdraw(browser, world.students[CHILD], "notifications")
    db.expire_all()
    assert [(m.status, m.last_error) for m in outbox(db)] == [
        ("cancelled", "notifications consent withdrawn")
    ] * 2


def test_data_withdrawal_cancels_the_queue_at_once(
    browser: Browser,
    db: Session,
    world: World,
    engine: Engine,
    nset: NotifySettings,
) -> None:
    from server.people.models import Consent

    _queue_two(db, world, engine, nset)
    # the data consent the console withdraws (the world's students have none recorded yet)
    db.add(
        Consent(
            student_pk=world.students[CHILD],
            kind="data",
            granted=True,
            given_by="Parent One",
            document="D-1",
            signed_on=dt.date(2026, 9, 1),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    browser.login("admin1")
    _withdraw(browser, world.students[CHILD], "data")
    db.expire_all()
    # Nothing is sent, and the queued texts (they carry the child's first name) went with the
    # erasure of the child's personal data (retention).
    assert outbox(db) == []
