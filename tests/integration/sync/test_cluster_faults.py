"""The broker cluster under fault: a rush of 50 simulated schools (real edge stores and syncs,
MQTT 3.1.1 over TLS to three RabbitMQ nodes), an ingest worker SIGKILLed between its commit and
its acks, SIGKILL one node, then another once the first is back; at the end every journaled
event is stored exactly once with no gap per device. The time
each edge took to reconnect is reported (not asserted: timings belong in benches)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from edge.store import EdgeStore
from edge.sync import EdgeSync
from server.db import make_engine, session_factory
from server.ingest.amqp import AmqpIngestWorker
from server.settings import ServerSettings
from tests.support.broker_cluster import ClusterEnv, cluster_sync_settings
from tests.support.sync import enrolled_device, journal_rush
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

ROOT = Path(__file__).resolve().parents[3]
SCHOOLS = 50
EVENTS_PER_TICK = 5  # per school, every TICK_S: 500 events/s offered by the fleet
TICK_S = 0.5


def worker_env(settings: ServerSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": settings.database_url,
        "QAQPA_SERVER_INGEST_SOURCE": "amqp",
        "QAQPA_SERVER_AMQP_URLS": json.dumps(settings.amqp_urls),
        "QAQPA_SERVER_TOPIC_PREFIX": settings.topic_prefix,
        "QAQPA_SERVER_CENTRE_KEY_FILE": str(settings.centre_key_file),
        "QAQPA_SERVER_AMQP_CA_FILE": str(settings.amqp_ca_file),
        **extra,
    }


async def stop_worker(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        worker.terminate()
        async with asyncio.timeout(10):
            await worker.wait()


async def test_a_rush_survives_two_broker_nodes_killed_in_turn(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    rabbit_cluster: ClusterEnv,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    settings = rabbit_cluster.server_settings(make_settings(pg_url))
    cluster = rabbit_cluster.cluster
    engine = make_engine(pg_url)
    schools = [f"F{k:02d}" for k in range(SCHOOLS)]
    logins = {}
    with session_factory(engine)() as s:
        for school in schools:
            logins[school] = enrolled_device(s, settings, school, "gate")

    stop = asyncio.Event()
    last: dict[str, int] = {}

    async def rush(store: EdgeStore) -> None:
        while not stop.is_set():
            last[store.school] = await journal_rush(store, EVENTS_PER_TICK)
            await asyncio.sleep(TICK_S)

    with rabbit_cluster.serve_auth(settings):
        async with contextlib.AsyncExitStack() as stack:
            # Ingest workers compete for the quorum queue, each on a random node: one in this
            # process, and one in its own that SIGKILLs itself after its 20th commit, before
            # acknowledging anything of that transaction.
            await stack.enter_async_context(AmqpIngestWorker(settings, engine))
            doomed = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.ingest",
                cwd=ROOT,
                env=worker_env(settings, QAQPA_SERVER_FAULT_KILL_AFTER_INSERT="20"),
                stderr=asyncio.subprocess.DEVNULL,
            )
            stack.push_async_callback(stop_worker, doomed)
            syncs: dict[str, EdgeSync] = {}
            stores: list[EdgeStore] = []
            for school in schools:
                key, user, pw = logins[school]
                store = await EdgeStore.open(
                    tmp_path / f"{school}.db", school=school, device="gate"
                )
                stack.push_async_callback(store.close)
                stores.append(store)
                edge = cluster_sync_settings(rabbit_cluster, prefix, user, pw)
                syncs[school] = await stack.enter_async_context(EdgeSync(store, edge, key))
            await wait_until_async(
                lambda: all(s.online for s in syncs.values()), 60, "every school online"
            )
            async with asyncio.TaskGroup() as tg:
                for store in stores:
                    tg.create_task(rush(store))
                killed = []
                for node in (0, 1):
                    await asyncio.sleep(3)
                    on_node = sum(
                        1 for s in syncs.values() if s.broker[1] == cluster.mqtt_port(node)
                    )
                    cluster.kill(node)
                    killed.append((cluster.node(node), on_node))
                    await asyncio.sleep(2)  # the rush goes on with two nodes
                    await asyncio.to_thread(cluster.restart, node)
                    await asyncio.to_thread(cluster.await_cluster, 90)
                await asyncio.sleep(2)
                stop.set()

            async def all_acked() -> bool:
                for school, sync in syncs.items():
                    st = await sync.status()
                    if st.committed_through < last[school] or st.last_seq != last[school]:
                        return False
                return True

            await wait_until_async(all_acked, 90, "every journaled event acknowledged")

    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT d.school_id, count(*), count(DISTINCT e.seq), min(e.seq), max(e.seq) "
                "FROM events e JOIN devices d ON d.pk = e.device_pk GROUP BY d.school_id"
            )
        ).all()
        progress = dict(
            c.execute(
                text(
                    "SELECT d.school_id, p.gaps FROM ingest_progress p "
                    "JOIN devices d ON d.pk = p.device_pk"
                )
            ).all()
        )
    engine.dispose()
    assert doomed.returncode == -signal.SIGKILL  # the worker did die mid-rush
    stored = {r[0]: tuple(r[1:]) for r in rows}
    assert sorted(stored) == sorted(schools)
    for school in schools:
        n = last[school]
        # every journaled event once (count == distinct), none missing (1..n)
        assert stored[school] == (n, n, 1, n), school
        assert progress[school] in ([], None, "[]"), school

    reconnects = [t for s in syncs.values() for _node, t in s.reconnections]
    report = {
        "schools": SCHOOLS,
        "events": sum(last.values()),
        "killed": killed,
        "edges_reconnected": sum(1 for s in syncs.values() if s.reconnections),
        "reconnect_s_median": round(statistics.median(reconnects), 2) if reconnects else None,
        "reconnect_s_max": round(max(reconnects), 2) if reconnects else None,
        "reconnect_s_each": sorted(round(t, 2) for t in reconnects),
    }
    record_property("cluster_faults", json.dumps(report))
    print("cluster fault test:", json.dumps(report))
    # the edges of a killed node did reconnect (to another node) and delivered everything
    assert report["edges_reconnected"] >= 1
