"""``qaqpa demo``: one simulated school on this machine, through the real daemon path.

Readers are FIFOs read by the line-reader driver, the gates are simulated relays, the store and
pipeline are the real ones; a scenario (``simulators.school``) plays a school day on a fast clock.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import os
import sys
import time
import zoneinfo
from pathlib import Path
from typing import Any

from edge.config import LineReaderConfig, LogGateConfig, TerminalConfig
from edge.core.model import Tap
from edge.daemon import run_terminal
from edge.pipeline import Pipeline
from edge.replay import load_policy
from edge.roster import roster_records
from edge.store import EdgeStore
from protocol.messages import DeniedEvent, Direction, MealServedEvent, TerminalKind
from simulators.school import Action, make_roster, school_day

log = logging.getLogger(__name__)
ZONE = zoneinfo.ZoneInfo("Asia/Almaty")
DAY_START = dt.time(6, 30)
DAY_END = dt.time(18, 40)
TERMINALS: dict[str, tuple[TerminalKind, Direction | None]] = {
    "gate-1-in": (TerminalKind.TURNSTILE, Direction.IN),
    "gate-1-out": (TerminalKind.TURNSTILE, Direction.OUT),
    "gate-2-in": (TerminalKind.TURNSTILE, Direction.IN),
    "gate-2-out": (TerminalKind.TURNSTILE, Direction.OUT),
    "canteen-1": (TerminalKind.CANTEEN, None),
    "canteen-2": (TerminalKind.CANTEEN, None),
    "library-1": (TerminalKind.LIBRARY, None),
}
POLICY = Path(__file__).resolve().parent.parent / "examples" / "policy.toml"


def _fresh_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("edge.sqlite*"):
        stale.unlink()


class SimClock:
    """Maps real time onto a school day played ``speed`` times faster."""

    def __init__(self, day: dt.date, speed: float) -> None:
        self.start = dt.datetime.combine(day, DAY_START, ZONE)
        self.speed = speed
        self.t0 = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(time.monotonic() - self.t0) * self.speed)

    def real_delay(self, local: dt.time) -> float:
        target = dt.datetime.combine(self.start.date(), local, ZONE)
        return (target - self()).total_seconds() / self.speed


async def _play(
    actions: list[Action], clock: SimClock, fifos: dict[str, int], pipeline: Pipeline
) -> None:
    for act in actions:
        delay = clock.real_delay(act.at)
        if delay > 0:
            await asyncio.sleep(delay)
        if act.credential is not None:
            os.write(fifos[act.terminal], (act.credential + "\n").encode())
        else:  # a manual pass keyed in at the turnstile's keypad
            kind, direction = TERMINALS[act.terminal]
            await pipeline.submit(
                Tap(
                    at=clock(),
                    terminal=act.terminal,
                    kind=kind,
                    direction=direction,
                    manual_student=act.manual_student,
                    staff_credential=act.staff_credential,
                    pin=act.pin,
                )
            )


async def _progress(clock: SimClock, store: EdgeStore) -> None:
    while True:
        await asyncio.sleep(2)
        print(f"  {clock():%H:%M}  events journaled: {store.last_seq}", file=sys.stderr)


async def run_demo(
    *, duration: float | None, students: int = 300, directory: Path = Path("var/demo")
) -> dict[str, Any]:
    await asyncio.to_thread(_fresh_dir, directory)
    today = dt.datetime.now(ZONE).date()
    roster_file = make_roster(students, today=today)
    roster = roster_records(roster_file, source="demo", now=None)
    store = await EdgeStore.open(directory / "edge.sqlite", school="DEMO", device="demo-edge")
    await store.import_roster(roster.students, roster.staff, roster.cards, load_policy(POLICY))
    day_seconds = duration or 120.0
    span = dt.datetime.combine(today, DAY_END) - dt.datetime.combine(today, DAY_START)
    clock = SimClock(today, span.total_seconds() / day_seconds)
    actions = school_day(roster_file)
    print(
        f"Qaqpa demo: school DEMO, {students} students, {len(TERMINALS)} terminals; a school day "
        f"in {day_seconds:.0f} s (store {directory / 'edge.sqlite'})",
        file=sys.stderr,
    )
    fifos: dict[str, int] = {}
    terminals = []
    for tid, (kind, direction) in TERMINALS.items():
        path = directory / f"{tid}.fifo"
        if not path.exists():
            os.mkfifo(path)
        fifos[tid] = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        terminals.append(
            TerminalConfig(
                id=tid,
                kind=kind,
                direction=direction,
                reader=LineReaderConfig(type="line", path=path),
                gate=LogGateConfig(type="log", path=directory / "actuations.log"),
            )
        )
    started = time.monotonic()
    try:
        async with Pipeline(store) as pipeline, asyncio.TaskGroup() as tg:
            running = [
                tg.create_task(run_terminal(t, pipeline, store, clock), name=f"terminal-{t.id}")
                for t in terminals
            ]
            running.append(tg.create_task(_progress(clock, store), name="progress"))
            await _play(actions, clock, fifos, pipeline)
            await asyncio.sleep(max(0.0, clock.real_delay(DAY_END)) + 0.5)
            for task in running:
                task.cancel()
        return await _summary(store, len(actions), time.monotonic() - started)
    finally:
        for fd in fifos.values():
            os.close(fd)
        await store.close()


async def _summary(store: EdgeStore, taps: int, seconds: float) -> dict[str, Any]:
    events = await store.journal_rows()
    kinds = collections.Counter(e.kind for e in events)
    denials = collections.Counter(e.reason.value for e in events if isinstance(e, DeniedEvent))
    meals = collections.Counter(e.meal.value for e in events if isinstance(e, MealServedEvent))
    stats = await store.outbox_stats()
    return {
        "seconds": round(seconds, 1),
        "taps": taps,
        "grants": sum(n for k, n in kinds.items() if k not in ("denied", "alarm", "not_passed")),
        "denials": sum(denials.values()),
        "denials_by_reason": dict(denials.most_common()),
        "entries": kinds.get("entry", 0),
        "exits": kinds.get("exit", 0),
        "manual_passes": kinds.get("manual_pass", 0),
        "library_visits": kinds.get("library_visit", 0),
        "free_meals": meals.get("free", 0),
        "events_journaled": stats.last_seq,
        "events_unsent": stats.backlog,
    }
