"""A large drain does its CPU work (decoding the stored rows, signing the batch) off the event loop
that serves the taps, and still delivers every event once, in order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.store import EdgeStore
from edge.sync import EdgeSync
from protocol.messages import Event
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.settings import ServerSettings
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import enrolled_device, journal_rush, server_seqs, sync_settings
from tests.support.wait import wait_until_async


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_a_large_drain_decodes_and_signs_off_the_loop(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    last = await journal_rush(store, 5000)  # a backlog built while offline
    loop_thread = threading.get_ident()
    decoded_in: list[int] = []
    decode = store.decode_events

    def watched(blobs: list[bytes]) -> list[Event]:
        decoded_in.append(threading.get_ident())
        return decode(blobs)

    store.decode_events = watched  # type: ignore[method-assign]
    async with (
        IngestWorker(settings, engine),
        EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key) as sync,
    ):

        async def all_acked() -> bool:
            st = await sync.status()
            return st.backlog == 0 and st.committed_through >= last

        await wait_until_async(all_acked, 30, "every event acked")
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, last + 1))
    assert decoded_in, "the uplink decoded no batch"
    assert loop_thread not in decoded_in, "a batch was decoded on the event loop"
    engine.dispose()
