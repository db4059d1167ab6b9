"""The demo's in-process server: amqtt + SQLite, with a real edge store and EdgeSync."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from protocol.messages import CardBlock
from server.db import make_engine
from server.embedded import EmbeddedServer
from server.models import StoredEvent
from tests.support.sync import bind, journal_rush, student
from tests.support.wait import wait_until_async


async def test_embedded_server_round_trip(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path / "server") as server:
        key, conn = server.add_device("S1", "d1")
        store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
        last = await journal_rush(store, 3000)
        async with EdgeSync(store, SyncSettings(**conn, ack_timeout_s=2.0), key) as sync:
            v = await asyncio.to_thread(
                server.downlink.publish_changes,
                "S1",
                [
                    student("st1"),
                    bind("EM:0001", "st1"),
                    CardBlock(credential="EM:0001", reason="x"),
                ],
            )

            async def synced() -> bool:
                st = await sync.status()
                return st.backlog == 0 and sync.applied_version >= v

            await wait_until_async(synced, 10, "events acked and the changes applied")
            st = await sync.status()
            assert st.backlog == 0 and st.committed_through >= last
            assert store.state.cards["EM:0001"].blocked_reason == "x"
        await store.close()
        engine = make_engine(server.settings.database_url)
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == last
        engine.dispose()
