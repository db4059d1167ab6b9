"""``qaqpa bench edge``: the school daemon's tap-to-committed-record latency under a rush, against
floors measured in the same run on the same disk with exactly the journal's durability settings
(WAL, ``synchronous=FULL``):

* the bare one-row commit (``BEGIN IMMEDIATE; INSERT; COMMIT``), back to back, and
* the bare group commit: the same sequence of group sizes the pipeline committed in that round,
  replayed back to back as bare transactions of that many rows (the physical floor of any design
  that fsyncs); each row counts once, with its group's commit time, as each tap does;
* both again *paced*: each bare transaction started at the moment (from the round's start) the
  pipeline's group began. This disk's fsync is slower after an idle gap than back to back, so
  the back-to-back floors are below what any commit at the pipeline's pace can reach;
* the ideal pipeline (``bare_pipeline``): the round's own taps, at their moments, group-committed
  by one bare thread that takes every row arrived while the commit before ran. Unlike the
  group-commit floors it includes the wait for the commit under way, which no design with one
  writer avoids, so ``qaqpa_added_p99_ms`` says what Qaqpa adds and nothing else.

Taps are offered as a real rush: 12 terminals, 1,200 taps/s on average, each round opening with
a burst (the start of a shift: 1.75x the rate for the first 40 % of the round, then 0.5x). The
taps arrive at random (Poisson) moments at random terminals, from a reader thread that hands
each one to the event loop with ``call_soon_threadsafe`` as the daemon's readers do, and a tap's
latency runs from that hand-over to its committed decision. (1,200 taps/s is a stress far above
what 12 gates pass, about one person a second each, so taps are not queued per terminal.) The run alternates pipeline rounds with the floors'
rounds so that both see the same (noisy) machine. Then 12 terminals tap as fast as they can
(closed loop) for the saturated rate.

``handoff_gap_ms``: whenever a tap was waiting as a group's COMMIT returned, the time until the
journal thread began the next group's transaction (the hand-off's own cost, apart from fsync).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import itertools
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.core.model import Tap
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from protocol.messages import Direction, TerminalKind
from simulators.bench_support import bench_snapshot, peak_rss_mb, percentile

# The journal's durability settings (edge/store/base.py); tests/edge/test_durability_pragmas.py
# fails if the journal or these baselines change them.
BARE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA wal_autocheckpoint=0",  # as the journal: no checkpoint inside a commit (see floor())
)
TERMINALS = 12
RATE = 1200
BURST_SHARE, BURST_FACTOR = 0.4, 1.75  # 40 % of each round at 1.75x, the rest at 0.5x
TARGETS = {
    "p99_ratio_to_bare_commit_max": 2.0,
    "p99_ratio_to_bare_group_commit_max": 1.2,
    "saturated_decisions_per_s_min": 6000,
    "peak_rss_mb_max": 150,
}


def bare_commit_db(directory: Path) -> sqlite3.Connection:
    """A table on the same disk, with the journal's pragmas: the floor we compare to."""
    db = sqlite3.connect(directory / "bare.sqlite", isolation_level=None, check_same_thread=False)
    for pragma in BARE_PRAGMAS:
        db.execute(pragma)
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, at_ms INTEGER, payload BLOB)")
    return db


def floor(fn: Callable[..., list[float]], db: sqlite3.Connection, *args: Any) -> list[float]:
    """Measure one floor, then fold its WAL into the database outside the measured time (the
    journal's checkpoints run between its commits, from another connection, every second)."""
    out = fn(db, *args)
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return out


def bare_commits(db: sqlite3.Connection, n: int) -> list[float]:
    """Latencies of ``n`` fsync'd commits of one row each."""
    out = []
    blob = os.urandom(120)
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (at_ms, payload) VALUES (?, ?)", (i, blob))
        db.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    return out


def bare_group_commits(
    db: sqlite3.Connection, sizes: list[int], starts: list[float] | None = None
) -> list[float]:
    """One fsync'd commit of ``k`` rows for each ``k`` in ``sizes``; its time once per row.
    ``starts``: begin the i-th no earlier than ``starts[i]`` seconds from now (paced)."""
    out: list[float] = []
    blob = os.urandom(120)
    t_start = time.perf_counter()
    for n, k in enumerate(sizes):
        rows = [(i, blob) for i in range(k)]
        if starts is not None:
            _sleep_until(t_start + starts[n])
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO t (at_ms, payload) VALUES (?, ?)", rows)
        db.execute("COMMIT")
        took = time.perf_counter() - t0
        out.extend([took] * k)
    return out


def bare_pipeline(db: sqlite3.Connection, schedule: list[float]) -> list[float]:
    """The ideal group commit offered the round's own taps: one thread, no deciding, no thread
    hop. Rows arrive at their moments (``schedule``: seconds from now, ascending); the rows that
    arrive while a commit runs wait for it, and the next transaction takes every row that has
    arrived by the time the one before returned. A row's latency runs from its arrival (or, for
    the row the thread slept for, from the thread's waking, as a tap's runs from its reader's
    hand-over) to its group's COMMIT returning: the floor of any design that fsyncs, under the
    same arrivals, with the wait for the commit under way included."""
    out: list[float] = []
    blob = os.urandom(120)
    t0 = time.perf_counter()
    i, n = 0, len(schedule)
    while i < n:
        slept = _sleep_until(t0 + schedule[i])
        now = time.perf_counter() - t0
        j = i + 1
        while j < n and schedule[j] <= now:
            j += 1
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT INTO t (at_ms, payload) VALUES (?, ?)", [(k, blob) for k in range(i, j)]
        )
        db.execute("COMMIT")
        done = time.perf_counter() - t0
        out.append(done - (now if slept else schedule[i]))
        out.extend(done - schedule[k] for k in range(i + 1, j))
        i = j
    return out


def handoff_gaps(
    spans: list[tuple[int, int, float, float]], submitted: dict[int, float]
) -> list[float]:
    """For consecutive journal groups where the second had a tap submitted before the first's
    COMMIT returned: the time from that return to the second's BEGIN (the hand-off's cost)."""
    out = []
    ordered = sorted(spans)
    for (_, _, _, ended), (first, nxt, began, _) in itertools.pairwise(ordered):
        waiting = [submitted[s] for s in range(first, nxt) if s in submitted]
        if waiting and min(waiting) < ended:
            out.append(began - ended)
    return out


def stages(
    spans: list[tuple[int, int, float, float]],
    submitted: dict[int, float],
    resumed: dict[int, float],
) -> dict[str, list[float]]:
    """Each open-loop tap's latency cut at its group's BEGIN and COMMIT (see ``stages_note``)."""
    out: dict[str, list[float]] = {"to_begin": [], "transaction": [], "back_to_tap": []}
    for first, nxt, began, ended in spans:
        for seq in range(first, nxt):
            handed, done = submitted.get(seq), resumed.get(seq)
            if handed is None or done is None:
                continue  # the saturated phase's, or a high-water alarm's
            out["to_begin"].append(began - handed)
            out["transaction"].append(ended - began)
            out["back_to_tap"].append(done - ended)
    return out


def _sleep_until(t: float) -> bool:
    """Sleep until ``t`` (``time.perf_counter()``); whether it had to."""
    delay = t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
        return True
    return False


def arrivals(
    rng: random.Random, total: int, round_s: float, terminals: int
) -> list[tuple[float, int]]:
    """A round's taps: Poisson arrival times (seconds from the round's start) at the burst's
    rate for the first ``BURST_SHARE`` of the round and the rest's after, ``total`` on average,
    each at a random terminal."""
    burst_s = round_s * BURST_SHARE
    burst_rate = total / round_s * BURST_FACTOR
    rest_rate = (total - burst_rate * burst_s) / (round_s - burst_s)
    out: list[tuple[float, int]] = []
    t = 0.0
    while True:
        t += rng.expovariate(burst_rate if t < burst_s else rest_rate)
        if t >= round_s:
            return out
        out.append((t, rng.randrange(terminals)))


def feed_readers(
    loop: asyncio.AbstractEventLoop,
    schedule: list[tuple[float, int]],
    deliver: Any,
) -> None:
    """The terminals' reader thread: each tap handed to the loop at its moment, with the time
    it was handed over (the tap's latency starts there)."""
    t0 = time.perf_counter()
    for at, terminal in schedule:
        _sleep_until(t0 + at)
        loop.call_soon_threadsafe(deliver, terminal, time.perf_counter())


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50) * 1000, 3),
        "p99": round(percentile(values, 99) * 1000, 3),
        "max": round(max(values) * 1000, 3),
    }


async def _edge(
    seconds: float, rate: int, terminals: int, students: int, cards: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("QAQPA_BENCH_DIR")) as tmp:
        root = Path(tmp)
        store = await EdgeStore.open(root / "edge.sqlite", school="S1", device="bench")
        await store.apply_snapshot(bench_snapshot(students, cards))
        group_sizes: list[int] = []  # the pipeline's committed groups, in commit order
        # each journal transaction as the thread ran it: (first seq, next seq, began, ended)
        spans: list[tuple[int, int, float, float]] = []
        store.group_probe = lambda *span: spans.append(span)
        submitted: dict[int, float] = {}  # seq -> when its tap was handed over (open loop)
        resumed: dict[int, float] = {}  # seq -> when its tap had its committed decision
        gc.collect()
        gc.freeze()  # as the daemon does once its roster is loaded
        bare: list[float] = []
        bare_group: list[float] = []
        bare_paced: list[float] = []  # one row, at the pipeline's groups' moments
        bare_group_paced: list[float] = []  # the pipeline's group sizes, at their moments
        bare_piped: list[float] = []  # the ideal group commit offered the round's taps
        bare_db = bare_commit_db(root)
        rng = random.Random(1)
        kinds = [TerminalKind.TURNSTILE, TerminalKind.CANTEEN, TerminalKind.LIBRARY]

        def make_tap(terminal: int) -> Tap:
            card = rng.randrange(int(cards * 1.02))  # ~2 % unknown cards
            return Tap(
                at=dt.datetime.now(dt.UTC),
                terminal=f"t{terminal}",
                kind=kinds[terminal % len(kinds)],
                direction=Direction.IN if rng.random() < 0.5 else Direction.OUT,
                credential=f"EM:{card:010d}",
            )

        latencies: list[float] = []  # open loop at the target rate, from the scheduled time
        by_terminal: dict[int, list[float]] = {t: [] for t in range(terminals)}
        rounds_raw: list[dict[str, Any]] = []
        saturated = 0  # closed loop: as fast as the terminals can go
        async with Pipeline(store) as pipeline:
            pipeline.on_group = group_sizes.append

            async def one(terminal: int, handed: float) -> None:
                outcome = await pipeline.submit(make_tap(terminal))
                took = time.perf_counter() - handed
                submitted[outcome.event.seq] = handed
                resumed[outcome.event.seq] = handed + took
                latencies.append(took)
                by_terminal[terminal].append(took)

            loop = asyncio.get_running_loop()
            rounds = 8
            per_round = int(rate * seconds) // rounds
            round_s = seconds / rounds
            open_time = 0.0
            for _ in range(rounds):
                first_lat, first_group, first_span = len(latencies), len(group_sizes), len(spans)
                schedule = arrivals(rng, per_round, round_s, terminals)
                t_round = time.perf_counter()
                async with asyncio.TaskGroup() as tg:

                    def deliver(terminal: int, handed: float, tg: asyncio.TaskGroup = tg) -> None:
                        tg.create_task(one(terminal, handed))

                    await asyncio.to_thread(feed_readers, loop, schedule, deliver)
                open_time += time.perf_counter() - t_round
                sizes = group_sizes[first_group:]
                starts = [began - t_round for _, _, began, _ in spans[first_span:]]
                one_row = await asyncio.to_thread(floor, bare_commits, bare_db, 250)
                grouped = await asyncio.to_thread(floor, bare_group_commits, bare_db, sizes)
                paced_one = await asyncio.to_thread(
                    floor, bare_group_commits, bare_db, [1] * len(starts), starts
                )
                paced = await asyncio.to_thread(floor, bare_group_commits, bare_db, sizes, starts)
                arrived = [at for at, _ in schedule]
                piped = await asyncio.to_thread(floor, bare_pipeline, bare_db, arrived)
                bare += one_row
                bare_group += grouped
                bare_paced += paced_one
                bare_group_paced += paced
                bare_piped += piped
                mine = latencies[first_lat:]
                rounds_raw.append(
                    {
                        "taps": len(mine),
                        "groups": len(sizes),
                        "p99_ms": round(percentile(mine, 99) * 1000, 3),
                        "bare_commit_p99_ms": round(percentile(one_row, 99) * 1000, 3),
                        "bare_group_commit_p99_ms": round(percentile(grouped, 99) * 1000, 3),
                        "bare_commit_paced_p99_ms": round(percentile(paced_one, 99) * 1000, 3),
                        "bare_group_commit_paced_p99_ms": round(percentile(paced, 99) * 1000, 3),
                        "bare_pipeline_p99_ms": round(percentile(piped, 99) * 1000, 3),
                    }
                )
            bare_db.close()
            open_groups = list(group_sizes)
            gaps = handoff_gaps(spans, submitted)
            where = stages(spans, submitted, resumed)

            stop_at = time.monotonic() + seconds / 2

            async def terminal(n: int) -> None:
                nonlocal saturated
                while time.monotonic() < stop_at:
                    await pipeline.submit(make_tap(n))
                    saturated += 1

            t1 = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for n in range(terminals):
                    tg.create_task(terminal(n), name=f"bench-terminal-{n}")
            closed_elapsed = time.perf_counter() - t1
        stats = await store.outbox_stats()
        await store.close()
    p99 = percentile(latencies, 99)
    bare_p99, group_p99 = percentile(bare, 99), percentile(bare_group, 99)
    ratio_bare, ratio_group = p99 / bare_p99, p99 / group_p99
    paced_p99, group_paced_p99 = percentile(bare_paced, 99), percentile(bare_group_paced, 99)
    ratio_paced, ratio_group_paced = p99 / paced_p99, p99 / group_paced_p99
    piped_p99 = percentile(bare_piped, 99)
    sat_rate = saturated / closed_elapsed
    rss = peak_rss_mb()
    one_max = TARGETS["p99_ratio_to_bare_commit_max"]
    group_max = TARGETS["p99_ratio_to_bare_group_commit_max"]
    return {
        "bench": "edge",
        "students": students,
        "cards": cards,
        "terminals": terminals,
        "seconds": round(open_time, 2),
        "offered_taps_per_s": rate,
        "offered_as": (
            f"{rounds} rounds, each opening with a shift-start burst "
            f"({BURST_FACTOR}x for {int(BURST_SHARE * 100)} % of the round, then 0.5x); "
            "Poisson arrivals at random terminals from a reader thread (call_soon_threadsafe), "
            "latency from the reader's hand-over"
        ),
        "decisions": len(latencies),
        "decisions_per_s": round(len(latencies) / open_time, 1),
        "saturated_decisions_per_s": round(sat_rate, 1),
        "journaled": stats.last_seq,
        "mean_group": round(statistics.fmean(open_groups), 2),
        "group_sizes": {str(k): v for k, v in sorted(Counter(open_groups).items())},
        "latency_ms": _ms(latencies),
        "p99_ms_by_terminal": {
            f"t{t}": round(percentile(v, 99) * 1000, 3) for t, v in by_terminal.items() if v
        },
        "handoff_gap_ms": {**_ms(gaps), "p90": round(percentile(gaps, 90) * 1000, 3)}
        if gaps
        else None,
        "handoff_gap_note": (
            f"{len(gaps)} times a group's tap was waiting when the transaction before it "
            "returned: from that COMMIT returning to the next BEGIN, in the journal thread"
        ),
        "stages_ms": {k: _ms(v) for k, v in where.items()},
        "stages_note": (
            "where a tap's time goes: from the reader's hand-over to the BEGIN of the "
            "transaction that holds it (deciding, and waiting for the commit under way), that "
            "transaction (BEGIN to COMMIT returned, in the journal thread), and from there to "
            "the tap's coroutine resumed with its committed decision (back to the loop)"
        ),
        "bare_commit_ms": _ms(bare),
        "bare_group_commit_ms": _ms(bare_group),
        "bare_commit_paced_ms": _ms(bare_paced),
        "bare_group_commit_paced_ms": _ms(bare_group_paced),
        "bare_pipeline_ms": _ms(bare_piped),
        "bare_pipeline_note": (
            "the ideal group commit offered each round's own taps at their moments: one "
            "thread, no deciding, no thread hop, every row that arrived while a commit ran "
            "taken by the next; from arrival to the COMMIT returned (the wait for the commit "
            "under way included, which the group-commit floors leave out)"
        ),
        "p99_ratio_to_bare_pipeline": round(p99 / piped_p99, 2),
        "qaqpa_added_p99_ms": round((p99 - piped_p99) * 1000, 3),
        "p99_ratio_to_bare_commit": round(ratio_bare, 2),
        "p99_ratio_to_bare_group_commit": round(ratio_group, 2),
        "p99_ratio_to_bare_commit_paced": round(ratio_paced, 2),
        "p99_ratio_to_bare_group_commit_paced": round(ratio_group_paced, 2),
        "durability": {"journal_mode": "wal", "synchronous": "FULL", "same_disk": True},
        "rounds": rounds_raw,
        "peak_rss_mb": round(rss, 1),
        "targets": TARGETS,
        "held": {
            "p99_ratio_to_bare_commit": ratio_bare <= one_max,
            "p99_ratio_to_bare_group_commit": ratio_group <= group_max,
            "p99_ratio_to_bare_commit_paced": ratio_paced <= one_max,
            "p99_ratio_to_bare_group_commit_paced": ratio_group_paced <= group_max,
            "saturated_decisions_per_s": sat_rate >= TARGETS["saturated_decisions_per_s_min"],
            "peak_rss_mb": rss <= TARGETS["peak_rss_mb_max"],
        },
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(
        _edge(args.seconds, rate=RATE, terminals=TERMINALS, students=2000, cards=50_000)
    )
