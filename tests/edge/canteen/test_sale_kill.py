"""SIGKILL a process selling paid meals at each step between decide and screen, then count what
the store holds: no debit without its receipt and event, no receipt without its debit, every
sale the screen showed is on disk, and each balance is its credits minus its debits."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core.model import Purchase
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from tests.support.canteen_school import SCHOOL, money_invariants, open_school

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("point", ["after_decide:7", "after_commit:5", "after_decide:1"])
async def test_kill_between_decide_and_screen(tmp_path: Path, point: str) -> None:
    path = tmp_path / "edge.sqlite"
    store = await open_school(path)
    await store.close()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.edge.canteen.sell_proc", str(path), "10"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "QAQPA_CRASH_AT": point},
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    shown = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("SERVED")]
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    try:
        counts = await money_invariants(store)  # debits == receipts == paid events, balances
        rows = await store.money_rows()
        on_disk = {r[0] for r in rows["debits"]}
        assert set(shown) <= on_disk  # record before act: nothing shown that is not durable
        assert counts["debited_tiyn"] == 5_000 * counts["debits"]
        seqs = [e.seq for e in await store.journal_rows()]
        assert seqs == list(range(1, len(seqs) + 1))
        # the store is usable after the crash: a sale goes through
        async with Pipeline(store) as p:
            sold = await p.sell(Purchase(dt.datetime.now(dt.UTC), "canteen-1", "s-pay", ("tea",)))
        assert sold.decision.granted
        assert sold.decision.balance_after_tiyn == 100_000 - 5_000 * (counts["debits"] + 1)
        await money_invariants(store)
    finally:
        await store.close()
