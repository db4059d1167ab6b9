"""The pipeline's hand-off to the journal thread: the thread takes the open group itself the
moment its previous transaction returns (the event loop plays no part), and a group that fails
takes down every group handed over on top of it, decided before the loop knew, while the taps
decided after it see exactly what was committed."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import edge.store.journal as store_journal
from edge.core.model import Tap
from edge.pipeline import Pipeline, PipelineError
from edge.store import EdgeStore, JournalEntry, PreparedJournal
from edge.store.errors import StoreError
from protocol.messages import LibraryVisitEvent, MealServedEvent, TerminalKind
from tests.edge.test_store import MORNING, open_store, snapshot, tap

LUNCH = MORNING.replace(hour=12, minute=10)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeStore]:
    opened = await open_store(tmp_path)
    try:
        yield opened
    finally:
        await opened.close()  # a failed test must not leave the store's threads behind


def visit(n: int) -> JournalEntry:
    return JournalEntry(LibraryVisitEvent(seq=1, at_ms=n, terminal="lib-1", student_id="s1"))


def canteen(card: str, minute: int) -> Tap:
    return Tap(
        at=LUNCH + dt.timedelta(minutes=minute),
        terminal="canteen-1",
        kind=TerminalKind.CANTEEN,
        credential=card,
    )


async def test_the_thread_takes_the_next_group_without_the_event_loop(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries join the open group while the group before commits; once that commit returns
    the thread starts the open group's own, even with the event loop stopped dead."""
    real = store_journal.write_group
    first_in, release_first, second_in = threading.Event(), threading.Event(), threading.Event()
    sizes: list[int] = []

    def watched(db: sqlite3.Connection, *rows: Any) -> None:
        sizes.append(len(rows[0]))
        if len(sizes) == 1:
            first_in.set()
            release_first.wait(30)
        else:
            second_in.set()
        real(db, *rows)

    monkeypatch.setattr(store_journal, "write_group", watched)
    done: list[tuple[int, BaseException | None]] = []
    finished = asyncio.Event()

    def on_done(prep: PreparedJournal, err: BaseException | None) -> None:
        done.append((prep.first_seq, err))
        if len(done) == 2:
            finished.set()

    first = store.append_entry(visit(1), on_done)
    assert await asyncio.to_thread(first_in.wait, 30), "the thread took the first group"
    second = store.append_entry(visit(2), on_done)
    assert store.append_entry(visit(3), on_done) is second, "joined the open group"
    assert second is not first and (second.first_seq, second.next_seq) == (2, 4)
    release_first.set()
    # The event loop is blocked here (a plain wait, not an await): the thread must take the
    # open group by itself once the first transaction has returned.
    assert second_in.wait(30), "the second group commit waited for the event loop"
    await asyncio.wait_for(finished.wait(), 30)
    assert done == [(1, None), (2, None)] and sizes == [1, 2]
    assert store.last_seq == 3
    assert [e.seq for e in await store.journal_rows()] == [1, 2, 3]


async def test_a_failed_group_takes_down_the_groups_handed_over_before_the_loop_knew(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first group fails (a full disk); the open group behind it, and one handed over
    after the thread refused that one but before the loop heard of any of it, are refused too
    (their numbers do not follow); the next entry takes seq 1 again and commits."""
    real = store_journal.write_group
    real_check = store._journal_rows_in_order
    first_in, release_first, second_refused = (
        threading.Event(),
        threading.Event(),
        threading.Event(),
    )
    calls = {"n": 0}

    def failing_first(db: sqlite3.Connection, *rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            first_in.set()
            release_first.wait(30)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(db, *rows)

    def watched_check(db: sqlite3.Connection, prep: PreparedJournal) -> None:
        try:
            real_check(db, prep)
        except StoreError:  # the refusal of a group that does not follow (not g1's OSError,
            second_refused.set()  # which also passes through here: the check calls write_group)
            raise

    monkeypatch.setattr(store_journal, "write_group", failing_first)
    monkeypatch.setattr(store, "_journal_rows_in_order", watched_check)
    done: list[tuple[int, str]] = []

    def on_done(prep: PreparedJournal, err: BaseException | None) -> None:
        done.append((prep.first_seq, type(err).__name__))

    g1 = store.append_entry(visit(1), on_done)
    assert await asyncio.to_thread(first_in.wait, 30)
    g2 = store.append_entry(visit(2), on_done)
    release_first.set()
    assert second_refused.wait(30)  # the loop is blocked: it has not heard of either yet
    g3 = store.append_entry(visit(3), on_done)
    assert len({id(g1), id(g2), id(g3)}) == 3, "the thread had taken the open group"
    assert g3.first_seq == 3 and g3.epoch == g1.epoch
    while len(done) < 3:
        await asyncio.sleep(0.01)
    assert done == [(1, "OSError"), (2, "StoreError"), (3, "StoreError")]
    assert store.last_seq == 0 and store.journal_epoch == g1.epoch + 1
    g4 = store.append_entry(visit(4), on_done)
    assert g4.first_seq == 1
    while len(done) < 4:
        await asyncio.sleep(0.01)
    assert done[3] == (1, "NoneType")
    assert [(e.seq, e.at_ms) for e in await store.journal_rows()] == [(1, 4)]


async def test_taps_decided_on_a_failed_group_are_refused_and_memory_follows_the_disk(
    store: EdgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under a student's lunch: the tap decided on top of it (the meal counted as
    served) is refused too, not journaled as a denial; nothing of either is in memory, and the
    next tap sees exactly what was committed (no meal): the student is served, at seq 1."""
    await store.apply_snapshot(snapshot())
    real = store_journal.write_group
    first_in, release_first = threading.Event(), threading.Event()
    calls = {"n": 0}

    def failing_first(db: sqlite3.Connection, *rows: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            first_in.set()
            release_first.wait(30)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(db, *rows)

    monkeypatch.setattr(store_journal, "write_group", failing_first)
    async with Pipeline(store) as pipeline:
        doomed = asyncio.ensure_future(pipeline.submit(canteen("EM:0000000001", 0)))
        assert await asyncio.to_thread(first_in.wait, 30)
        on_top = asyncio.ensure_future(pipeline.submit(canteen("EM:0000000001", 1)))
        while store._reserved < 3:  # decided (as "already served") into the open group
            await asyncio.sleep(0)
        release_first.set()
        for fut in (doomed, on_top):
            with pytest.raises(PipelineError, match="journal commit failed") as refused:
                await fut
            assert refused.value.cannot_record, "a full disk: the terminal says so"
        assert store.state.meals == {} and pipeline.store_fault is not None
        after = await pipeline.submit(canteen("EM:0000000001", 2))
    assert after.decision.granted and after.event.seq == 1, "the failed meal never happened"
    journal = await store.journal_rows()
    assert [e.seq for e in journal] == list(range(1, len(journal) + 1))
    assert [e.seq for e in journal if isinstance(e, MealServedEvent)] == [1]
    assert len(await store.meal_ledger()) == 1


async def test_the_pipeline_waits_for_its_groups_on_exit(store: EdgeStore) -> None:
    """Leaving the pipeline, the groups handed over report back first: nothing is left
    half-known (committed on disk, not yet in memory)."""
    await store.apply_snapshot(snapshot())
    async with Pipeline(store) as pipeline:
        taps = [asyncio.ensure_future(pipeline.submit(tap("EM:0000000002"))) for _ in range(5)]
        await asyncio.sleep(0)
        first = await taps[0]
    assert first.event.seq == 1
    assert store.last_seq == len(await store.journal_rows())
    for t in taps:
        await asyncio.gather(t, return_exceptions=True)
