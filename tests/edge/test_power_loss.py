"""Power loss, not only a killed process: every write the store has not synced is lost.

The real store (``EdgeStore``: aiosqlite, the journal thread, migrations, WAL with
``synchronous=FULL``) and the real decision path (``Pipeline`` and the daemon's ``Actuation``,
which opens the gate only after the commit returned) run on a disk that keeps unsynced writes in
memory (``tests/support/powercut.py``, an APSW VFS). Four terminals tap at once; at a random
moment the power is cut: every unsynced write of the database and its WAL is dropped. The gate
file (the relays) is outside that disk: what was actuated stays actuated. The school then
"boots": the store is opened again by the ordinary stdlib SQLite, and we count. Several cuts in a
row, the students tapping again after each boot.

The self-check: the same harness with ``synchronous=OFF`` must lose actuated taps, or the
harness could not see a missing fsync at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

import pytest

from edge.config import load_config
from edge.core.model import Tap
from edge.daemon import Actuation, open_store
from edge.pipeline import Pipeline, utc_now
from hardware.log_gate import LogGate
from simulators.bench_crash import CrashSchool, card, count
from tests.support.powercut import PowerCutVFS, route_sqlite

BROKEN = (
    "actuated_without_record",
    "actuated_wrong_terminal",
    "actuated_wrong_verdict",
    "seq_actuated_twice",
    "seq_gaps",
    "meals_counted_twice",
    "meal_ledger_disagrees",
)


async def rush_then_power_cut(
    school: CrashSchool,
    rng: random.Random,
    cut_after: int,
    synchronous: str | None,
    *,
    mid_commit: bool = False,
) -> tuple[int, int]:
    """Open the store on a power-cut disk, tap on four terminals until ``cut_after`` taps were
    decided, then cut the power (at once, or ``mid_commit``: at one of the next few writes of
    the database or its WAL), let go of everything. Returns (taps decided, writes lost)."""
    vfs = PowerCutVFS()
    cfg = load_config(school.config)
    decided = 0
    with route_sqlite(vfs, school.root, synchronous=synchronous):
        store = await open_store(cfg)  # as the daemon opens it (with the school's card key)
        try:
            async with contextlib.AsyncExitStack() as stack:
                pipeline = await stack.enter_async_context(Pipeline(store))
                acts = []
                for term in cfg.terminals:
                    gate = await stack.enter_async_context(LogGate(term.id, school.actuations))
                    acts.append(Actuation(term, pipeline, utc_now, log_gate=gate))

                async def terminal(act: Actuation) -> None:
                    nonlocal decided
                    while not vfs.cut:
                        i = rng.randrange(school.students)
                        tap = Tap(
                            at=utc_now(),
                            terminal=act.term.id,
                            kind=act.term.kind,
                            direction=act.term.direction,
                            credential=card(i),
                        )
                        await act.tap(tap)  # refused (None) once the power is off
                        decided += 1
                        if decided == cut_after:
                            if mid_commit:
                                vfs.arm(rng.randrange(1, 12))
                            else:
                                vfs.power_cut()

                async with asyncio.TaskGroup() as tg:
                    for act in acts:
                        tg.create_task(terminal(act))
                with contextlib.suppress(Exception):
                    await stack.aclose()
        finally:
            with contextlib.suppress(Exception):
                await store.close()
    assert vfs.cut
    if synchronous is None:  # the store's own settings: its commits synced the WAL
        assert any(f.endswith("-wal") for f in vfs.synced_files), vfs.synced_files
    return decided, vfs.lost_writes


def boot_and_count(school: CrashSchool) -> dict[str, int]:
    """The power is back: the ordinary SQLite opens what the disk kept; count."""
    return count(school, None)


@pytest.fixture
def school(tmp_path: Path) -> CrashSchool:
    s = CrashSchool(tmp_path / "school", students=60)
    s.write(None)  # roster and policy, synced by the stdlib before any power cut
    return s


def test_power_cut_during_a_rush_loses_no_actuated_tap(
    school: CrashSchool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="edge")  # every tap after the cut is refused
    rng = random.Random(1804)
    survived = lost_writes = 0
    for n in range(8):
        _decided, lost = asyncio.run(
            rush_then_power_cut(
                school, rng, rng.randrange(20, 120), synchronous=None, mid_commit=n % 2 == 1
            )
        )
        lost_writes += lost
        counts = boot_and_count(school)
        broken = {k: counts[k] for k in BROKEN if counts[k]}
        assert not broken, (broken, counts)
        assert counts["journal_events"] > survived, "no tap of this round survived the cut"
        survived = counts["journal_events"]
    assert lost_writes > 0, "no cut ever dropped an unsynced write: the test proves nothing"
    assert counts["actuated_open"] > 50 and counts["meals"] > 10
    print(f"\n8 power cuts, {lost_writes} unsynced writes lost: {counts}")


def test_harness_self_check_synchronous_off_loses_actuated_taps(
    school: CrashSchool, caplog: pytest.LogCaptureFixture
) -> None:
    """Without synchronous=FULL a commit returns before its WAL pages are on the disk: the gate
    opened for taps whose records the power cut took. The harness must see that."""
    caplog.set_level(logging.CRITICAL, logger="edge")
    _decided, lost = asyncio.run(rush_then_power_cut(school, random.Random(5), 60, "OFF"))
    counts = boot_and_count(school)
    assert lost > 0
    assert counts["actuations"] >= 60
    assert counts["actuated_without_record"] == counts["actuations"]
    assert counts["journal_events"] == 0
