"""``qaqpa bench canteen --json``: a lunch rush of 600 students through 3 canteen terminals of one
school, decision to screen.

Each terminal serves its queue of students as fast as it can (closed loop, the three at once):
the tap goes through the daemon's own canteen path (``Actuation.tap``: pipeline decide + commit,
then the kiosk screen), and the latency runs until the kiosk page's event stream (SSE over real
HTTP from the in-loop uvicorn server) has delivered the screen. A paying student's staff then
confirm one or two dishes over HTTP (``POST /api/purchase``: sale, debit, receipt), measured the
same way until the PAID screen arrives.

Baseline, in the same run: the edge bench's bare decision latency (tap -> committed decision
through ``Pipeline.submit``, no kiosk), for the same students on a second store with the same
roster, in rounds alternating with the kiosk's so both see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import os
import statistics
import tempfile
import time
import zoneinfo
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from edge.config import TerminalConfig
from edge.core.decide import decide
from edge.core.model import Tap
from edge.daemon import Actuation
from edge.kiosk.hub import KioskHub
from edge.kiosk.server import KioskServer
from edge.kiosk.sse import ScreenStream, sign_in
from edge.pipeline import Pipeline, utc_now
from edge.store import EdgeStore
from hardware.config import PcscConfig
from protocol.messages import (
    BalanceCredit,
    CardBinding,
    ConsentKind,
    ConsentRecord,
    MenuItem,
    MenuSet,
    OwnerKind,
    PolicyDoc,
    StudentRecord,
    SyncDelta,
    SyncSnapshot,
    TerminalKind,
)
from simulators.bench_support import peak_rss_mb, percentile
from simulators.edge_school import midday_zone

STUDENTS = 600
TERMINALS = ("canteen-1", "canteen-2", "canteen-3")
ROUNDS = 4
TOKEN = "bench-kiosk-token-1"
TARGET_P95_MS = 300.0
MENU = [
    MenuItem(id="plov", name="Палау", price_tiyn=60_000),
    MenuItem(id="soup", name="Сорпа", price_tiyn=30_000),
    MenuItem(id="bun", name="Бәліш", price_tiyn=15_000, allergens=["gluten"]),
    MenuItem(id="tea", name="Шай", price_tiyn=5_000),
]


def school_sync(zone: str, n: int) -> tuple[SyncSnapshot, SyncDelta]:
    consent = [
        ConsentRecord(kind=ConsentKind.DATA, granted=True, given_by="p", at_ms=0, document="d")
    ]
    students = [
        StudentRecord(
            id=f"s{i}",
            grade=1 + i % 11,  # grades 1-4 eat free: about a third
            class_name=f"{1 + i % 11}A",
            shift=1,
            display_name=f"Оқушы {i}",
            consents=consent,
        )
        for i in range(n)
    ]
    cards = [
        CardBinding(credential=f"EM:{i:010d}", owner_kind=OwnerKind.STUDENT, owner_id=f"s{i}")
        for i in range(n)
    ]
    policy = PolicyDoc.model_validate(
        {
            "timezone": zone,
            "free_meal_grades": [1, 2, 3, 4],
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )
    today = dt.datetime.now(zoneinfo.ZoneInfo(zone)).date().isoformat()
    credits = [
        BalanceCredit(
            ledger_id=f"L{i}",
            student_id=f"s{i}",
            amount_tiyn=1_000 if i % 10 == 9 else 500_000,  # a few cannot pay today
        )
        for i in range(n)
    ]
    snap = SyncSnapshot(
        school="S1", version=1, policy=policy, students=students, staff=[], cards=cards
    )
    delta = SyncDelta(
        school="S1",
        version=2,
        base_version=1,
        changes=[MenuSet(local_date=today, items=MENU), *credits],
    )
    return snap, delta


async def _store(path: Path, snap: SyncSnapshot, delta: SyncDelta) -> EdgeStore:
    store = await EdgeStore.open(path, school="S1", device="bench")
    await store.apply_snapshot(snap)
    await store.apply_delta(delta)
    return store


def canteen_tap(terminal: str, student: int) -> Tap:
    return Tap(
        at=utc_now(), terminal=terminal, kind=TerminalKind.CANTEEN, credential=f"EM:{student:010d}"
    )


def canteen_actuations(
    terminals: Iterable[str], pipeline: Pipeline, hub: KioskHub
) -> dict[str, Actuation]:
    """The daemon's canteen path of each terminal (decide, commit, then the kiosk screen)."""
    return {
        t: Actuation(
            TerminalConfig(
                id=t,
                kind=TerminalKind.CANTEEN,
                reader=PcscConfig(type="pcsc", reader_id=t, reader_name="bench"),
            ),
            pipeline,
            utc_now,
            kiosk=hub,
        )
        for t in terminals
    }


Screens = dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]]


@contextlib.asynccontextmanager
async def kiosk_pages(port: int, cookie: str, terminals: Sequence[str]) -> AsyncIterator[Screens]:
    """The terminals' kiosk pages reading their screens over SSE: each screen, with the time it
    arrived, is put on its terminal's queue. Yields once every page has had its idle screen."""
    received: Screens = {t: asyncio.Queue() for t in terminals}
    streams = [ScreenStream("127.0.0.1", port, t, cookie) for t in terminals]

    async def page(stream: ScreenStream) -> None:
        while True:
            screen = await stream.next()
            received[stream.terminal].put_nowait((time.perf_counter(), screen))

    async with asyncio.TaskGroup() as pages:
        entered = [await s.__aenter__() for s in streams]
        readers = [pages.create_task(page(s)) for s in entered]
        try:
            for t in terminals:  # each page starts with the idle screen
                await received[t].get()
            yield received
        finally:
            for task in readers:
                task.cancel()
            for s in entered:
                await s.__aexit__(None, None, None)


async def buy(http: httpx.AsyncClient, terminal: str, screen: dict[str, Any], i: int) -> None:
    """The staff confirm one or two dishes for the student on the PAY screen."""
    items = ["plov", "tea"] if i % 2 else ["soup"]
    r = await http.post(
        "/api/purchase",
        json={"terminal": terminal, "tap_id": screen["tap_id"], "items": items},
    )
    r.raise_for_status()


async def run_rush(root: Path, students: int = STUDENTS) -> dict[str, Any]:
    snap, delta = school_sync(midday_zone(), students)
    kiosk_store = await _store(root / "kiosk.sqlite", snap, delta)
    bare_store = await _store(root / "bare.sqlite", snap, delta)
    queues = {t: list(range(n, students, len(TERMINALS))) for n, t in enumerate(TERMINALS)}
    to_screen: list[float] = []
    purchase_to_screen: list[float] = []
    bare: list[float] = []
    screens: Counter[str] = Counter()
    t_kiosk = 0.0
    try:
        async with Pipeline(kiosk_store) as pipeline, Pipeline(bare_store) as bare_pipeline:
            hub = KioskHub(kiosk_store, pipeline, TERMINALS)
            async with (
                KioskServer(hub, "127.0.0.1", 0, TOKEN) as server,
                httpx.AsyncClient(base_url=server.url) as http,
            ):
                login = await sign_in(http, TOKEN)
                acts = canteen_actuations(TERMINALS, pipeline, hub)

                async def kiosk_terminal(terminal: str, students: list[int]) -> None:
                    inbox = received[terminal]
                    for i, student in enumerate(students):
                        t0 = time.perf_counter()
                        await acts[terminal].tap(canteen_tap(terminal, student))
                        t1, screen = await inbox.get()
                        to_screen.append(t1 - t0)
                        screens[screen["screen"]] += 1
                        if screen["screen"] != "pay":
                            continue
                        t2 = time.perf_counter()
                        await buy(http, terminal, screen, i)
                        t3, sold = await inbox.get()
                        purchase_to_screen.append(t3 - t2)
                        screens[sold["screen"]] += 1

                async def bare_terminal(terminal: str, students: list[int]) -> None:
                    for student in students:
                        t0 = time.perf_counter()
                        await bare_pipeline.submit(canteen_tap(terminal, student))
                        bare.append(time.perf_counter() - t0)

                async with kiosk_pages(server.port, login.cookie, TERMINALS) as received:
                    for r in range(ROUNDS):
                        part = {
                            t: q[r * len(q) // ROUNDS : (r + 1) * len(q) // ROUNDS]
                            for t, q in queues.items()
                        }
                        async with asyncio.TaskGroup() as tg:
                            for t, batch in part.items():
                                tg.create_task(bare_terminal(t, batch))
                        started = time.perf_counter()
                        async with asyncio.TaskGroup() as tg:
                            for t, batch in part.items():
                                tg.create_task(kiosk_terminal(t, batch))
                        t_kiosk += time.perf_counter() - started
        policy = kiosk_store.policy
        assert policy is not None
        pure: list[float] = []
        for n in range(2_000):
            tap = canteen_tap("canteen-1", n % students)
            t0 = time.perf_counter()
            decide(policy, bare_store.state, tap)
            pure.append(time.perf_counter() - t0)
        rows = await kiosk_store.money_rows()
    finally:
        await kiosk_store.close()
        await bare_store.close()

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 2)

    p95, bare_p95 = percentile(to_screen, 95), percentile(bare, 95)
    return {
        "bench": "canteen",
        "students": students,
        "terminals": len(TERMINALS),
        "seconds": round(t_kiosk, 2),
        "screens": dict(screens.most_common()),
        "sales": len(rows["receipts"]),
        "debited_tiyn": sum(r[2] for r in rows["debits"]),
        "tap_to_screen_ms": {
            "p50": ms(to_screen, 50),
            "p95": ms(to_screen, 95),
            "max": ms(to_screen, 100),
        },
        "purchase_to_screen_ms": {
            "p50": ms(purchase_to_screen, 50),
            "p95": ms(purchase_to_screen, 95),
            "max": ms(purchase_to_screen, 100),
        },
        "bare_decision_ms": {"p50": ms(bare, 50), "p95": ms(bare, 95), "max": ms(bare, 100)},
        "pure_decide_us": {"median": round(statistics.median(pure) * 1e6, 1)},
        "p95_ratio_to_bare_decision": round(p95 / bare_p95, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"tap_to_screen_p95_ms_max": TARGET_P95_MS},
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    with tempfile.TemporaryDirectory(dir=os.environ.get("QAQPA_BENCH_DIR")) as tmp:
        return asyncio.run(run_rush(Path(tmp)))
