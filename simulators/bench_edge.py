"""``qaqpa bench edge``: the school daemon's decisions per second and their latency, against
bare fsync'd commits on the same disk measured in the same run."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.core.model import Tap
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from protocol.messages import Direction, TerminalKind
from simulators.bench_support import bench_snapshot, peak_rss_mb, percentile


def bare_commit_db(directory: Path) -> sqlite3.Connection:
    """A table on the same disk, with the journal's pragmas: the floor we compare to."""
    db = sqlite3.connect(directory / "bare.sqlite", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, at_ms INTEGER, payload BLOB)")
    return db


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


async def _edge(
    seconds: float, rate: int, terminals: int, students: int, cards: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("QAQPA_BENCH_DIR")) as tmp:
        root = Path(tmp)
        store = await EdgeStore.open(root / "edge.sqlite", school="S1", device="bench")
        await store.apply_snapshot(bench_snapshot(students, cards))
        gc.collect()
        gc.freeze()  # as the daemon does once its roster is loaded
        bare: list[float] = []
        bare_db = bare_commit_db(root)
        rng = random.Random(1)
        kinds = [TerminalKind.TURNSTILE, TerminalKind.CANTEEN, TerminalKind.LIBRARY]

        def make_tap(n: int) -> Tap:
            card = rng.randrange(int(cards * 1.02))  # ~2 % unknown cards
            return Tap(
                at=dt.datetime.now(dt.UTC),
                terminal=f"t{n % terminals}",
                kind=kinds[n % len(kinds)],
                direction=Direction.IN if rng.random() < 0.5 else Direction.OUT,
                credential=f"EM:{card:010d}",
            )

        latencies: list[float] = []  # open loop at the target rate, from the scheduled time
        saturated = 0  # closed loop: as fast as the terminals can go
        async with Pipeline(store) as pipeline:

            async def one(n: int) -> None:
                t_submit = time.perf_counter()
                await pipeline.submit(make_tap(n))
                latencies.append(time.perf_counter() - t_submit)

            # Taps are released in 5 ms ticks (the loop's timers are millisecond-grained);
            # latency runs from each tap's submission to its committed decision. The run is cut
            # into rounds, each preceded by a round of bare commits, so that both see the same
            # machine (these machines are noisy).
            rounds = 8
            total, sent = int(rate * seconds), 0
            open_time = 0.0
            for r in range(rounds):
                bare += await asyncio.to_thread(bare_commits, bare_db, 250)
                target = total * (r + 1) // rounds
                t_round = time.perf_counter()
                base = sent
                async with asyncio.TaskGroup() as tg:
                    while sent < target:
                        due = min(target, base + int((time.perf_counter() - t_round) * rate))
                        for n in range(sent, due):
                            tg.create_task(one(n))
                        sent = due
                        await asyncio.sleep(0.005)
                open_time += time.perf_counter() - t_round
            bare_db.close()
            open_elapsed = open_time

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
            groups = pipeline.groups
        stats = await store.outbox_stats()
        await store.close()
    elapsed = open_elapsed
    p99, bare_p99 = percentile(latencies, 99), percentile(bare, 99)
    return {
        "bench": "edge",
        "students": students,
        "cards": cards,
        "terminals": terminals,
        "seconds": round(elapsed, 2),
        "offered_taps_per_s": rate,
        "decisions": len(latencies),
        "decisions_per_s": round(len(latencies) / elapsed, 1),
        "saturated_decisions_per_s": round(saturated / closed_elapsed, 1),
        "journaled": stats.last_seq,
        "mean_group": round((len(latencies) + saturated) / max(groups, 1), 2),
        "latency_ms": {
            "p50": round(percentile(latencies, 50) * 1000, 3),
            "p99": round(p99 * 1000, 3),
            "max": round(max(latencies) * 1000, 3),
        },
        "bare_commit_ms": {
            "p50": round(statistics.median(bare) * 1000, 3),
            "p99": round(bare_p99 * 1000, 3),
        },
        "p99_ratio_to_bare_commit": round(p99 / bare_p99, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"p99_ratio_max": 2.0, "decisions_per_s_min": 1000, "peak_rss_mb_max": 150},
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_edge(args.seconds, rate=1200, terminals=12, students=2000, cards=50_000))
