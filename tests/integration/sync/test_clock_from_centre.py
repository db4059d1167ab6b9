"""A school whose clock is in doubt gets the centre's time from the real link (README, "Wrong
clock"): the edge's wall clock is a year behind its journal; the flagged events go through
Mosquitto to the real ingest worker (PostgreSQL), whose signed acks carry the centre's time; the
doubt clears, the clearing is journaled and reaches the centre too."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.clock_guard import ClockGuard
from edge.daemon import guard_clock
from edge.store import EdgeStore, JournalEntry
from edge.sync import EdgeSync
from protocol.messages import AlarmCode, AlarmEvent, EntryEvent
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.settings import ServerSettings
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import enrolled_device, server_seqs, sync_settings
from tests.support.wait import wait_until_async

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


async def test_the_centre_s_signed_ack_clears_the_doubt(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="d1")
    try:
        now = dt.datetime.now(dt.UTC)
        await store.journal_alarm("gate-1", AlarmCode.GATE_FAULT, False, "")  # journaled "now"
        guard = ClockGuard(lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=365))
        pending: set[asyncio.Task[int]] = set()
        guard_clock(store, guard, pending)
        guard.start(await store.last_at_ms())  # after a power cut: a year behind the journal
        await asyncio.gather(*pending)
        assert guard.in_doubt
        for _ in range(5):
            at_ms = guard.now_ms()
            entry = EntryEvent(seq=1, at_ms=at_ms, terminal="gate-1", student_id="st1")
            await store.journal([JournalEntry(entry)])
        flagged = [e for e in await store.journal_rows() if e.clock_in_doubt]
        assert len(flagged) == 6  # the alarm and the five entries

        sync = EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key)
        sync.on_centre_time = guard.centre_time
        with IngestWorker(settings, engine):
            async with sync:
                await wait_until_async(lambda: not guard.in_doubt, 20, "the doubt cleared")
                await asyncio.gather(*pending)
                cleared = [
                    e
                    for e in await store.journal_rows()
                    if isinstance(e, AlarmEvent) and e.code is AlarmCode.CLOCK_IN_DOUBT
                ]
                assert [e.active for e in cleared] == [True, False]
                assert cleared[-1].clock_in_doubt is None
                # the centre's time, not the wall clock's: within minutes of the real time
                assert abs(guard.now() - now) < dt.timedelta(minutes=5)
                last = store.last_seq
                await wait_until_async(
                    lambda: server_seqs(engine, "S1", "d1") == list(range(1, last + 1)),
                    20,
                    "every event stored at the centre, the flagged ones too",
                )
    finally:
        await store.close()
        engine.dispose()
