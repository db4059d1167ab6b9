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
from protocol.messages import Reason
from tests.support.canteen_school import (
    SCHOOL,
    money_invariants,
    open_school,
    qr,
    voucher_counts,
    voucher_delta,
)

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


@pytest.mark.parametrize("point", ["after_decide:5", "after_commit:4", "after_decide:1"])
async def test_kill_during_voucher_sales_spends_nothing_twice_and_loses_nothing(
    tmp_path: Path, point: str
) -> None:
    """Sales paid by a card voucher first, then the balance, some with a QR voucher: killed
    between decide and screen, the store holds each sale whole or not at all, no voucher is
    spent beyond its amount, no QR voucher twice, and what the screen showed is on disk."""
    path = tmp_path / "edge.sqlite"
    store = await open_school(path, **{"s-pay": 500_000})
    await store.apply_delta(voucher_delta(amount=70_000))
    await store.close()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.edge.canteen.sell_proc", str(path), "6", "voucher"],
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
        await money_invariants(store)  # receipts == events, spends == events', debits, tokens
        rows = await store.money_rows()
        assert set(shown) <= {r[0] for r in rows["receipts"]}
        spent = await voucher_counts(store)
        sales = len(rows["receipts"])
        card = spent.get("V-s-pay-3", 0)
        qr_paid = sum(t for v, t in spent.items() if v.startswith("Q-"))
        assert card <= 70_000
        # every sale cost 30,000: the QR vouchers, the card voucher and the balance paid it all
        debited = sum(r[2] for r in rows["debits"])
        assert qr_paid + card + debited == 30_000 * sales
        # the card voucher was used up before the balance paid anything
        if debited:
            assert card == 70_000
        # after the crash: the same QR voucher is refused, a new one pays, the voucher is empty
        async with Pipeline(store) as p:
            now = dt.datetime.now(dt.UTC)
            used = [r[0] for r in rows["voucher_tokens"]]
            if used:
                again = await p.sell(Purchase(now, "canteen-1", "s-pay", ("soup",), qr(used[0])))
                assert again.decision.reason is Reason.VOUCHER_USED
        await money_invariants(store)
    finally:
        await store.close()
