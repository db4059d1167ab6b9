"""The signed downlink through the RabbitMQ cluster (MQTT 3.1.1 over TLS): deltas verified
against the pinned centre key reach every edge, also after the node the downlink service was
on is SIGKILLed (the service and the edges move to other nodes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.store import EdgeStore
from edge.sync import EdgeSync
from server.db import make_engine, session_factory
from server.settings import ServerSettings
from server.sync import DownlinkService
from tests.support.broker_cluster import ClusterEnv, cluster_sync_settings
from tests.support.sync import bind, enrolled_device, student
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


async def test_signed_deltas_reach_edges_on_every_node(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    rabbit_cluster: ClusterEnv,
    tmp_path: Path,
) -> None:
    urls = rabbit_cluster.mqtt_urls()
    settings = rabbit_cluster.server_settings(make_settings(pg_url)).model_copy(
        update={"mqtt_brokers": urls}
    )
    cluster = rabbit_cluster.cluster
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        logins = {d: enrolled_device(s, settings, "S1", d) for d in ("a", "b", "c")}
    with rabbit_cluster.serve_auth(settings), DownlinkService(settings, engine) as downlink:
        stores, syncs = [], []
        try:
            for device, (key, user, pw) in logins.items():
                store = await EdgeStore.open(tmp_path / f"{device}.db", school="S1", device=device)
                stores.append(store)
                edge = cluster_sync_settings(rabbit_cluster, prefix, user, pw)
                sync = EdgeSync(store, edge, key)
                syncs.append(await sync.__aenter__())
            await wait_until_async(lambda: all(y.online for y in syncs), 20, "edges online")
            v = await asyncio.to_thread(
                downlink.publish_changes, "S1", [student("st1"), bind("EM:0001", "st1")]
            )
            await wait_until_async(
                lambda: all(y.applied_version >= v for y in syncs), 20, "every edge applies it"
            )
            for store in stores:
                assert store.state.cards["EM:0001"].owner_id == "st1"
            # the node the downlink service is on dies: it goes on from the next node
            node = [cluster.mqtt_port(i) for i in range(3)].index(downlink._client.port)
            cluster.kill(node)
            try:
                v2 = await asyncio.to_thread(
                    downlink.publish_changes, "S1", [bind("EM:0002", "st1")]
                )
                await wait_until_async(
                    lambda: all(y.applied_version >= v2 for y in syncs),
                    60,
                    "every edge applies the change published after the node died",
                )
            finally:
                await asyncio.to_thread(cluster.restart, node)
                await asyncio.to_thread(cluster.await_cluster, 90)
            for store, sync in zip(stores, syncs, strict=True):
                assert store.state.cards["EM:0002"].owner_id == "st1"
                assert sync.refused == {}  # every message was signed for this very device
        finally:
            for sync in syncs:
                await sync.__aexit__(None, None, None)
            for store in stores:
                await store.close()
    engine.dispose()
