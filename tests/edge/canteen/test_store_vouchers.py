"""Social-wallet vouchers, QR vouchers and server debits in the real store and pipeline: a
voucher applied once (replay, snapshot), spent by card tap before the balance, two terminals on
one voucher, a QR voucher verified with the issuer's public key and used once, a debit applied
once, a disk failure inside a voucher sale."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import edge.store.canteen
from edge.core.model import Purchase, Tap
from edge.pipeline import Pipeline, PipelineError
from edge.store import EdgeStore
from protocol.messages import (
    BalanceDebit,
    MealServedEvent,
    Reason,
    SyncDelta,
    TerminalKind,
    VoucherGrant,
)
from tests.support.canteen_school import (
    SCHOOL,
    money_invariants,
    open_school,
    qr,
    snapshot,
    voucher_counts,
    voucher_delta,
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def buy(
    student: str, *items: str, token: str | None = None, terminal: str = "canteen-1"
) -> Purchase:
    return Purchase(at=now(), terminal=terminal, student_id=student, items=items, qr_token=token)


async def test_card_voucher_pays_before_the_balance_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = await open_school(path)
    assert await store.apply_delta(voucher_delta(amount=40_000)) is True
    assert await store.apply_delta(voucher_delta(amount=40_000)) is False  # a replay
    async with Pipeline(store) as p:
        tapped = await p.submit(
            Tap(
                at=now(), terminal="canteen-1", kind=TerminalKind.CANTEEN, credential="UID:04D4E5F6"
            )
        )
        first = await p.sell(buy("s-pay", "soup"))  # 30,000: all from the voucher
        second = await p.sell(buy("s-pay", "soup"))  # 10,000 voucher + 20,000 balance
    assert tapped.decision.reason is Reason.PAY
    assert first.decision.vouchers == (("V-s-pay-3", 30_000),)
    assert first.decision.meal == "voucher" and first.decision.balance_after_tiyn == 100_000
    assert second.decision.vouchers == (("V-s-pay-3", 10_000),)
    assert second.decision.meal == "paid" and second.decision.balance_after_tiyn == 80_000
    assert isinstance(second.event, MealServedEvent)
    assert [(v.voucher_id, v.amount_tiyn) for v in second.event.vouchers] == [("V-s-pay-3", 10_000)]
    assert second.event.amount_tiyn == 30_000 and second.event.balance_after_tiyn == 80_000
    await money_invariants(store)
    await store.close()
    reopened = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    try:
        (voucher,) = reopened.state.vouchers("s-pay")
        assert reopened.state.voucher_left(voucher) == 0
        assert reopened.state.balance("s-pay") == 80_000
        await money_invariants(reopened)
    finally:
        await reopened.close()


async def test_a_snapshot_carrying_a_voucher_adds_it_once(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        delta = voucher_delta(amount=40_000)
        await store.apply_delta(delta)
        async with Pipeline(store) as p:
            await p.sell(buy("s-pay", "soup"))
        grant = delta.changes[1]
        assert isinstance(grant, VoucherGrant)
        snap = snapshot().model_copy(update={"version": 9, "vouchers": [grant]})
        await store.apply_snapshot(snap)
        (voucher,) = store.state.vouchers("s-pay")
        assert store.state.voucher_left(voucher) == 10_000  # not 40,000 again
        assert store.state.issuer_keys() != {}  # the key stayed (the snapshot does not list it)
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_voucher_for_another_meal_period_or_expired_does_not_pay(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(voucher_delta(amount=40_000, periods=["breakfast"]))
        async with Pipeline(store) as p:
            sold = await p.sell(buy("s-pay", "soup"))  # the school's period is "lunch"
        assert sold.decision.vouchers == () and sold.decision.balance_after_tiyn == 70_000
        await money_invariants(store)
    finally:
        await store.close()


async def test_two_terminals_on_one_voucher_never_overspend_it(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite", **{"s-pay": 1_000_000})
    try:
        await store.apply_delta(voucher_delta(amount=100_000))
        async with Pipeline(store) as p:
            sales = await asyncio.gather(
                *(p.sell(buy("s-pay", "soup", terminal=f"canteen-{i % 2}")) for i in range(12))
            )
        assert all(s.decision.granted for s in sales)
        assert sum(s.decision.voucher_tiyn for s in sales) == 100_000
        assert (await voucher_counts(store))["V-s-pay-3"] == 100_000
        assert store.state.balance("s-pay") == 1_000_000 - (12 * 30_000 - 100_000)
        await money_invariants(store)
    finally:
        await store.close()


async def test_qr_voucher_pays_once_and_a_forged_one_is_refused(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(voucher_delta(amount=5_000))
        token = qr("Q-1", amount=20_000)
        forged = qr("Q-2", amount=20_000, key=Ed25519PrivateKey.generate())
        async with Pipeline(store) as p:
            paid = await p.sell(buy("s-pay", "soup", token=token))
            again = await p.sell(buy("s-pay", "soup", token=token))
            fake = await p.sell(buy("s-pay", "soup", token=forged))
            other = await p.sell(buy("s-allergy", "soup", token=qr("Q-3")))  # not their QR
        # the QR first (20,000), then the card voucher (5,000), then the balance (5,000)
        assert paid.decision.vouchers == (("Q-1", 20_000), ("V-s-pay-3", 5_000))
        assert paid.decision.balance_after_tiyn == 95_000
        assert isinstance(paid.event, MealServedEvent) and paid.event.qr_token == "Q-1"
        assert again.decision.reason is Reason.VOUCHER_USED
        assert fake.decision.reason is Reason.VOUCHER_INVALID
        assert other.decision.reason is Reason.VOUCHER_INVALID
        assert store.state.balance("s-pay") == 95_000  # refusals debited nothing
        assert await voucher_counts(store) == {"Q-1": 20_000, "V-s-pay-3": 5_000, "tokens": 1}
        await money_invariants(store)
    finally:
        await store.close()


async def test_the_same_qr_at_two_terminals_at_once_pays_once(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(voucher_delta(amount=1))
        token = qr("Q-race", amount=30_000)
        async with Pipeline(store) as p:
            a, b = await asyncio.gather(
                p.sell(buy("s-pay", "soup", token=token, terminal="canteen-1")),
                p.sell(buy("s-pay", "soup", token=token, terminal="canteen-2")),
            )
        assert sorted([a.decision.granted, b.decision.granted]) == [False, True]
        assert Reason.VOUCHER_USED in (a.decision.reason, b.decision.reason)
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_debit_from_the_server_applies_once_even_below_the_overdraft(
    tmp_path: Path,
) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        debit = BalanceDebit(ledger_id="L-77", student_id="s-pay", amount_tiyn=120_000)
        delta = SyncDelta(school=SCHOOL, version=3, base_version=2, changes=[debit, debit])
        assert await store.apply_delta(delta) is True
        assert store.state.balance("s-pay") == -20_000  # once, in full
        again = SyncDelta(school=SCHOOL, version=4, base_version=3, changes=[debit])
        await store.apply_delta(again)
        assert store.state.balance("s-pay") == -20_000
        async with Pipeline(store) as p:
            refused = await p.sell(buy("s-pay", "tea"))
        assert refused.decision.reason is Reason.INSUFFICIENT_BALANCE
        rows = await store.money_rows()
        assert rows["server_debits"] == [("L-77", "s-pay", 120_000, -20_000, 3)]
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_disk_failure_inside_a_voucher_sale_spends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    await store.apply_delta(voucher_delta(amount=40_000))
    real = edge.store.canteen.write_sales
    failures = {"left": 1}

    def failing(db: sqlite3.Connection, sales: list[tuple[Any, ...]], *more: Any) -> None:
        real(db, sales, *more)  # the debit, receipt, voucher spend and token rows are written
        if failures["left"] > 0:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setattr(edge.store.canteen, "write_sales", failing)
    try:
        async with Pipeline(store) as p:
            with pytest.raises(PipelineError, match="injected"):
                await p.sell(buy("s-pay", "soup", token=qr("Q-9", amount=10_000)))
            (voucher,) = store.state.vouchers("s-pay")
            assert store.state.voucher_left(voucher) == 40_000
            assert not store.state.token_redeemed("Q-9")
            assert await voucher_counts(store) == {"tokens": 0}
            sold = await p.sell(buy("s-pay", "soup", token=qr("Q-9", amount=10_000)))
        assert sold.decision.vouchers == (("Q-9", 10_000), ("V-s-pay-3", 20_000))
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_paying_students_tap_is_not_counted_as_a_refusal(tmp_path: Path) -> None:
    from qaqpa.demo import _summary

    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(voucher_delta(amount=40_000))
        async with Pipeline(store) as p:
            card = Tap(at=now(), terminal="canteen-1", kind=TerminalKind.CANTEEN, credential="")
            pay = await p.submit(dataclasses.replace(card, credential="UID:04D4E5F6"))
            blocked = await p.submit(dataclasses.replace(card, credential="UID:04DEAD00"))
            await p.sell(buy("s-pay", "soup"))
        assert pay.decision.reason is Reason.PAY and blocked.decision.reason is Reason.CARD_BLOCKED
        summary = await _summary(store, taps=2, seconds=1.0, releases=0)
        assert summary["denials"] == 1 and summary["denials_by_reason"] == {"card_blocked": 1}
        assert summary["pay_taps"] == 1 and summary["voucher_meals"] == 1
    finally:
        await store.close()


async def test_the_kiosk_scans_a_qr_voucher_and_sells_with_it_once(tmp_path: Path) -> None:
    from edge.kiosk.hub import KioskHub

    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_delta(voucher_delta(amount=1))
        async with Pipeline(store) as p:
            hub = KioskHub(store, p, ["canteen-1"])
            shown = hub.scan_voucher("canteen-1", qr("Q-kiosk", amount=30_000))
            assert shown["screen"] == "pay" and shown["voucher_tiyn"] == 30_001  # QR + card voucher
            sold = await hub.purchase("canteen-1", str(shown["tap_id"]), ["soup"])
            assert sold["screen"] == "served" and sold["voucher_tiyn"] == 30_000
            assert sold["balance_tiyn"] == 100_000  # the balance was not touched
            again = hub.scan_voucher("canteen-1", qr("Q-kiosk", amount=30_000))
            assert again["reason"] == Reason.VOUCHER_USED
            forged = hub.scan_voucher(
                "canteen-1", qr("Q-x", amount=30_000, key=Ed25519PrivateKey.generate())
            )
            assert forged["reason"] == Reason.VOUCHER_INVALID
        await money_invariants(store)
    finally:
        await store.close()


@pytest.mark.parametrize("legacy", [False, True], ids=["nets", "lists"])
async def test_a_snapshot_of_the_money_log_equals_its_deltas(tmp_path: Path, legacy: bool) -> None:
    """Invariant 4 for the new ops: the server's fold of credits, debits, vouchers and issuer
    keys, sent as a snapshot (money as nets, or as the lists sent to an edge of the release
    before), leaves an edge where the deltas 1..N leave another."""
    from protocol.messages import BalanceCredit, StudentUpsert
    from server.sync.state import fold, legacy_money_of

    key_delta = voucher_delta(version=1, amount=9_000)
    versions: list[list[Any]] = [
        list(key_delta.changes),
        [BalanceCredit(ledger_id="L1", student_id="s-pay", amount_tiyn=50_000)],
        [BalanceDebit(ledger_id="L2", student_id="s-pay", amount_tiyn=7_000)],
        [BalanceDebit(ledger_id="L2", student_id="s-pay", amount_tiyn=7_000)],  # sent twice
        list(voucher_delta(version=5, amount=3_000, student_id="s-poor").changes),
    ]
    base = snapshot().model_copy(update={"version": 0})
    by_deltas = await EdgeStore.open(tmp_path / "a.sqlite", school=SCHOOL, device="edge-1")
    by_snapshot = await EdgeStore.open(tmp_path / "b.sqlite", school=SCHOOL, device="edge-1")
    try:
        await by_deltas.apply_snapshot(base)
        for v, changes in enumerate(versions, start=1):
            await by_deltas.apply_delta(
                SyncDelta(school=SCHOOL, version=v, base_version=v - 1, changes=changes)
            )
        roster = [StudentUpsert(student=s) for s in base.students]  # the nets: of the roster
        state = fold([*roster, *(c for changes in versions for c in changes)])
        lists = legacy_money_of(c for changes in versions for c in changes) if legacy else None
        snap = state.snapshot(SCHOOL, len(versions), lists)
        await by_snapshot.apply_snapshot(
            base.model_copy(
                update={
                    "version": len(versions),
                    "balance_totals": snap.balance_totals,
                    "balance_credits": snap.balance_credits,
                    "balance_debits": snap.balance_debits,
                    "vouchers": snap.vouchers,
                    "voucher_issuers": snap.voucher_issuers,
                }
            )
        )
        a, b = await by_deltas.money_rows(), await by_snapshot.money_rows()
        tables = ("balances", "vouchers") + (("server_debits",) if legacy else ())
        for table in tables:
            strip = (lambda r: r[:-1]) if table != "balances" else (lambda r: r)  # sync_version
            assert [strip(r) for r in a[table]] == [strip(r) for r in b[table]], table
        assert by_deltas.state.balance("s-pay") == by_snapshot.state.balance("s-pay") == 43_000
        assert set(by_deltas.state.issuer_keys()) == set(by_snapshot.state.issuer_keys())
    finally:
        await by_deltas.close()
        await by_snapshot.close()
