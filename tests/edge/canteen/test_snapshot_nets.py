"""Snapshots carry the canteen's money as one net per student (issue 19): the edge moves each
balance by the difference from the net it has applied from the downlink. Money is never lost nor
doubled, whatever came before: deltas, the same snapshot again, a replayed delta, credits and
debits since, students added and removed, a snapshot of the release before (every credit as a
list) after one of nets, and a kill between the write and memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.store import EdgeStore
from protocol.messages import (
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    BalanceTotalsSet,
    StudentRemove,
    SyncDelta,
    SyncSnapshot,
)
from tests.support.canteen_school import SCHOOL, money_invariants, open_school, snapshot

ROOT = Path(__file__).resolve().parents[3]
# open_school: L-s-pay-2 100,000, L-s-poor-2 3,000, L-s-allergy-2 100,000 at version 2
OPENED = {"s-pay": 100_000, "s-poor": 3_000, "s-allergy": 100_000}


def nets_snapshot(
    version: int, nets: dict[str, int], base: SyncSnapshot | None = None
) -> SyncSnapshot:
    return (base or snapshot()).model_copy(
        update={
            "version": version,
            "balance_totals": [BalanceTotal(student_id=s, net_tiyn=n) for s, n in nets.items()],
        }
    )


def delta(version: int, *changes: object, base: int | None = None) -> SyncDelta:
    return SyncDelta.model_validate(
        {
            "school": SCHOOL,
            "version": version,
            "base_version": version - 1 if base is None else base,
            "changes": list(changes),
        }
    )


def credit(lid: str, sid: str, tiyn: int) -> BalanceCredit:
    return BalanceCredit(ledger_id=lid, student_id=sid, amount_tiyn=tiyn)


def balances(store: EdgeStore) -> dict[str, int]:
    return {s: store.state.balance(s) for s in ("s-pay", "s-poor", "s-allergy", "s-free")}


async def test_a_snapshot_of_the_nets_already_applied_moves_nothing(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(delta(3, credit("L9", "s-pay", 5_000)))
        before = balances(store)
        snap = nets_snapshot(3, {**OPENED, "s-pay": 105_000})
        await store.apply_snapshot(snap)
        assert balances(store) == before
        await store.apply_snapshot(snap)  # the same snapshot again
        assert balances(store) == before
        assert (await store.money_rows())["balance_adjustments"] == []
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_snapshot_brings_the_money_of_the_deltas_it_replaces_once(tmp_path: Path) -> None:
    """Credits and a debit sent while the edge was away arrive as the net; then the same
    snapshot again, a replayed delta and a later delta each count once."""
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        nets = {**OPENED, "s-pay": 100_000 + 50_000 - 7_000, "s-free": 20_000}
        await store.apply_snapshot(nets_snapshot(9, nets))
        assert balances(store) == {**OPENED, "s-pay": 143_000, "s-free": 20_000}
        await store.apply_snapshot(nets_snapshot(9, nets))
        assert store.state.balance("s-pay") == 143_000
        # a delta of the versions the snapshot replaced, replayed: ignored by version
        assert await store.apply_delta(delta(5, credit("L5", "s-pay", 50_000), base=4)) is False
        # the next delta counts once, by its ledger id; sent twice, once
        nxt = delta(
            10,
            credit("L10", "s-pay", 1_000),
            BalanceDebit(ledger_id="L11", student_id="s-free", amount_tiyn=500),
        )
        assert await store.apply_delta(nxt) is True
        assert (store.state.balance("s-pay"), store.state.balance("s-free")) == (144_000, 19_500)
        # a later snapshot whose nets include that delta: nothing moves
        nets2 = {**nets, "s-pay": 144_000, "s-free": 19_500}
        await store.apply_snapshot(nets_snapshot(11, nets2))
        assert (store.state.balance("s-pay"), store.state.balance("s-free")) == (144_000, 19_500)
        rows = await store.money_rows()
        assert [(r[1], r[2], r[3]) for r in rows["balance_adjustments"]] == [
            (9, "s-pay", 43_000),
            (9, "s-free", 20_000),
        ]
        await money_invariants(store)
    finally:
        await store.close()


async def test_sales_stay_out_of_the_net(tmp_path: Path) -> None:
    """The net is money from the centre; what the canteen sold here is the edge's own."""
    from edge.pipeline import Pipeline
    from tests.edge.canteen.test_store_money import buy  # the sale helpers

    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as p:
            assert (await p.sell(buy("s-pay", "soup"))).decision.granted  # 30,000
        await store.apply_snapshot(nets_snapshot(9, {**OPENED, "s-pay": 110_000}))
        assert store.state.balance("s-pay") == 110_000 - 30_000
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_debit_beyond_the_balance_and_a_negative_net(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_snapshot(nets_snapshot(9, {**OPENED, "s-poor": -4_000}))
        assert store.state.balance("s-poor") == -4_000
        await money_invariants(store)
    finally:
        await store.close()


async def test_students_added_removed_and_not_listed(tmp_path: Path) -> None:
    """A student new to the school gets their net; one removed keeps what the edge holds
    (the balance is not the roster's); one a snapshot does not list is left as it is."""
    store = await open_school(tmp_path / "edge.sqlite", extra_students=1)
    try:
        await store.apply_delta(delta(3, StudentRemove(student_id="s-poor")))
        roster = snapshot(extra_students=1)
        await store.apply_snapshot(nets_snapshot(9, {"s-pay": 100_000, "p0": 12_000}, base=roster))
        assert store.state.balance("p0") == 12_000
        assert store.state.balance("s-poor") == 3_000  # not listed: untouched
        assert store.state.balance("s-allergy") == 100_000
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_change_of_nets_in_a_delta(tmp_path: Path) -> None:
    """The op the server's compacted log holds, applied as a delta would be."""
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        ops = BalanceTotalsSet(totals=[BalanceTotal(student_id="s-pay", net_tiyn=101_000)])
        await store.apply_delta(delta(3, ops))
        assert store.state.balance("s-pay") == 101_000
        await money_invariants(store)
    finally:
        await store.close()


async def test_lists_of_the_release_before_after_nets_double_nothing(tmp_path: Path) -> None:
    """A server of the release before (during a rolling upgrade) sends every credit as a list
    after a server of this release sent nets: the credits the nets brought, without their ids,
    are not credited again."""
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_snapshot(nets_snapshot(9, {**OPENED, "s-pay": 150_000}))
        assert store.state.balance("s-pay") == 150_000
        lists = snapshot().model_copy(
            update={
                "version": 10,
                "balance_credits": [
                    credit("L-s-pay-2", "s-pay", 100_000),
                    credit("L-s-pay-4", "s-pay", 50_000),  # brought by the nets
                    credit("L-s-pay-10", "s-pay", 2_000),  # new
                    credit("L-s-poor-2", "s-poor", 3_000),
                    credit("L-s-allergy-2", "s-allergy", 100_000),
                ],
            }
        )
        await store.apply_snapshot(lists)
        assert balances(store) == {**OPENED, "s-pay": 152_000, "s-free": 0}
        await store.apply_snapshot(lists)
        assert store.state.balance("s-pay") == 152_000
        await money_invariants(store)
    finally:
        await store.close()


@pytest.mark.parametrize("point", ["downlink_writing", "downlink_written"])
async def test_kill_while_a_snapshot_moves_money(tmp_path: Path, point: str) -> None:
    """SIGKILLed inside the snapshot's transaction (nothing of it stays) or after it committed,
    before memory had the money (the store has it all): opened again, the balances are those on
    disk, and the same snapshot applied again moves nothing more."""
    path = tmp_path / "edge.sqlite"
    store = await open_school(path)
    await store.close()
    snap = nets_snapshot(9, {**OPENED, "s-pay": 150_000, "s-free": 7_000})
    snap_file = tmp_path / "snap.json"
    snap_file.write_text(snap.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-m", "tests.edge.canteen.snapshot_proc", str(path), str(snap_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "QAQPA_CRASH_AT": f"{point}:1"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "APPLIED" not in proc.stdout
    store = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    try:
        committed = point == "downlink_written"
        assert await store.sync_version() == (9 if committed else 2)
        assert store.state.balance("s-pay") == (150_000 if committed else 100_000)
        assert store.state.balance("s-free") == (7_000 if committed else 0)
        await money_invariants(store)
        await store.apply_snapshot(snap)
        assert (store.state.balance("s-pay"), store.state.balance("s-free")) == (150_000, 7_000)
        await money_invariants(store)
    finally:
        await store.close()
