"""Fault tests: kill, drop, overflow, crash the worker, stay offline; then count what survived.

Every test ends by comparing the server's events with the edge journal: each committed seq
1..last exactly once (the (device, seq) primary key forbids a second copy; the count proves none
is missing)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from edge.store import EdgeStore
from edge.sync import EdgeSync
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.models import StoredEvent
from server.settings import ServerSettings
from tests.support.services import SYSTEM_BROKER, PrivateBroker
from tests.support.sync import (
    enrolled_device,
    journal_rush,
    server_seqs,
    sync_settings,
    write_key_dir,
)
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


async def drain(sync: EdgeSync, within: float) -> bool:
    async def empty() -> bool:
        return (await sync.status()).backlog == 0

    return await wait_until_async(empty, within, "the edge's outbox drained")


async def last_seq(db: Path, school: str, device: str) -> int:
    store = await EdgeStore.open(db, school=school, device=device, create=False)
    try:
        return store.last_seq
    finally:
        await store.close()


def assert_exactly_once(engine: object, school: str, device: str, last: int) -> None:
    seqs = server_seqs(engine, school, device)
    assert len(seqs) == last, f"{len(seqs)} stored of {last}"
    assert seqs == list(range(1, last + 1))


async def test_edge_killed_repeatedly_during_rush(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    write_key_dir(tmp_path / "keys", key, "S1", "d1", SYSTEM_BROKER[1], prefix)
    db = tmp_path / "edge.db"
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.sync.edge_proc",
        str(db),
        str(tmp_path / "keys"),
    ]
    cmd += ["--school", "S1", "--device", "d1"]
    rng = random.Random(4)
    kills = 0
    reported = 0  # the highest seq a killed process said it had committed
    async with IngestWorker(settings, engine):
        for _ in range(8):
            proc = await asyncio.create_subprocess_exec(
                *cmd, "--rush", "100000", cwd=ROOT, stdout=asyncio.subprocess.PIPE
            )
            assert proc.stdout is not None
            async with asyncio.timeout(60):  # killed mid-rush: after its first commit
                first = await proc.stdout.readline()
            assert first.startswith(b"journaled "), first
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                out, _ = await proc.communicate()
            lines = [first, *out.splitlines()]
            seqs = [int(x.split()[1]) for x in lines if re.fullmatch(rb"journaled \d+", x.strip())]
            reported = max([reported, *seqs])
            kills += 1
        proc = await asyncio.create_subprocess_exec(
            *cmd, "--drain", cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(120):
            out, _ = await proc.communicate()
        assert proc.returncode == 0, out
    last = await last_seq(db, "S1", "d1")
    print(f"\nedge killed {kills} times; {last} events journaled")
    assert last >= reported  # nothing a process reported as committed was lost by its kill
    assert_exactly_once(engine, "S1", "d1", last)
    engine.dispose()


async def test_broker_stopped_during_rush(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    private_broker: Callable[[str], PrivateBroker],
    tmp_path: Path,
) -> None:
    broker = private_broker("")
    settings = make_settings(pg_url, mqtt_port=broker.port)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    async with (
        IngestWorker(settings, engine),
        EdgeSync(store, sync_settings(prefix, broker.port), key) as sync,
    ):
        for i in range(60):
            await journal_rush(store, 100)
            await asyncio.sleep(0.02)
            if i == 15:
                broker.stop()
            if i == 40:
                broker.start()
        assert await drain(sync, 60)
        last = store.last_seq
    await store.close()
    assert_exactly_once(engine, "S1", "d1", last)
    engine.dispose()


def worker_env(settings: ServerSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_MQTT_PORT": str(settings.mqtt_port),
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
        **extra,
    }


async def start_worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.ingest", cwd=ROOT, env=env, stderr=asyncio.subprocess.DEVNULL
    )


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.terminate()
        async with asyncio.timeout(10):
            await worker.wait()


async def test_broker_dropping_messages_at_queue_limit(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    private_broker: Callable[[str], PrivateBroker],
    tmp_path: Path,
) -> None:
    broker = private_broker("max_queued_messages 10\nmax_inflight_messages 1\n")
    settings = make_settings(pg_url, mqtt_port=broker.port)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    edge_settings = sync_settings(prefix, broker.port).model_copy(
        update={"batch_events": 100, "window_events": 5000}
    )
    await journal_rush(store, 20_000)
    # A worker that takes one message at a time and, stopped, stops reading: the broker queues
    # 10 messages for it and drops the rest.
    worker = await start_worker(worker_env(settings, QAQPA_SERVER_MQTT_RECEIVE_MAXIMUM="1"))
    await asyncio.sleep(1.5)
    try:
        async with EdgeSync(store, edge_settings, key) as sync:
            for _ in range(3):
                worker.send_signal(signal.SIGSTOP)
                await journal_rush(store, 500)
                await asyncio.sleep(1.5)
                worker.send_signal(signal.SIGCONT)
                await asyncio.sleep(1.0)
            assert await drain(sync, 120)
            last = store.last_seq
            rewinds = sync.rewinds
    finally:
        worker.send_signal(signal.SIGCONT)
        await stop_worker(worker)
    await store.close()
    dropped = "Outgoing messages are being dropped" in broker.log_path.read_text()
    print(f"\nbroker dropped messages: {dropped}; edge re-sent from its last ack {rewinds} times")
    assert dropped and rewinds > 0
    assert_exactly_once(engine, "S1", "d1", last)
    engine.dispose()


async def test_ingest_worker_killed_between_insert_and_ack(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    crashes = 0
    async with EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key) as sync:
        await journal_rush(store, 3000)
        for n in (1, 2, 3, 1, 5):
            worker = await start_worker(
                worker_env(settings, QAQPA_SERVER_FAULT_KILL_AFTER_INSERT=str(n))
            )
            async with asyncio.timeout(60):
                while worker.returncode is None:  # keep the rush going until it dies
                    await journal_rush(store, 200)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await worker.wait()
            assert worker.returncode == -signal.SIGKILL
            crashes += 1
        with engine.connect() as c:
            stored = c.execute(select(func.count()).select_from(StoredEvent)).scalar() or 0
        assert stored > (await sync.status()).committed_through  # stored, never acknowledged
        worker = await start_worker(worker_env(settings))
        try:
            assert await drain(sync, 60)
        finally:
            await stop_worker(worker)
        last = store.last_seq
    await store.close()
    print(f"\ningest worker killed {crashes} times after commit; {stored} rows were stored")
    assert_exactly_once(engine, "S1", "d1", last)
    engine.dispose()


async def test_week_offline_with_100k_events_then_reconnect(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(
        tmp_path / "edge.db", school="S1", device="d1", outbox_capacity=100_000
    )
    week_ago = time.time_ns() // 1_000_000 - 7 * 24 * 3600 * 1000
    # 100,000 events over 7 simulated days (one every ~6 s), journaled with no network.
    await journal_rush(store, 100_000, chunk=5000, at_ms=week_ago)
    st = await store.outbox_stats()
    assert st.backlog == st.last_seq and st.high_water_alarm
    t0 = time.perf_counter()
    async with (
        IngestWorker(settings, engine),
        EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key) as sync,
    ):
        assert await drain(sync, 180)
        elapsed = time.perf_counter() - t0
        last = store.last_seq
    await store.close()
    print(f"\n{last} events drained in {elapsed:.1f} s")
    assert_exactly_once(engine, "S1", "d1", last)
    from server.models import Device

    with engine.connect() as c:
        rows = c.execute(
            select(StoredEvent.seq, StoredEvent.payload, StoredEvent.received_at_ms)
            .join(Device, Device.pk == StoredEvent.device_pk)
            .where(StoredEvent.kind == "alarm")
            .order_by(StoredEvent.seq)
        ).all()
    raised = [r for r in rows if r.payload["code"] == "outbox_high_water" and r.payload["active"]]
    assert raised and 80_000 <= raised[0].seq <= 80_002
    assert any(not r.payload["active"] for r in rows)  # cleared once the server had them
    engine.dispose()
