"""Edge uplink (edge.sync.EdgeSync over the real EdgeStore) into the ingest worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.store import EdgeStore
from edge.sync import EdgeSync, UplinkWindow, backoff_delay
from protocol import topics
from protocol.codec import decode
from protocol.messages import DeviceStatus
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.settings import ServerSettings
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import Probe, enrolled_device, journal_rush, server_seqs, sync_settings
from tests.support.wait import wait_until_async


@given(st.integers(0, 100), st.floats(0, 0.999))
def test_backoff_is_capped_and_jittered(attempt: int, rand: float) -> None:
    d = backoff_delay(attempt, base=0.5, cap=30.0, rand=rand)
    assert 0.25 <= d <= 30.0
    assert d >= min(30.0, 0.5 * 2 ** max(attempt - 1, 0)) / 2 - 1e-9


def test_window_rewinds_on_timeout_and_persistent_gap() -> None:
    w = UplinkWindow()
    kw = {"ack_timeout": 5.0, "gap_grace": 1.0}
    w.on_sent(1000, now=0.0)
    assert w.rewind_reason(1.0, **kw) is None
    assert w.rewind_reason(5.0, **kw) == "timeout"
    w.rewind(5.0, "timeout")
    w.on_sent(1000, now=5.0)
    assert w.rewind_reason(14.0, **kw) is None  # the second timeout waits twice as long
    assert w.rewind_reason(15.0, **kw) == "timeout"
    w.on_ack(500, has_gap=True, now=15.0)
    assert w.acked == 500 and w.gap_since == 15.0 and w.timeouts == 0
    assert w.rewind_reason(15.5, **kw) is None
    assert w.rewind_reason(16.0, **kw) == "gap"
    w.rewind(16.0, "gap")
    assert w.sent_through == 500 and w.outstanding() == 0
    w.on_ack(400, has_gap=False, now=16.1)  # a stale ack never moves backwards
    assert w.acked == 500


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_outbox_drains_to_server_and_status_is_retained(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.db", school="S1", device="d1")
    last = await journal_rush(store, 5000)  # journaled while offline
    probe = Probe(SYSTEM_BROKER[1])
    probe.subscribe(topics.status("S1", "d1", prefix))
    async with (
        IngestWorker(settings, engine),
        EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key) as sync,
    ):
        last = max(last, await journal_rush(store, 3000))  # and while online

        async def all_acked() -> bool:
            st = await sync.status()
            return st.backlog == 0 and st.committed_through >= last

        await wait_until_async(all_acked, 20, "every event acked")
        st = await sync.status()
        assert st.online and st.backlog == 0, st
    await store.close()
    assert server_seqs(engine, "S1", "d1") == list(range(1, st.last_seq + 1))
    statuses = [decode(p, DeviceStatus) for p in probe.received(topics.status("S1", "d1", prefix))]
    assert statuses[0].online and not statuses[-1].online
    probe.close()
    engine.dispose()


async def _rush_one_by_one(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
    hold_ms: float,
) -> tuple[int, int]:
    """400 taps journaled one at a time, ~2 ms apart (a morning rush), through the real broker
    and ingest, then a lone tap; returns (events of the rush, batches it took)."""
    import asyncio

    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    device = f"d{int(hold_ms)}"
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", device)
    store = await EdgeStore.open(tmp_path / f"{device}.db", school="S1", device=device)
    link = sync_settings(prefix, SYSTEM_BROKER[1]).model_copy(
        update={"small_batch_hold_ms": hold_ms}
    )
    async with IngestWorker(settings, engine), EdgeSync(store, link, key) as sync:
        await wait_until_async(lambda: _online(sync), 10, "online")
        last = 0
        for _ in range(400):
            last = await journal_rush(store, 1)
            await asyncio.sleep(0.002)

        async def acked(through: int) -> bool:
            st = await sync.status()
            return st.backlog == 0 and st.committed_through >= through

        await wait_until_async(lambda: acked(last), 20, "the rush acked")
        batches = sync.batches_sent
        # Nothing is unacknowledged now, so the lone tap is not held: it is acknowledged well
        # before a hold of 5 s (the first run's) could end.
        lone = await journal_rush(store, 1)
        await wait_until_async(lambda: acked(lone), 2.5, "the lone tap acked, not held")
    await store.close()
    assert server_seqs(engine, "S1", device) == list(range(1, lone + 1))
    return last, batches


async def _online(sync: EdgeSync) -> bool:
    return (await sync.status()).online


@pytest.mark.mosquitto
@pytest.mark.postgres
async def test_a_rush_of_single_taps_goes_up_in_few_messages_and_a_lone_tap_at_once(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    events, held = await _rush_one_by_one(pg_url, make_settings, prefix, tmp_path, 5000)
    _, at_once = await _rush_one_by_one(pg_url, make_settings, prefix, tmp_path, 0)
    # Without the hold every tap is a message of its own; with it, taps wait for the ack in
    # flight (or the hold) and go up together (measured: 38-50 messages against 391-399).
    assert held * 3 <= at_once, (held, at_once)
    assert held <= events / 4, (held, events)
