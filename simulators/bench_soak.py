"""``qaqpa bench soak --json --minutes N``: a school day compressed into N minutes, everything on.

One process, one event loop, as the daemon runs: the edge store and pipeline, 12 turnstile
terminals offering taps as a school day does (the morning arrival rush, lessons, the lunch
rush, the second shift's arrival, the afternoon exit rush), three canteen terminals through the
kiosk (the kiosk server open, three kiosk pages reading their screens over SSE, paying students
confirmed over HTTP), and the outbox uploading all along through Mosquitto to the server's ingest
workers into a scratch PostgreSQL database (as ``qaqpa bench drain``). Faces are off.

Reports the tap-to-committed p99 of every 10-second window (turnstile taps; the kiosk's
tap-to-screen p99 beside it), the worst window against the median window, the resident memory
and open file descriptors at the start of the day (after a warm-up) and at its end, and what the
uplink delivered. Targets: the worst window's p99 <= 3x the median window's; RSS growth <= 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from edge.core.model import Tap
from edge.kiosk.hub import KioskHub
from edge.kiosk.server import KioskServer
from edge.kiosk.sse import sign_in
from edge.pipeline import Pipeline, utc_now
from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from protocol.messages import Direction, TerminalKind
from simulators.bench_canteen import (
    MENU,
    TOKEN,
    buy,
    canteen_actuations,
    canteen_tap,
    kiosk_pages,
    school_sync,
)
from simulators.bench_drain import bench_edge
from simulators.bench_ingest import worker_processes
from simulators.bench_support import percentile
from simulators.edge_school import midday_zone

STUDENTS = 1200
GATES = 12
CANTEENS = ("canteen-1", "canteen-2", "canteen-3")
WINDOW_S = 10.0
TARGETS = {"worst_to_median_window_p99_max": 3.0, "rss_growth_pct_max": 5.0}
# (start, end) as fractions of the day, and the turnstile taps/s offered then
DAY = (
    (0.00, 0.10, 250.0, "morning arrival"),
    (0.10, 0.35, 15.0, "lessons"),
    (0.35, 0.45, 15.0, "lunch"),
    (0.45, 0.55, 250.0, "second shift arrives, first leaves"),
    (0.55, 0.90, 15.0, "lessons"),
    (0.90, 1.00, 250.0, "exit"),
)
LUNCH = (0.35, 0.45)
assert [p[1] for p in DAY[:-1]] == [p[0] for p in DAY[1:]] and DAY[-1][1] == 1.0
assert MENU  # the canteen's menu of the day comes with the school (bench_canteen)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rate(fraction: float) -> float:
    for start, end, rate, _ in DAY:
        if start <= fraction < end:
            return rate
    return 0.0


async def _day(root: Path, minutes: float, sync_settings: SyncSettings, key: Any) -> dict[str, Any]:
    snap, delta = school_sync(midday_zone(), STUDENTS)
    store = await EdgeStore.open(
        root / "edge.sqlite", school="S1", device="edge", outbox_capacity=1_000_000
    )
    await store.apply_snapshot(snap)
    await store.apply_delta(delta)
    gc.collect()
    gc.freeze()  # as the daemon does once its roster is loaded
    rng = random.Random(7)
    gate_lat: list[tuple[float, float]] = []  # (finished at, seconds)
    kiosk_lat: list[tuple[float, float]] = []
    screens: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    day_s = minutes * 60
    try:
        async with (
            Pipeline(store) as pipeline,
            EdgeSync(store, sync_settings, key) as sync,
        ):
            hub = KioskHub(store, pipeline, CANTEENS)
            async with (
                KioskServer(hub, "127.0.0.1", 0, TOKEN) as server,
                httpx.AsyncClient(base_url=server.url) as http,
            ):
                login = await sign_in(http, TOKEN)
                acts = canteen_actuations(CANTEENS, pipeline, hub)

                async def gate_tap() -> None:
                    n = rng.randrange(STUDENTS)
                    tap = Tap(
                        at=utc_now(),
                        terminal=f"gate-{n % GATES}",
                        kind=TerminalKind.TURNSTILE,
                        direction=Direction.IN if rng.random() < 0.5 else Direction.OUT,
                        credential=f"EM:{n:010d}",
                    )
                    t0 = time.perf_counter()
                    try:
                        await pipeline.submit(tap)
                    except Exception as err:  # counted, and the day goes on
                        errors[type(err).__name__] += 1
                        return
                    t1 = time.perf_counter()
                    gate_lat.append((t1, t1 - t0))

                async def canteen(terminal: str, t_start: float) -> None:
                    q = inbox[terminal]
                    i = 0
                    while True:
                        f = (time.perf_counter() - t_start) / day_s
                        if f >= 1.0:
                            return
                        if not LUNCH[0] <= f < LUNCH[1]:
                            await asyncio.sleep(0.2)
                            continue
                        student = rng.randrange(STUDENTS)
                        t0 = time.perf_counter()
                        await acts[terminal].tap(canteen_tap(terminal, student))
                        t1, screen = await q.get()
                        kiosk_lat.append((t1, t1 - t0))
                        screens[screen["screen"]] += 1
                        if screen["screen"] == "pay":
                            await buy(http, terminal, screen, i)
                            _, sold = await q.get()
                            screens[sold["screen"]] += 1
                        i += 1
                        await asyncio.sleep(rng.uniform(0.1, 0.4))  # the next in the queue

                async with kiosk_pages(server.port, login.cookie, CANTEENS) as inbox:
                    async with asyncio.TaskGroup() as warm:  # warm-up, not measured
                        for _ in range(200):
                            warm.create_task(gate_tap())
                    gate_lat.clear()
                    rss_start, fds_start = rss_mb(), open_fds()
                    t_start = time.perf_counter()
                    sent = 0.0
                    async with asyncio.TaskGroup() as tg:
                        for t in CANTEENS:
                            tg.create_task(canteen(t, t_start))
                        last = t_start
                        while (now := time.perf_counter()) - t_start < day_s:
                            sent += _rate((now - t_start) / day_s) * (now - last)
                            last = now
                            while sent >= 1:
                                tg.create_task(gate_tap())
                                sent -= 1
                            await asyncio.sleep(0.005)
                    day_elapsed = time.perf_counter() - t_start
                    gc.collect()
                    rss_end, fds_end = rss_mb(), open_fds()
            backlog_at_end = (await sync.status()).backlog
            t_drain = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(120):
                    while (await sync.status()).backlog:  # noqa: ASYNC110  (as bench drain)
                        await asyncio.sleep(0.1)
            drain_s = time.perf_counter() - t_drain
            backlog_after = (await sync.status()).backlog
            batches = sync.batches_sent
        journaled = store.last_seq
    finally:
        await store.close()

    windows = []
    n_windows = max(1, int(day_elapsed // WINDOW_S))
    for w in range(n_windows):
        lo, hi = t_start + w * WINDOW_S, t_start + (w + 1) * WINDOW_S
        mine = [s for at, s in gate_lat if lo <= at < hi]
        kiosk = [s for at, s in kiosk_lat if lo <= at < hi]
        windows.append(
            {
                "window": w,
                "taps": len(mine),
                "p99_ms": round(percentile(mine, 99) * 1000, 3) if mine else None,
                "kiosk_taps": len(kiosk),
                "kiosk_p99_ms": round(percentile(kiosk, 99) * 1000, 3) if kiosk else None,
            }
        )
    p99s = [w["p99_ms"] for w in windows if w["p99_ms"] is not None]
    worst, median = max(p99s), statistics.median(p99s)
    growth = (rss_end - rss_start) / rss_start * 100
    return {
        "bench": "soak",
        "minutes": minutes,
        "day_seconds": round(day_elapsed, 1),
        "students": STUDENTS,
        "gates": GATES,
        "canteen_terminals": len(CANTEENS),
        "faces": False,
        "day": [{"from": a, "to": b, "gate_taps_per_s": r, "what": what} for a, b, r, what in DAY],
        "gate_taps": len(gate_lat),
        "kiosk_taps": len(kiosk_lat),
        "screens": dict(screens.most_common()),
        "errors": dict(errors),
        "window_s": WINDOW_S,
        "windows": windows,
        "window_p99_ms": {"worst": worst, "median": median},
        "worst_to_median_window_p99": round(worst / median, 2),
        "kiosk_tap_to_screen_ms": {
            "p50": round(percentile([s for _, s in kiosk_lat], 50) * 1000, 2),
            "p99": round(percentile([s for _, s in kiosk_lat], 99) * 1000, 2),
        },
        "rss_mb": {"start": round(rss_start, 1), "end": round(rss_end, 1)},
        "rss_growth_pct": round(growth, 2),
        "open_fds": {"start": fds_start, "end": fds_end},
        "uplink": {
            "journaled": journaled,
            "batches_sent": batches,
            "backlog_at_end_of_day": backlog_at_end,
            "seconds_to_empty_after": round(drain_s, 2),
            "backlog_left": backlog_after,
        },
        "targets": TARGETS,
        "held": {
            "worst_to_median_window_p99": worst / median
            <= TARGETS["worst_to_median_window_p99_max"],
            "rss_growth_pct": growth <= TARGETS["rss_growth_pct_max"],
        },
    }


def bench_soak(*, minutes: float, mqtt_port: int = 1883, workers: int = 1) -> dict[str, Any]:
    with (
        bench_edge("soak", "S1", mqtt_port=mqtt_port) as (tmp, edge),
        worker_processes(edge.server, workers),
    ):
        return asyncio.run(_day(tmp, minutes, edge.sync, edge.key))


def bench(args: argparse.Namespace) -> dict[str, Any]:
    return bench_soak(minutes=args.minutes, mqtt_port=args.mqtt_port, workers=args.workers)
