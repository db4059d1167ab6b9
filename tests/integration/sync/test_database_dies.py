"""The centre's database dies: a PostgreSQL cluster of the test's own (tests/support/pg_cluster.py)
is stopped with ``pg_ctl stop -m immediate`` under a running ingest worker (a process of its own,
never restarted by the test), three edges streaming through the real Mosquitto and a console, then
started again. Counted afterwards: every journaled event stored exactly once per device, no gap,
no signed ack for anything the database had not committed; the console said 503 (translated, with
Retry-After) while the database was away, never 500. Also: ingest started while the database is
down, and the notification delivery loop across the outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge.store import EdgeStore
from edge.sync import EdgeSync
from protocol import topics
from protocol.codec import decode
from protocol.messages import EventAck
from server.db import make_engine, session_factory
from server.models import Device, StoredEvent
from server.notify.models import OutboxMessage
from server.notify.service import NotifyService
from server.notify.settings import NotifySettings
from server.settings import ServerSettings
from simulators.notify_sinks import SmsSink
from tests.support.console import Browser, World, add_student, password_of
from tests.support.notify import CHILD, add_device, consent, store
from tests.support.pg_cluster import PgCluster, own_cluster
from tests.support.services import SYSTEM_BROKER, listens
from tests.support.sync import Probe, enrolled_device, journal_rush, server_seqs, sync_settings
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.exclusive]  # port 25433

ROOT = Path(__file__).resolve().parents[3]
DEVICES = ("d1", "d2", "d3")
MESSAGE = {
    "kk": "Орталықтың дерекқорына қазір қосылу мүмкін емес.",
    "ru": "База данных центра сейчас недоступна.",
    "en": "The centre&#39;s database cannot be reached just now.",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    with own_cluster() as c:
        yield c


@pytest.fixture
def pg_console_url(cluster: PgCluster) -> str:
    """The console's fixtures (settings, world, app, browsers) on the cluster a test may kill."""
    if not listens(cluster.port):  # a test that failed during its outage
        cluster.start()
    return cluster.create_database()


@pytest.fixture
def world(db: Session) -> World:
    """Smaller than the console's world (its seventeen password hashes take long here): school
    S1 with a class, the child of a guardian with a phone, and an operator."""
    from server.accounts.access import Grant, Role
    from server.accounts.service import create_user
    from server.people.models import Guardian, SchoolClass, StudentGuardian
    from server.people.service import add_school

    add_school(db, "S1", "School No. 1", region="R1", region_name="Region One")
    c = SchoolClass(school_id="S1", name="3A", grade=3, shift=1)
    db.add(c)
    db.flush()
    child = add_student(db, "S1", c.pk, CHILD, "Surname1", "Name3AS1")
    g = Guardian(full_name="Parent One", phone="+77010000001")
    db.add(g)
    db.flush()
    db.add(StudentGuardian(student_pk=child.pk, guardian_pk=g.pk))
    u = create_user(
        db, "operator", "User operator", [Grant(Role.OPERATOR)], password=password_of("operator")
    )
    u.must_change_password = False
    db.commit()
    return World(["S1"], {"S1/3A": c.pk}, {CHILD: child.pk}, {"operator": u.pk})


def ms() -> int:
    return time.time_ns() // 1_000_000


class AckRecorder(Probe):
    """The signed acks the edges receive, with the moment each arrived."""

    def __init__(self, port: int) -> None:
        self.timed: list[tuple[int, str, EventAck]] = []
        super().__init__(port)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/device/")[1].split("/")[0]
        with self.lock:
            self.timed.append((ms(), device, decode(bytes(msg.payload), EventAck)))


def worker_env(settings: ServerSettings) -> dict[str, str]:
    return {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_MQTT_PORT": str(SYSTEM_BROKER[1]),
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
    }


@contextlib.asynccontextmanager
async def ingest_process(settings: ServerSettings, log: Path) -> AsyncIterator[Any]:
    """``python -m server.ingest`` (what ``qaqpa server ingest`` runs), its log in ``log``."""
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.ingest", cwd=ROOT, env=worker_env(settings), stderr=err
        )
    try:
        await wait_until_async(lambda: b"subscribed" in log.read_bytes(), 20, "ingest subscribed")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(20):
                await proc.wait()


async def drained(syncs: list[EdgeSync], within: float) -> bool:
    async def empty() -> bool:
        return all([(await s.status()).backlog == 0 for s in syncs])

    return await wait_until_async(empty, within, "every edge's outbox drained")


def assert_console_says_unreachable(browser: Browser, anonymous: Browser) -> None:
    """Pages that need the database, signed in and not, in the three languages: 503, never 500."""
    checks = [
        (browser, "GET", "/", "kk"),  # home: the principal, the schools' day
        (browser, "GET", "/students", "kk"),
        (anonymous, "GET", "/login", "kk"),  # the sign-in page says so before a password
        (anonymous, "POST", "/login", "kk"),
        (anonymous, "GET", "/login", "ru"),
        (anonymous, "GET", "/login", "en"),
    ]
    for who, method, url, lang in checks:
        who.client.cookies.set("qaqpa_lang", lang)
        if method == "GET":
            r = who.get(url)
        else:
            r = who.post(url, {"login": "operator", "password": "whatever-it-is"})
        assert r.status_code == 503, (method, url, r.status_code, r.text[:300])
        assert MESSAGE[lang] in r.text, (method, url, lang, r.text[:500])
        assert r.headers["retry-after"] == "30"
    anonymous.client.cookies.set("qaqpa_lang", "kk")
    browser.client.cookies.set("qaqpa_lang", "kk")
    r = anonymous.client.get("/healthz")
    assert (r.status_code, r.json()) == (
        503,
        {"ready": False, "parts": {"database": "unreachable"}},
    )
    assert r.headers["retry-after"] == "30"
    r = anonymous.client.post(
        "/api/v1/enrol", json={"token": "x" * 12, "device": "d9", "public_key": "A" * 43 + "="}
    )
    assert (r.status_code, r.json()) == (503, {"detail": "database unreachable"})


async def test_database_killed_during_ingest(
    cluster: PgCluster,
    settings: ServerSettings,
    world: World,
    make_browser: Any,
    tmp_path: Path,
) -> None:
    engine = make_engine(settings.database_url)
    keys = {}
    with session_factory(engine)() as s:
        for d in DEVICES:
            keys[d], _, _ = enrolled_device(s, settings, "S1", d)
    browser = make_browser("operator")
    anonymous = make_browser()
    assert browser.get("/students").status_code == 200
    assert anonymous.get("/login").status_code == 200  # the form open before the outage
    assert anonymous.client.get("/healthz").json() == {
        "ready": True,
        "parts": {"database": "ok"},
    }
    acks = AckRecorder(SYSTEM_BROKER[1])
    for d in DEVICES:
        acks.subscribe(topics.ack("S1", d, settings.topic_prefix))
    stores = [await EdgeStore.open(tmp_path / f"{d}.db", school="S1", device=d) for d in DEVICES]
    log = tmp_path / "ingest.log"
    streaming = True

    async def stream() -> None:  # a steady morning: 20 taps per gate every 50 ms
        while streaming:
            for st in stores:
                await journal_rush(st, 20)
            await asyncio.sleep(0.05)

    async with ingest_process(settings, log) as worker, contextlib.AsyncExitStack() as stack:
        syncs = [
            await stack.enter_async_context(
                EdgeSync(st, sync_settings(settings.topic_prefix, SYSTEM_BROKER[1]), keys[d])
            )
            for st, d in zip(stores, DEVICES, strict=True)
        ]
        rush = asyncio.create_task(stream())

        async def acked_everywhere() -> bool:
            return all([(await s.status()).committed_through > 100 for s in syncs])

        await wait_until_async(acked_everywhere, 30, "every edge has acks")
        t_kill = ms()
        await asyncio.to_thread(cluster.stop_immediate)
        t_down = ms()
        await asyncio.to_thread(assert_console_says_unreachable, browser, anonymous)
        # ingest finds it gone and holds on (a few tries with growing pauses)
        await wait_until_async(
            lambda: b"database is unreachable" in log.read_bytes(), 20, "ingest saw the outage"
        )
        await asyncio.sleep(3)
        assert worker.returncode is None  # no crash-loop, no exit
        backlog_while_down = [(await s.status()).backlog for s in syncs]
        t_up = ms()
        await asyncio.to_thread(cluster.start)
        await asyncio.sleep(1.5)  # taps go on after the database is back
        streaming = False
        await rush
        assert await drained(syncs, 60)
        assert worker.returncode is None  # the same process: nobody restarted it
        lasts = [st.last_seq for st in stores]
    for st in stores:
        await st.close()
    acks.close()
    text = log.read_text()
    assert "the database answers again" in text
    print(
        f"\nevents journaled per edge: {lasts}; outbox backlog while the database was down: "
        f"{backlog_while_down}; outage {(t_up - t_down) / 1000:.1f} s"
    )
    assert all(b > 0 for b in backlog_while_down)  # the events waited at the schools
    for d, last in zip(DEVICES, lasts, strict=True):
        assert server_seqs(engine, "S1", d) == list(range(1, last + 1))  # once each, no gap
    # No signed ack that arrived while the database was down acknowledged an event that had
    # not been committed before it died (those stored later carry a later received_at_ms).
    with engine.connect() as c:
        before = dict(
            c.execute(
                select(Device.device_id, func.max(StoredEvent.seq))
                .join(Device, Device.pk == StoredEvent.device_pk)
                .where(StoredEvent.received_at_ms <= t_down)
                .group_by(Device.device_id)
            ).all()
        )
        after_restart = c.execute(
            select(func.count()).where(StoredEvent.received_at_ms >= t_up)
        ).scalar_one()
    during = [(d, a.committed_through) for at, d, a in acks.timed if t_kill <= at <= t_up]
    assert all(through <= before.get(d, 0) for d, through in during), (during, before)
    assert after_restart > 0  # ingest resumed by itself and stored what had waited
    # the console is back too
    assert browser.get("/students").status_code == 200
    assert anonymous.client.get("/healthz").status_code == 200
    engine.dispose()


async def test_ingest_started_while_the_database_is_down(
    cluster: PgCluster, settings: ServerSettings, tmp_path: Path
) -> None:
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    engine.dispose()
    store_ = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    await journal_rush(store_, 500)
    await asyncio.to_thread(cluster.stop_immediate)
    log = tmp_path / "ingest.log"
    try:
        async with (
            ingest_process(settings, log) as worker,
            EdgeSync(store_, sync_settings(settings.topic_prefix, SYSTEM_BROKER[1]), key) as sync,
        ):
            await wait_until_async(
                lambda: b"database is unreachable" in log.read_bytes(), 20, "ingest waits"
            )
            await journal_rush(store_, 300)
            await asyncio.sleep(2)
            assert worker.returncode is None  # it waits instead of exiting
            assert (await sync.status()).committed_through == 0  # nothing acked, nothing stored
            await asyncio.to_thread(cluster.start)
            assert await drained([sync], 60)
            assert worker.returncode is None
            last = store_.last_seq
    finally:
        if not listens(cluster.port):
            cluster.start()
    await store_.close()
    assert last == 800
    assert "the database answers again" in log.read_text()
    engine = make_engine(settings.database_url)
    assert server_seqs(engine, "S1", "d1") == list(range(1, 801))
    engine.dispose()


def test_notification_delivery_survives_the_database_dying(
    cluster: PgCluster,
    db: Session,
    world: World,
    nset: NotifySettings,
    sms: SmsSink,
    settings: ServerSettings,
) -> None:
    """A message sent while the database dies is recorded as sent when it returns (not left
    "sending", to be sent again or marked failed after the lease); the loops live on and deliver
    what comes after."""
    dev = add_device(db, "S1")
    consent(db, world.students[CHILD])
    service = NotifyService(settings.database_url, nset.model_copy(update={"sms_per_hour": 100}))
    service.start()
    try:

        def statuses() -> list[str]:
            with Session(service.engine) as s:
                q = select(OutboxMessage.status).order_by(OutboxMessage.id)
                return list(s.execute(q).scalars())

        def all_sent() -> list[Any]:
            with Session(service.engine) as s:
                rows = s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()
            return list(rows) if all(r.status == "sent" for r in rows) else []

        store(db, dev, "S1", "entry", CHILD)
        wait_until(lambda: statuses() == ["sent"], 20, "the first message sent and recorded")
        sms.slow(2.0)  # the gateway takes its time with the next one
        store(db, dev, "S1", "exit", CHILD)
        db.close()
        wait_until(lambda: statuses() == ["sent", "sending"], 20, "the second one being sent")
        # The worker reads consent and the address after the claim, so the database dies only
        # once the gateway holds the request (killed before, the row would wait for its lease).
        wait_until(lambda: sms.arrived == 2, 20, "the gateway holds the second message")
        cluster.stop_immediate()  # while the gateway holds the request
        wait_until(lambda: len(sms.requests) == 2, 10, "the gateway answered the second message")
        time.sleep(2)  # the worker cannot record it; the planner cannot plan
        alive = [t.name for t in service._threads if t.is_alive()]
        assert len(alive) == 1 + nset.workers
        cluster.start()
        sms.slow(0)
        with Session(service.engine) as s2:
            store(s2, dev, "S1", "entry", CHILD, ms() - 500)
        assert len(sms.wait_for(3, 30)) == 3
        rows = wait_until(all_sent, 20, "every message recorded as sent")
    finally:
        service.stop()
    assert [(r.status, r.attempts) for r in rows] == [("sent", 1)] * 3
    assert len(sms.requests) == 3  # none sent again
    assert [t for t in threading.enumerate() if t.name.startswith("notify-")] == []


def test_downlink_started_while_the_database_is_down_waits_for_it(
    cluster: PgCluster, settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    from server.sync.service import DownlinkService

    cluster.stop_immediate()
    service = DownlinkService(settings)
    started = threading.Thread(target=service.start, name="test-downlink-start")
    try:
        with caplog.at_level(logging.WARNING, "server.sync.service"):
            started.start()
            wait_until(lambda: "database is unreachable" in caplog.text, 20, "the downlink waits")
            assert started.is_alive()  # waiting, not exited with a traceback
            cluster.start()
            started.join(30)
            assert not started.is_alive()
            assert "the database answers again" in caplog.text
    finally:
        if not listens(cluster.port):
            cluster.start()
        started.join(30)
        service.stop()
