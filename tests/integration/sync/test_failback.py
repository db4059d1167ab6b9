"""Failback without the RabbitMQ cluster: two Mosquittos stand for two nodes (each with its own
ingest worker, as each node of a cluster reaches ingest). The edge's preferred node is down at
start, so it works on the other; once the preferred one runs, the edge moves back within a few
probes while its rush goes on, and every event is stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from edge.brokers import preferred_index
from edge.store import EdgeStore
from edge.sync import EdgeSync
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.settings import ServerSettings
from tests.support.services import PrivateBroker
from tests.support.sync import enrolled_device, journal_rush, server_seqs, sync_settings
from tests.support.wait import wait_until_async


async def test_an_edge_moves_back_to_its_preferred_node_once_it_runs(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    private_broker: Callable[[str], PrivateBroker],
    tmp_path: Path,
) -> None:
    home, other = private_broker(""), private_broker("")
    home.stop()  # the preferred node is down when the edge starts
    # a device whose preferred node is the first of the list
    device = next(d for d in (f"d{k}" for k in range(100)) if preferred_index(f"S1/{d}", 2) == 0)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, make_settings(pg_url), "S1", device)
    edge = sync_settings(prefix, other.port).model_copy(
        update={
            "mqtt_brokers": [f"mqtt://127.0.0.1:{home.port}", f"mqtt://127.0.0.1:{other.port}"],
            "failback_s": 0.5,
        }
    )
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device=device)
    stop = asyncio.Event()

    async def rush() -> None:
        while not stop.is_set():
            await journal_rush(store, 20)
            await asyncio.sleep(0.05)

    async def drained() -> bool:
        st = await sync.status()
        return st.backlog == 0 and st.committed_through == store.last_seq

    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(IngestWorker(make_settings(pg_url, mqtt_port=other.port), engine))
        sync = await stack.enter_async_context(EdgeSync(store, edge, key))
        assert sync.preferred_broker == ("127.0.0.1", home.port)
        task = asyncio.create_task(rush())
        await wait_until_async(
            lambda: sync.online and sync.broker[1] == other.port, 30, "the edge on the other node"
        )
        await asyncio.sleep(1)
        assert sync.failbacks == 0  # its node does not answer: it stays where it works
        home.start()
        stack.enter_context(IngestWorker(make_settings(pg_url, mqtt_port=home.port), engine))
        await wait_until_async(
            lambda: sync.online and sync.broker[1] == home.port, 30, "the edge back on its node"
        )
        await asyncio.sleep(1)  # the rush goes on there
        stop.set()
        await task
        await wait_until_async(drained, 60, "every event acknowledged")
        assert sync.failbacks == 1
        last = store.last_seq
    await store.close()
    seqs = server_seqs(engine, "S1", device)
    assert seqs == list(range(1, last + 1))  # every event once, none lost
    engine.dispose()
