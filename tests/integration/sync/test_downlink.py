"""Server downlink to real edges: deltas, catch-up, snapshots, school isolation, latency."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from edge.store import EdgeStore
from edge.sync import EdgeSync
from protocol.codec import Envelope, encode, loads_plain, open_envelope
from protocol.messages import (
    FEATURE_BALANCE_TOTALS,
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    CardBlock,
    EdgeFeatures,
    SyncAck,
    SyncSnapshot,
)
from protocol.signing import generate_key, public_key_raw
from server.db import make_engine, session_factory
from server.devices import enrol, reissue_token
from server.models import Device
from server.settings import ServerSettings
from server.sync import ChangeRejected, DownlinkService
from tests.support.canteen_school import money_invariants
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import Probe, bind, enrolled_device, student, sync_settings
from tests.support.wait import wait_until, wait_until_async

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


async def wait_version(sync: EdgeSync, version: int, within: float = 10.0) -> bool:
    return await wait_until_async(
        lambda: sync.applied_version >= version, within, f"the edge applies version {version}"
    )


@contextlib.asynccontextmanager
async def edge(
    tmp: Path, school: str, device: str, key: object, prefix: str
) -> AsyncIterator[tuple[EdgeStore, EdgeSync]]:
    store = await EdgeStore.open(tmp / f"{school}-{device}.db", school=school, device=device)
    try:
        async with EdgeSync(store, sync_settings(prefix, SYSTEM_BROKER[1]), key) as sync:  # type: ignore[arg-type]
            await wait_until_async(lambda: sync.online, 10, f"edge {device} online")
            yield store, sync
    finally:
        await store.close()


async def test_deltas_catch_up_snapshot_and_school_isolation(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url, snapshot_threshold=3)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        keys = {d: enrolled_device(s, settings, "S1", d)[0] for d in ("a", "b", "c")}
        key2 = enrolled_device(s, settings, "S2", "z")[0]
    spy = Probe(SYSTEM_BROKER[1])
    spy.subscribe(f"{prefix}/school/S2/#")
    with DownlinkService(settings, engine) as downlink:
        async with (
            edge(tmp_path, "S1", "a", keys["a"], prefix) as (sa, ya),
            edge(tmp_path, "S1", "b", keys["b"], prefix) as (_sb, yb),
            edge(tmp_path, "S2", "z", key2, prefix) as (sz, _yz),
        ):
            v1 = await asyncio.to_thread(
                downlink.publish_changes, "S1", [student("st1"), bind("EM:0001", "st1")]
            )
            assert v1 == 1
            assert await wait_version(ya, 1) and await wait_version(yb, 1)
            assert sa.state.cards["EM:0001"].owner_id == "st1"
            # a card for a student S1 does not have: refused, nothing published
            with pytest.raises(ChangeRejected):
                await asyncio.to_thread(downlink.publish_changes, "S1", [bind("EM:0002", "x9")])
            # c was offline: catches up by a delta (1 behind)
            async with edge(tmp_path, "S1", "c", keys["c"], prefix) as (sc, yc):
                assert await wait_version(yc, 1)
                assert "EM:0001" in sc.state.cards
            # c offline again while 5 versions pass: more than the threshold -> snapshot
            for i in range(5):
                await asyncio.to_thread(downlink.publish_changes, "S1", [student(f"n{i}")])
            await asyncio.to_thread(
                downlink.publish_changes, "S1", [CardBlock(credential="EM:0001", reason="lost")]
            )
            assert await wait_version(ya, 7) and await wait_version(yb, 7)
            assert sa.state.cards["EM:0001"].blocked_reason == "lost"
            snaps_before = downlink.snapshots_sent
            async with edge(tmp_path, "S1", "c", keys["c"], prefix) as (sc, yc):
                assert await wait_version(yc, 7)
                assert sc.state.cards["EM:0001"].blocked_reason == "lost"
                assert len(sc.state.students) == 6
            # At least one: under load, deltas the broker queued for c while it was offline may
            # arrive out of step with the snapshot, and c then asks for another (which is safe).
            assert downlink.snapshots_sent >= snaps_before + 1
            assert await sz.sync_version() == 0

            def online() -> dict[str, bool]:
                with engine.connect() as c:
                    rows = c.execute(select(Device.device_id, Device.online)).all()
                return {r.device_id: r.online for r in rows}

            want = {"a": True, "b": True, "c": False, "z": True}
            assert await asyncio.to_thread(wait_until, lambda: online() == want, 5), online()
    spy.close()
    # School 2 saw its own status and acks only: no delta, no card binding of school 1.
    assert all(not t.endswith("/sync") for t, _ in spy.messages)
    assert not any(b"EM:0001" in p for _, p in spy.messages)
    engine.dispose()


async def measure_card_block_latency(
    downlink: DownlinkService, stores: list[EdgeStore], syncs: list[EdgeSync], blocks: int
) -> dict[str, float]:
    """Time from publish_changes (a card block) to the delta applied at each online edge."""
    applied: dict[tuple[int, int], float] = {}

    def listener(i: int) -> Callable[[int], None]:
        def on_applied(version: int) -> None:
            applied.setdefault((i, version), time.perf_counter())

        return on_applied

    for i, sync in enumerate(syncs):
        sync.add_applied_listener(listener(i))
    samples: list[float] = []
    for n in range(blocks):
        t0 = time.perf_counter()
        v = await asyncio.to_thread(
            downlink.publish_changes, "S1", [CardBlock(credential="EM:0001", reason=f"lost {n}")]
        )
        await wait_until_async(
            lambda v=v: all((i, v) in applied for i in range(len(stores))),  # type: ignore[misc]
            10,
            f"block {n} applied at every edge",
            interval=0.005,
        )
        samples += [applied[(i, v)] - t0 for i in range(len(stores)) if (i, v) in applied]
    samples.sort()
    return {
        "edges": len(stores),
        "blocks": blocks,
        "delivered": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p95_ms": round(samples[int(0.95 * (len(samples) - 1))] * 1000, 1),
        "max_ms": round(samples[-1] * 1000, 1),
    }


async def test_card_block_latency_is_measured(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    devices = [f"e{i}" for i in range(5)]
    with session_factory(engine)() as s:
        keys = {d: enrolled_device(s, settings, "S1", d)[0] for d in devices}
    with DownlinkService(settings, engine) as downlink:
        await asyncio.to_thread(
            downlink.publish_changes, "S1", [student("st1"), bind("EM:0001", "st1")]
        )
        async with contextlib.AsyncExitStack() as stack:
            pairs = [
                await stack.enter_async_context(edge(tmp_path, "S1", d, keys[d], prefix))
                for d in devices
            ]
            stores = [p[0] for p in pairs]
            for _, y in pairs:
                assert await wait_version(y, 1)
            result = await measure_card_block_latency(downlink, stores, [p[1] for p in pairs], 20)
    print(f"\ncard block latency: {result}")
    assert result["delivered"] == 5 * 20
    engine.dispose()


async def test_snapshot_money_in_the_form_the_edge_reads(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str, tmp_path: Path
) -> None:
    """An edge of this release announces ``balance_totals`` and gets the money of a snapshot as
    one net per student; a device that has not announced it (the release before) gets every
    credit and debit as lists, as that release reads them (issue 19)."""
    settings = make_settings(pg_url, snapshot_threshold=2)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key_a = enrolled_device(s, settings, "S1", "a")[0]
        enrolled_device(s, settings, "S1", "old")
    spy = Probe(SYSTEM_BROKER[1])
    old_sync = f"{prefix}/school/S1/device/old/sync"
    spy.subscribe(old_sync)
    credits = [
        BalanceCredit(ledger_id=f"L{i}", student_id="st1", amount_tiyn=1_000) for i in range(5)
    ]
    with DownlinkService(settings, engine) as downlink:
        await asyncio.to_thread(downlink.publish_changes, "S1", [student("st1")])
        async with edge(tmp_path, "S1", "a", key_a, prefix) as (sa, ya):
            assert await wait_version(ya, 1)
        for c in credits:  # a is away for more versions than the threshold
            await asyncio.to_thread(downlink.publish_changes, "S1", [c])
        await asyncio.to_thread(
            downlink.publish_changes,
            "S1",
            [BalanceDebit(ledger_id="D1", student_id="st1", amount_tiyn=300)],
        )
        snaps = downlink.snapshots_sent
        async with edge(tmp_path, "S1", "a", key_a, prefix) as (sa, ya):
            assert await wait_version(ya, 7)
            assert sa.state.balance("st1") == 5 * 1_000 - 300
            await money_invariants(sa)
        assert downlink.snapshots_sent > snaps
        with session_factory(engine)() as s:
            features = s.execute(
                select(Device.downlink_features).where(Device.device_id == "a")
            ).scalar_one()
        assert features == [FEATURE_BALANCE_TOTALS]
        # the same device, as an edge of this release says it and asks for a snapshot
        ack = SyncAck(school="S1", device="old", applied_version=0, need_snapshot=True)
        says = EdgeFeatures(school="S1", device="old", features=[FEATURE_BALANCE_TOTALS])
        spy.publish(f"{prefix}/school/S1/device/old/sync/ack", encode(says))
        spy.publish(f"{prefix}/school/S1/device/old/sync/ack", encode(ack))

        def snapshots() -> list[Envelope]:  # the deltas of the school reach it too
            envs = [open_envelope(p) for p in spy.received(old_sync)]
            return [e for e in envs if e.type_name == "sync_snapshot"]

        await asyncio.to_thread(wait_until, snapshots, 10)
        snap = snapshots()[0].message(SyncSnapshot)
        assert snap.balance_totals == [BalanceTotal(student_id="st1", net_tiyn=4_700)]
        assert snap.balance_credits == [] and snap.balance_debits == []
        # enrolled again (a new install, maybe of the release before): it must say it again
        with session_factory(engine)() as s:
            token = reissue_token(s, settings, "S1", "old")
            enrol(s, settings, token, "old", public_key_raw(generate_key()))
            s.commit()
        with spy.lock:
            spy.messages.clear()
        spy.publish(f"{prefix}/school/S1/device/old/sync/ack", encode(ack))
        await asyncio.to_thread(wait_until, snapshots, 10)
        env = snapshots()[0]
        body = loads_plain(env.body, context="test")
        assert "balance_totals" not in body  # an old edge refuses a field it does not know
        snap = env.message(SyncSnapshot)
        assert sorted(c.ledger_id for c in snap.balance_credits) == [f"L{i}" for i in range(5)]
        assert [d.ledger_id for d in snap.balance_debits] == ["D1"]
    spy.close()
    engine.dispose()
