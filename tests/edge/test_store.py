"""The edge store: downlink deltas, outbox acknowledgements, alarms, and a damaged file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from edge.core.model import Presence, Tap
from edge.pipeline import Pipeline
from edge.store import EdgeStore, StoreError, SyncGap
from protocol.messages import (
    AlarmEvent,
    AntiPassback,
    CardBind,
    CardBinding,
    CardBlock,
    ConsentRecord,
    ConsentSet,
    Direction,
    OwnerKind,
    PolicyDoc,
    PolicySet,
    StudentRecord,
    StudentUpsert,
    SyncDelta,
    SyncSnapshot,
    TerminalKind,
)

POLICY = PolicyDoc.model_validate(
    {
        "timezone": "Asia/Almaty",
        "free_meal_grades": [1, 2, 3, 4],
        "anti_passback": "hard",
        "shift": [{"number": 1, "entry_from": "07:00", "entry_to": "13:00"}],
        "meal_period": [{"name": "lunch", "shifts": [1], "from": "12:00", "to": "13:00"}],
    },
    strict=False,
)
MORNING = dt.datetime(2025, 10, 6, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))


def consent(kind: str = "data", granted: bool = True) -> ConsentRecord:
    return ConsentRecord.model_validate(
        {"kind": kind, "granted": granted, "given_by": "parent", "at_ms": 1, "document": "d-1"}
    )


def snapshot(version: int = 1) -> SyncSnapshot:
    return SyncSnapshot(
        school="S1",
        version=version,
        policy=POLICY,
        students=[
            StudentRecord(id="s1", grade=2, class_name="2A", shift=1, consents=[consent()]),
            StudentRecord(id="s2", grade=9, class_name="9A", shift=1, consents=[consent()]),
        ],
        staff=[],
        cards=[
            CardBinding(credential="EM:0000000001", owner_kind=OwnerKind.STUDENT, owner_id="s1"),
            CardBinding(credential="EM:0000000002", owner_kind=OwnerKind.STUDENT, owner_id="s2"),
        ],
    )


def tap(card: str, at: dt.datetime = MORNING, direction: Direction = Direction.IN) -> Tap:
    return Tap(
        at=at, terminal="gate-1", kind=TerminalKind.TURNSTILE, direction=direction, credential=card
    )


def card_1_lost() -> SyncDelta:
    """Version 2: the console blocks s1's card as lost."""
    return SyncDelta(
        school="S1",
        version=2,
        base_version=1,
        changes=[CardBlock(credential="EM:0000000001", reason="lost")],
    )


async def open_store(path: Path, capacity: int = 100_000) -> EdgeStore:
    return await EdgeStore.open(
        path / "edge.sqlite", school="S1", device="d1", outbox_capacity=capacity
    )


async def test_a_version_is_reported_applied_only_once_memory_holds_it(tmp_path: Path) -> None:
    """``sync_version()`` (the edge's status, the tests' "synced") never runs ahead of the
    cards in memory: a console block seen as applied is in force (a race found by
    ``test_cards_stay_at_school``: the version was set before the roster was reloaded)."""
    import asyncio

    store = await open_store(tmp_path)
    await store.apply_snapshot(snapshot(version=1))
    seen: list[str | None] = []

    async def poll() -> None:
        while await store.sync_version() < 2:
            await asyncio.sleep(0)
        card = store.state.card("EM:0000000001")
        assert card is not None
        seen.append(card.blocked_reason)

    try:
        watcher = asyncio.create_task(poll())
        await asyncio.sleep(0)
        block = card_1_lost()
        assert await store.apply_delta(block) is True
        await asyncio.wait_for(watcher, 10)
    finally:
        await store.close()
    assert seen == ["lost"]


async def test_delta_applies_atomically_and_replay_changes_nothing(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.apply_snapshot(snapshot(version=1))
    block = card_1_lost()
    assert await store.apply_delta(block) is True
    assert store.state.card("EM:0000000001").blocked_reason == "lost"  # type: ignore[union-attr]
    assert await store.apply_delta(block) is False  # a replay
    assert await store.sync_version() == 2
    with pytest.raises(SyncGap):
        await store.apply_delta(SyncDelta(school="S1", version=5, base_version=4, changes=[]))
    # a delta that fails half-way leaves nothing behind: a card bound to an unknown student is
    # fine in SQLite, so break it with a consent for a student that does not exist (FK)
    bad = SyncDelta(
        school="S1",
        version=3,
        base_version=2,
        changes=[
            CardBind(
                card=CardBinding(
                    credential="EM:0000000009", owner_kind=OwnerKind.STUDENT, owner_id="s1"
                )
            ),
            ConsentSet(student_id="nobody", consent=consent()),
        ],
    )
    with pytest.raises(Exception):  # noqa: B017 - the FK violation, whatever sqlite calls it
        await store.apply_delta(bad)
    assert store.state.card("EM:0000000009") is None
    assert await store.sync_version() == 2
    await store.close()
    reopened = await open_store(tmp_path)
    assert await reopened.sync_version() == 2
    assert reopened.state.card("EM:0000000009") is None
    assert reopened.state.card("EM:0000000001").blocked_reason == "lost"  # type: ignore[union-attr]
    await reopened.close()


async def test_consent_withdrawal_and_policy_reach_decisions(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.apply_snapshot(snapshot())
    async with Pipeline(store) as pipeline:
        assert (await pipeline.submit(tap("EM:0000000002"))).decision.granted
        await store.apply_delta(
            SyncDelta(
                school="S1",
                version=2,
                base_version=1,
                changes=[
                    ConsentSet(student_id="s2", consent=consent(granted=False)),
                    StudentUpsert(
                        student=StudentRecord(
                            id="s3", grade=1, class_name="1A", shift=1, consents=[consent()]
                        )
                    ),
                    CardBind(
                        card=CardBinding(
                            credential="EM:0000000003", owner_kind=OwnerKind.STUDENT, owner_id="s3"
                        )
                    ),
                    PolicySet(policy=POLICY.model_copy(update={"anti_passback": AntiPassback.OFF})),
                ],
            )
        )
        later = MORNING + dt.timedelta(minutes=5)
        out = await pipeline.submit(tap("EM:0000000002", later, Direction.OUT))
        assert out.decision.reason == "no_consent"
        assert (await pipeline.submit(tap("EM:0000000003", later))).decision.granted
        # anti-passback is now off: s1 may enter twice
        assert (await pipeline.submit(tap("EM:0000000001", later))).decision.granted
        assert (await pipeline.submit(tap("EM:0000000001", later))).decision.granted
    assert store.state.presence("s1", MORNING.date()) is Presence.INSIDE
    await store.close()


async def test_outbox_ack_and_high_water_alarm(tmp_path: Path) -> None:
    store = await open_store(tmp_path, capacity=1_000)
    await store.apply_snapshot(snapshot())
    async with Pipeline(store) as pipeline:
        for i in range(850):
            at = MORNING + dt.timedelta(seconds=i)
            await pipeline.submit(tap("EM:0000000009", at))  # unknown card: denied, journaled
    stats = await store.outbox_stats()
    assert stats.high_water_alarm
    alarms = [e for e in await store.journal_rows() if isinstance(e, AlarmEvent)]
    assert len(alarms) == 1 and alarms[0].active and alarms[0].seq == 801
    assert stats.backlog == 851 and stats.last_seq == 851
    batch = await store.outbox_batch(0, 100)
    assert [e.seq for e in batch] == list(range(1, 101))
    assert await store.outbox_ack(700) == 700
    assert await store.outbox_ack(700) == 0  # idempotent
    assert await store.outbox_ack(10) == 0  # an old ack changes nothing
    stats = await store.outbox_stats()
    assert not stats.high_water_alarm and stats.backlog == 152  # + the "cleared" alarm event
    assert [e.seq for e in await store.outbox_batch(0, 5)] == [701, 702, 703, 704, 705]
    await store.close()
    reopened = await open_store(tmp_path, capacity=1_000)
    assert (await reopened.outbox_stats()).acked_through == 700
    assert reopened.last_seq == 852
    await reopened.close()


async def test_damaged_store_is_refused_never_recreated(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.apply_snapshot(snapshot())
    await store.close()
    db = tmp_path / "edge.sqlite"
    data = bytearray(db.read_bytes())
    data[0:16] = b"this is no db!!!"
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="not a usable edge store"):
        await open_store(tmp_path)
    assert db.read_bytes() == bytes(data), "the damaged file must be left as it was"


async def test_store_of_another_device_is_refused(tmp_path: Path) -> None:
    store = await open_store(tmp_path)
    await store.close()
    with pytest.raises(StoreError, match="belongs to school"):
        await EdgeStore.open(tmp_path / "edge.sqlite", school="S2", device="d1")


async def test_failed_commit_refuses_its_group_and_the_group_queued_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk error in one group's commit: its taps and those decided on top of it are refused
    (never actuated), nothing of them is journaled, and the next taps go on without a gap."""
    import asyncio
    import sqlite3
    import time

    import edge.store.journal as store_journal
    from edge.pipeline import PipelineError

    store = await open_store(tmp_path)
    await store.apply_snapshot(snapshot())
    real = store_journal.write_group
    calls = {"n": 0}

    def failing_second_commit(db: sqlite3.Connection, *rows: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            time.sleep(0.2)  # the next group is decided and queued meanwhile
            raise sqlite3.OperationalError("disk I/O error")
        real(db, *rows)  # type: ignore[arg-type]

    monkeypatch.setattr(store_journal, "write_group", failing_second_commit)
    lunch = MORNING.replace(hour=12, minute=10)

    def canteen(card: str, minute: int) -> Tap:
        return Tap(
            at=lunch + dt.timedelta(minutes=minute),
            terminal="canteen-1",
            kind=TerminalKind.CANTEEN,
            credential=card,
        )

    async with Pipeline(store) as pipeline:
        first = await pipeline.submit(tap("EM:0000000002"))
        assert first.event.seq == 1
        doomed = asyncio.ensure_future(pipeline.submit(canteen("EM:0000000001", 0)))
        await asyncio.sleep(0.05)  # its group is in the journal thread now
        behind = asyncio.ensure_future(pipeline.submit(canteen("EM:0000000001", 1)))
        for fut in (doomed, behind):
            with pytest.raises(PipelineError, match="journal commit failed"):
                await fut
        after = await pipeline.submit(canteen("EM:0000000001", 2))
    # the failed meal never happened, so the student is served now, once
    assert after.decision.granted and after.event.seq == 2
    assert [e.seq for e in await store.journal_rows()] == [1, 2]
    assert len(await store.meal_ledger()) == 1
    await store.close()


async def test_a_caller_cancelled_while_its_group_commits_is_still_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group commits regardless (the store knows it), and the cancellation reaches the
    caller: swallowed, it left the sync's task group waiting for ever on a stopped task."""
    import asyncio
    import sqlite3
    import threading

    import edge.store.journal as store_journal
    from protocol.messages import AlarmCode

    store = await open_store(tmp_path)
    real = store_journal.write_group
    in_commit, release = threading.Event(), threading.Event()

    def held_commit(db: sqlite3.Connection, *rows: object) -> None:
        in_commit.set()
        release.wait(30)
        real(db, *rows)  # type: ignore[arg-type]

    monkeypatch.setattr(store_journal, "write_group", held_commit)
    before = store.last_seq
    task = asyncio.create_task(store.journal_alarm("edge", AlarmCode.DOWNLINK_REFUSED, True, "x"))
    assert await asyncio.to_thread(in_commit.wait, 30)
    task.cancel()
    await asyncio.sleep(0)  # the cancellation is delivered while the journal thread holds
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.last_seq == before + 1
    assert [e.kind for e in await store.journal_rows(before + 1)] == ["alarm"]
    await store.close()
