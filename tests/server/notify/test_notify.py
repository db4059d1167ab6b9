"""Parent notifications end to end on real PostgreSQL: stored events -> planner -> outbox ->
workers -> the local SMS gateway and SMTP server (in-process sinks)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import zoneinfo
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.clock import now_ms
from server.db import make_engine
from server.notify.delivery import DeliveryWorker, recover_interrupted
from server.notify.models import NotifyCursor, NotifyPreference
from server.notify.planner import Planner, cancel_without_consent
from server.notify.rules import local_clock
from server.notify.settings import NotifySettings
from server.people.models import Guardian
from server.settings import ServerSettings
from simulators.notify_sinks import SmsSink, SmtpSink
from tests.support.console import World
from tests.support.notify import CHILD, add_device, consent, outbox, store

ROOT = Path(__file__).resolve().parents[3]
PHONE = "+77010000001"


def run(engine: Engine, nset: NotifySettings, now: int | None = None) -> DeliveryWorker:
    Planner(engine, nset).run_once(now)
    w = DeliveryWorker(engine, nset, rand=lambda: 0.0)
    while w.run_once(now):
        pass
    return w


def test_entry_reaches_the_sms_gateway_in_the_parents_language(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    at = now_ms() - 2000
    store(db, dev, "S1", "entry", CHILD, at)
    run(engine, nset)
    [got] = sms.delivered
    t = local_clock(at, "Asia/Almaty")
    assert got.to == PHONE
    assert got.message == f"{t} Name3AS1 мектепке кірді (School No. 1)."
    # least data: no surname, no class, no student id
    assert "Surname1" not in got.message and "3A" not in got.message.replace("Name3AS1", "")
    assert CHILD not in got.message
    [m] = outbox(db)
    assert (m.status, m.attempts, m.kind, m.channel, m.lang) == ("sent", 1, "entry", "sms", "kk")
    assert got.key == str(m.id)  # the idempotency key is the outbox id
    # the parent switches the console to Russian: the next message is in Russian
    db.execute(update(User).where(User.pk == world.users["parent1"]).values(lang="ru"))
    db.commit()
    store(db, dev, "S1", "exit", CHILD, at + 1000)
    run(engine, nset)
    assert (
        sms.delivered[1].message
        == f"{local_clock(at + 1000, 'Asia/Almaty')} Name3AS1: выход из школы (School No. 1)."
    )


def test_email_reaches_the_smtp_server(
    db: Session, world: World, engine: Engine, nset: NotifySettings, smtp: SmtpSink, sms: SmsSink
) -> None:
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    g.email = "parent1@example.kz"
    db.add(
        NotifyPreference(
            guardian_pk=g.pk,
            student_pk=world.students[CHILD],
            subscriptions=[["entry", "email"]],
            updated_at_ms=0,
        )
    )
    db.execute(update(User).where(User.pk == world.users["parent1"]).values(lang="en"))
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    at = now_ms() - 2000
    store(db, dev, "S1", "entry", CHILD, at)
    run(engine, nset)
    [mail] = smtp.wait_for(1, 5)
    assert mail.recipients == ["parent1@example.kz"]
    assert mail.text == f"{local_clock(at, 'Asia/Almaty')} Name3AS1 entered school (School No. 1)."
    assert sms.delivered == []  # only e-mail was chosen
    assert outbox(db)[0].status == "sent"


def test_retry_after_the_gateway_fails_twice(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD)
    sms.fail_next(2)
    t = now_ms()
    Planner(engine, nset).run_once(t)
    w = DeliveryWorker(engine, nset, rand=lambda: 0.0)
    assert w.run_once(t) == 1
    [m] = outbox(db)
    assert (m.status, m.attempts) == ("queued", 1) and "503" in m.last_error
    assert m.due_at_ms == t + 500  # base 1 s, jitter 0 -> half of it
    assert w.run_once(t) == 0  # not due yet
    w.run_once(m.due_at_ms)
    [m] = outbox(db)
    assert (m.status, m.attempts) == ("queued", 2) and m.due_at_ms == t + 500 + 1000
    w.run_once(m.due_at_ms)
    [m] = outbox(db)
    assert (m.status, m.attempts, m.last_error) == ("sent", 3, "")
    assert len(sms.delivered) == 1


def test_failed_after_max_attempts(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD)
    sms.fail_next(10)
    w = DeliveryWorker(engine, nset, rand=lambda: 0.0)
    t = now_ms()
    Planner(engine, nset).run_once(t)
    for _ in range(5):
        w.run_once(t)
        t += 60_000
    [m] = outbox(db)
    assert (m.status, m.attempts) == ("failed", 3) and m.last_error
    assert PHONE not in m.last_error


def test_manual_pass_notifies_the_parents_even_in_quiet_hours(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    # quiet hours from an hour ago to an hour ahead (school time): an entry waits, a manual
    # pass does not
    now = now_ms()
    local = dt.datetime.fromtimestamp(now / 1000, zoneinfo.ZoneInfo("Asia/Almaty"))
    minute = local.hour * 60 + local.minute
    db.add(
        NotifyPreference(
            guardian_pk=g.pk,
            student_pk=world.students[CHILD],
            subscriptions=[["entry", "sms"], ["manual_pass", "sms"]],
            quiet_start_min=(minute - 60) % 1440,
            quiet_end_min=(minute + 60) % 1440,
            updated_at_ms=0,
        )
    )
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD, now - 3000)
    store(db, dev, "S1", "manual_pass", CHILD, now - 2000, authorised_by="t-1", direction="in")
    run(engine, nset, now)
    msgs = {m.kind: m for m in outbox(db)}
    held = msgs["entry"]
    assert msgs["manual_pass"].status == "sent"
    [got] = sms.delivered
    assert "картасыз" in got.message and "Name3AS1" in got.message
    # the entry waits until the quiet hours end, then goes
    assert held.status == "queued" and held.attempts == 0
    end = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=60)
    assert held.due_at_ms == int(end.timestamp() * 1000)
    run(engine, nset, held.due_at_ms - 1)
    assert outbox(db)[0].status == "queued" and len(sms.delivered) == 1
    run(engine, nset, held.due_at_ms)
    assert outbox(db)[0].status == "sent" and len(sms.delivered) == 2


def test_no_notification_without_consent_and_withdrawal_cancels(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    dev = add_device(db, "S1")
    store(db, dev, "S1", "entry", CHILD)  # no consent recorded
    run(engine, nset)
    assert outbox(db) == [] and sms.delivered == []
    consent(db, world.students[CHILD], granted=True)
    store(db, dev, "S1", "entry", CHILD)
    store(db, dev, "S1", "exit", CHILD)
    t = now_ms()
    Planner(engine, nset).run_once(t)
    assert [m.status for m in outbox(db)] == ["queued", "queued"]
    consent(db, world.students[CHILD], granted=False)  # withdrawn before the workers ran
    # a worker checks consent again at sending
    nset1 = nset.model_copy(update={"claim_batch": 1})
    assert DeliveryWorker(engine, nset1).run_once(t) == 1
    first, second = outbox(db)
    assert first.status == "cancelled" and "consent" in first.last_error
    assert second.status == "queued", (second.status, second.last_error)
    # and the planner's sweep cancels what is still queued
    with Session(engine) as s:
        assert cancel_without_consent(s) == 1
        s.commit()
    assert [(m.status, m.last_error) for m in outbox(db)] == [
        ("cancelled", "notifications consent withdrawn")
    ] * 2
    assert sms.delivered == []
    # and new events of the child notify nobody
    store(db, dev, "S1", "entry", CHILD)
    run(engine, nset)
    assert len(outbox(db)) == 2


def test_exactly_once_when_the_planner_reruns_or_is_killed(
    db: Session,
    world: World,
    engine: Engine,
    nset: NotifySettings,
    settings: ServerSettings,
    sms: SmsSink,
) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    for _ in range(5):
        store(db, dev, "S1", "entry", CHILD)
    # a planner process killed before its commit leaves nothing behind
    env = {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_NOTIFY_SMS_URL": sms.url(),
        "QAQPA_NOTIFY_FAULT_KILL_PLANNER_BEFORE_COMMIT": "1",
    }
    p = subprocess.run(
        [sys.executable, "-m", "server.notify"], cwd=ROOT, env=env, timeout=60, capture_output=True
    )
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    assert outbox(db) == []
    planner = Planner(engine, nset)
    assert planner.run_once() == 5
    assert planner.run_once() == 0
    # even with the cursor set back, nothing is planned twice
    db.execute(update(NotifyCursor).values(planned_through=0))
    db.commit()
    assert planner.run_once() == 0
    assert len(outbox(db)) == 5
    w = DeliveryWorker(engine, nset)
    while w.run_once():
        pass
    assert len(sms.requests) == 5 and len({r.key for r in sms.requests}) == 5


def test_two_concurrent_workers_send_each_message_once(
    db: Session, world: World, engine: Engine, sms: SmsSink
) -> None:
    # sms_per_hour: the hourly limit (tested in test_notify_sms_limit.py) would hold most.
    nset = NotifySettings(sms_url=sms.url(), claim_batch=3, sms_per_hour=1000)
    dev = add_device(db, "S1")
    # every student of S1 gets a parent with a phone and consent
    from server.people.models import Student, StudentGuardian

    for st in db.execute(select(Student).where(Student.school_id == "S1")).scalars():
        if st.ref != CHILD:
            g = Guardian(full_name="P", phone=f"+7701{st.pk:07d}")
            db.add(g)
            db.flush()
            db.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
        consent(db, st.pk)
        for _ in range(10):
            store(db, dev, "S1", "entry", st.ref)
    assert Planner(engine, nset).run_once() == 40
    sms.slow(0.01)
    workers = [
        DeliveryWorker(make_engine(str(engine.url.render_as_string(hide_password=False))), nset)
        for _ in range(2)
    ]
    counts = [0, 0]

    def loop(i: int) -> None:
        while n := workers[i].run_once():
            counts[i] += n

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in workers:
        w.engine.dispose()
    assert sum(counts) == 40  # nothing claimed twice
    assert len(sms.requests) == 40 and len({r.key for r in sms.requests}) == 40
    assert all(m.status == "sent" and m.attempts == 1 for m in outbox(db))


def test_crash_between_send_and_mark_does_not_reach_the_parent_twice(
    db: Session, world: World, engine: Engine, settings: ServerSettings, sms: SmsSink
) -> None:
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD)
    env = {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_NOTIFY_SMS_URL": sms.url(),
        "QAQPA_NOTIFY_WORKERS": "1",
        "QAQPA_NOTIFY_FAULT_KILL_AFTER_SEND": "1",
    }
    p = subprocess.run(
        [sys.executable, "-m", "server.notify"], cwd=ROOT, env=env, timeout=60, capture_output=True
    )
    assert p.returncode == -9, p.stderr.decode()[-2000:]
    [m] = outbox(db)
    assert (m.status, m.attempts) == ("sending", 1) and len(sms.requests) == 1
    nset = NotifySettings(sms_url=sms.url(), lease_s=60)
    assert recover_interrupted(engine, nset, now_ms() + 61_000) == 1
    DeliveryWorker(engine, nset).run_once(now_ms() + 61_000)
    [m] = outbox(db)
    assert (m.status, m.attempts) == ("sent", 2)
    # the gateway got the same idempotency key twice and delivered once
    assert len(sms.requests) == 2 and len(sms.delivered) == 1
    assert sms.requests[0].key == sms.requests[1].key == str(m.id)


def test_an_interrupted_email_is_not_repeated(
    db: Session, world: World, engine: Engine, smtp: SmtpSink, sms: SmsSink
) -> None:
    nset = NotifySettings(sms_url=sms.url(), email_url=smtp.url(), lease_s=60)
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    g.email = "p@example.kz"
    db.add(
        NotifyPreference(
            guardian_pk=g.pk,
            student_pk=world.students[CHILD],
            subscriptions=[["entry", "email"]],
            updated_at_ms=0,
        )
    )
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD)
    Planner(engine, nset).run_once()
    DeliveryWorker(engine, nset).claim(now_ms())  # claimed, then the worker "dies"
    assert recover_interrupted(engine, nset, now_ms() + 61_000) == 1
    [m] = outbox(db)
    assert m.status == "failed" and "at-most-once" in m.last_error


def test_low_balance_and_meal(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    db.add(
        NotifyPreference(
            guardian_pk=g.pk,
            student_pk=world.students[CHILD],
            subscriptions=[["meal", "sms"], ["low_balance", "sms"]],
            updated_at_ms=0,
        )
    )
    db.execute(update(User).where(User.pk == world.users["parent1"]).values(lang="en"))
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(
        db,
        dev,
        "S1",
        "meal_served",
        CHILD,
        period="lunch",
        local_date="2026-11-20",
        meal="lunch",
        amount_tiyn=45_000,
        items=["plov"],
        balance_after_tiyn=30_000,
    )
    run(engine, nset)
    [got] = sms.delivered  # one message per event and channel
    assert "balance is low: 300 ₸" in got.message and "meal for 450 ₸" in got.message
    assert outbox(db)[0].kind == "low_balance"


def test_push_goes_to_the_parents_account_topic(
    db: Session, world: World, engine: Engine, sms: SmsSink
) -> None:
    """Push through an apprise URL with {user} (here json:// to the sink; ntfy:// etc. alike)."""
    nset = NotifySettings(push_url=f"json://127.0.0.1:{sms.port}/push/qaqpa-{{user}}")
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    db.add(
        NotifyPreference(
            guardian_pk=g.pk,
            student_pk=world.students[CHILD],
            subscriptions=[["exit", "push"]],
            updated_at_ms=0,
        )
    )
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "exit", CHILD)
    run(engine, nset)
    [got] = sms.delivered
    assert got.path == f"/push/qaqpa-{world.users['parent1']}" and "Name3AS1" in got.message


def test_a_worker_skips_rows_another_worker_has_locked(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    """SKIP LOCKED, deterministically: rows locked by one worker's open claim are not seen by
    another, which takes the next ones instead of waiting."""
    from server.notify.models import OutboxMessage

    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    for _ in range(6):
        store(db, dev, "S1", "entry", CHILD)
    assert Planner(engine, nset).run_once() == 6
    with Session(engine) as holder:
        held = list(
            holder.execute(
                select(OutboxMessage.id)
                .order_by(OutboxMessage.id)
                .limit(3)
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        other = DeliveryWorker(engine, nset.model_copy(update={"claim_batch": 10}))
        got = [c.id for c in other.claim(now_ms())]
        assert len(held) == 3 and len(got) == 3 and not set(held) & set(got)
        holder.rollback()


def test_old_events_and_a_shared_phone(
    db: Session, world: World, engine: Engine, nset: NotifySettings, sms: SmsSink
) -> None:
    """An event older than max_event_age_s (an edge back after days offline) notifies nobody;
    two guardians with one phone get one message."""
    from server.people.models import StudentGuardian

    g2 = Guardian(full_name="Parent Two", phone=PHONE)
    db.add(g2)
    db.flush()
    db.add(StudentGuardian(student_pk=world.students[CHILD], guardian_pk=g2.pk))
    db.commit()
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    store(db, dev, "S1", "entry", CHILD, now_ms() - (nset.max_event_age_s + 60) * 1000)
    store(db, dev, "S1", "exit", CHILD)
    run(engine, nset)
    [m] = outbox(db)
    assert m.kind == "exit"
    assert len(sms.delivered) == 1
