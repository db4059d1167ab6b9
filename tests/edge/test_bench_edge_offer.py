"""The edge bench offers taps as a rush does: random (Poisson) moments, a burst at the start of
each round, handed to the event loop from a reader thread the way the daemon's readers do. The
bench's figures mean what its JSON says only if this holds."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import threading
import time
from pathlib import Path

from simulators.bench_edge import BURST_FACTOR, BURST_SHARE, arrivals, feed_readers


def test_a_round_offers_the_rate_with_the_shift_start_burst_first() -> None:
    rng = random.Random(7)
    rounds = [arrivals(rng, 600, 0.5, 12) for _ in range(200)]
    counts = [len(r) for r in rounds]
    assert abs(statistics.fmean(counts) - 600) < 10  # 1,200 taps/s on average
    assert statistics.pstdev(counts) > 5  # random moments, not a fixed tick
    in_burst = sum(1 for r in rounds for at, _ in r if at < 0.5 * BURST_SHARE)
    assert abs(in_burst / sum(counts) - BURST_SHARE * BURST_FACTOR) < 0.02
    assert all(0 <= at < 0.5 for r in rounds for at, _ in r)
    assert {t for r in rounds for _, t in r} == set(range(12))
    for r in rounds:
        assert [at for at, _ in r] == sorted(at for at, _ in r)


async def test_the_reader_thread_hands_each_tap_to_the_loop_once_at_its_moment() -> None:
    schedule = arrivals(random.Random(3), 200, 0.2, 12)
    got: list[tuple[int, float, float]] = []

    def deliver(terminal: int, handed: float) -> None:
        got.append((terminal, handed, time.perf_counter()))

    t0 = time.perf_counter()
    await asyncio.to_thread(feed_readers, asyncio.get_running_loop(), schedule, deliver)
    await asyncio.sleep(0)  # the last hand-over's callback
    assert [t for t, _, _ in got] == [t for _, t in schedule]
    for (at, _), (_, handed, seen) in zip(schedule, got, strict=True):
        assert handed >= t0 + at  # never early
        assert seen >= handed  # the latency starts at the hand-over, before the loop sees it


def test_a_taps_latency_is_cut_at_its_groups_begin_and_commit() -> None:
    from simulators.bench_edge import stages

    # group 1..2 ran 1.0-1.5 s, group 3 ran 1.5-2.5 s; tap 4 is the saturated phase's
    spans = [(1, 3, 1.0, 1.5), (3, 5, 1.5, 2.5)]
    submitted = {1: 0.5, 2: 0.9, 3: 1.2}
    resumed = {1: 1.6, 2: 1.7, 3: 2.75}
    got = stages(spans, submitted, resumed)
    assert [round(x, 6) for x in got["to_begin"]] == [0.5, 0.1, 0.3]
    assert got["transaction"] == [0.5, 0.5, 1.0]
    assert [round(x, 6) for x in got["back_to_tap"]] == [0.1, 0.2, 0.25]
    for seq, handed in submitted.items():  # the three stages add up to the latency
        i = list(submitted).index(seq)
        total = got["to_begin"][i] + got["transaction"][i] + got["back_to_tap"][i]
        assert abs(total - (resumed[seq] - handed)) < 1e-9


def test_the_ideal_pipeline_groups_the_taps_arriving_during_a_commit(tmp_path: Path) -> None:
    """The bare pipeline floor commits every row once, in groups of the rows that arrived while
    the commit before ran, and a row's latency includes that wait: a row arriving just after a
    slow commit began waits for it (here a commit made slow by a lock held 50 ms)."""
    from simulators.bench_edge import bare_commit_db, bare_pipeline

    db = bare_commit_db(tmp_path)
    blocker = sqlite3.connect(
        tmp_path / "bare.sqlite", isolation_level=None, check_same_thread=False
    )
    try:
        db.execute("PRAGMA busy_timeout=2000")
        blocker.execute("BEGIN IMMEDIATE")  # the first commit waits for the lock: slow
        threading.Timer(0.05, blocker.execute, ("COMMIT",)).start()
        schedule = [0.0, 0.01, 0.02, 0.03, 0.2]  # three arrive during the first (slow) commit
        latencies = bare_pipeline(db, schedule)
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 5
        assert len(latencies) == 5 and min(latencies) > 0
        assert latencies[0] >= 0.045  # the row the slow commit held
        # the three that came during it wait for it, then for their own (one) commit
        assert all(lat >= 0.045 - at for lat, at in zip(latencies[1:4], schedule[1:4], strict=True))
        assert latencies[4] < 0.045  # the last one finds the writer idle
    finally:
        blocker.close()
        db.close()
