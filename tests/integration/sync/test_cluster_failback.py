"""Edges that failed over go back, spread, to a node that returned (README, the broker cluster):
each edge prefers one node (a stable hash of its identity over the list). A rolling restart of
the three nodes, each SIGKILLed in turn while the rush goes on: its edges move to the others;
restarted, every edge that prefers it is back on it after a probe (``failback_s``), so at the
end the fleet is spread as at the start, not piled on the node restarted last. Every journaled
event is stored exactly once. The time from a node's restart to each edge's return is reported
(not asserted beyond the wait's bound: timings belong in benches)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
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

SCHOOLS = 18
EVENTS_PER_TICK = 5
TICK_S = 0.5
FAILBACK_S = 2.0  # the probe interval (60 s by default); 1.5-2.5 s here


async def test_edges_return_to_their_preferred_node_when_it_comes_back(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    rabbit_cluster: ClusterEnv,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    settings = rabbit_cluster.server_settings(make_settings(pg_url))
    cluster = rabbit_cluster.cluster
    ports = [cluster.mqtt_port(i) for i in range(3)]
    engine = make_engine(pg_url)
    schools = [f"B{k:02d}" for k in range(SCHOOLS)]
    with session_factory(engine)() as s:
        logins = {school: enrolled_device(s, settings, school, "gate") for school in schools}

    stop = asyncio.Event()
    last: dict[str, int] = {}

    async def rush(store: EdgeStore) -> None:
        while not stop.is_set():
            last[store.school] = await journal_rush(store, EVENTS_PER_TICK)
            await asyncio.sleep(TICK_S)

    with rabbit_cluster.serve_auth(settings):
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(AmqpIngestWorker(settings, engine))
            syncs: dict[str, EdgeSync] = {}
            stores: list[EdgeStore] = []
            for school in schools:
                key, user, pw = logins[school]
                store = await EdgeStore.open(
                    tmp_path / f"{school}.db", school=school, device="gate"
                )
                stack.push_async_callback(store.close)
                stores.append(store)
                edge = cluster_sync_settings(
                    rabbit_cluster, prefix, user, pw, failback_s=FAILBACK_S
                )
                syncs[school] = await stack.enter_async_context(EdgeSync(store, edge, key))

            def home(s: EdgeSync) -> bool:
                return s.online and s.broker == s.preferred_broker

            await wait_until_async(
                lambda: all(home(s) for s in syncs.values()), 60, "every edge on its own node"
            )
            prefer = [
                sum(1 for s in syncs.values() if s.preferred_broker[1] == ports[i])
                for i in range(3)
            ]
            assert sum(1 for n in prefer if n) >= 2, prefer  # the fleet is spread
            returns: dict[str, list[float]] = {}

            async def kill_and_restart(node: int) -> None:
                """SIGKILL ``node``: its edges move; restart it: the edges preferring it return
                (the time from its listeners answering to each return is kept)."""
                cluster.kill(node)
                await wait_until_async(
                    lambda: all(s.online and s.broker[1] != ports[node] for s in syncs.values()),
                    60,
                    f"every edge of the killed node {node + 1} on another node",
                )
                await asyncio.sleep(2)  # the rush goes on with two nodes
                await asyncio.to_thread(cluster.restart, node)
                back_at = time.monotonic()
                returning = [s for s in syncs.values() if s.preferred_broker[1] == ports[node]]
                returned: dict[int, float] = {}

                def all_back() -> bool:
                    for k, s in enumerate(returning):
                        if k not in returned and s.online and s.broker[1] == ports[node]:
                            returned[k] = time.monotonic() - back_at
                    return len(returned) == len(returning)

                await wait_until_async(
                    all_back, 10 * FAILBACK_S + 60, f"the edges of node {node + 1} back on it"
                )
                returns[cluster.node(node)] = sorted(returned.values())
                # the next node is killed only once this one is in the cluster again (a quorum
                # queue needs two of three)
                await asyncio.to_thread(cluster.await_cluster, 90)

            async with asyncio.TaskGroup() as tg:
                for store in stores:
                    tg.create_task(rush(store))
                await asyncio.sleep(2)
                for node in range(3):  # a rolling restart of the whole cluster
                    await kill_and_restart(node)
                await wait_until_async(
                    lambda: all(home(s) for s in syncs.values()), 60, "every edge on its own node"
                )
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
    engine.dispose()
    stored = {r[0]: tuple(r[1:]) for r in rows}
    assert sorted(stored) == sorted(schools)
    for school in schools:
        n = last[school]
        assert stored[school] == (n, n, 1, n), school  # every journaled event once, no gap

    times = [t for ts in returns.values() for t in ts]
    report = {
        "schools": SCHOOLS,
        "preferring_each_node": prefer,
        "failback_s": FAILBACK_S,
        "failbacks": sum(s.failbacks for s in syncs.values()),
        "return_s_median": round(statistics.median(times), 2),
        "return_s_max": round(max(times), 2),
        "return_s_each": {node: [round(t, 2) for t in ts] for node, ts in returns.items()},
        "events": sum(last.values()),
    }
    record_property("cluster_failback", json.dumps(report))
    print("cluster failback test:", json.dumps(report))
    # after the rolling restart the fleet is spread as before, not piled on the last node
    assert all(s.broker == s.preferred_broker for s in syncs.values())
    assert all(s.failbacks >= 1 for s in syncs.values())  # each came back once at least
