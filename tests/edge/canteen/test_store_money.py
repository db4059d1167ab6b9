"""Money in the real store and pipeline: credits from the downlink (idempotent), sales that commit
debit + receipt + meal ledger row + event in one transaction, two terminals spending one balance
concurrently, and injected failures between decide and commit."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import edge.store
import edge.store.canteen
from edge.core.model import Purchase, Tap
from edge.pipeline import Pipeline, PipelineError, Sold
from edge.store import EdgeStore
from protocol.messages import (
    BalanceCredit,
    DeniedEvent,
    MealServedEvent,
    ParentLimitsSet,
    Reason,
    SyncDelta,
    TerminalKind,
)
from tests.support.canteen_school import (
    SCHOOL,
    money_delta,
    money_invariants,
    open_school,
    snapshot,
    today,
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def buy(student: str, *items: str, terminal: str = "canteen-1") -> Purchase:
    return Purchase(at=now(), terminal=terminal, student_id=student, items=items)


def tap(credential: str, terminal: str = "canteen-1") -> Tap:
    return Tap(at=now(), terminal=terminal, kind=TerminalKind.CANTEEN, credential=credential)


async def test_credit_is_idempotent_on_the_ledger_id_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite"
    store = await open_school(path)
    assert store.state.balance("s-pay") == 100_000
    assert await store.apply_delta(money_delta()) is False  # a replayed version changes nothing
    again = SyncDelta(
        school=SCHOOL,
        version=3,
        base_version=2,
        changes=[
            BalanceCredit(ledger_id="L-s-pay-2", student_id="s-pay", amount_tiyn=100_000),
            BalanceCredit(ledger_id="L-s-pay-3", student_id="s-pay", amount_tiyn=7),
        ],
    )
    assert await store.apply_delta(again) is True
    assert store.state.balance("s-pay") == 100_007  # L-s-pay-2 was applied already
    await money_invariants(store)
    async with Pipeline(store) as p:
        sold = await p.sell(buy("s-pay", "soup", "tea", "tea"))
    assert sold.decision.granted and sold.decision.balance_after_tiyn == 60_007
    await store.close()
    reopened = await EdgeStore.open(path, school=SCHOOL, device="edge-1")
    try:
        assert reopened.state.balance("s-pay") == 60_007
        assert reopened.state.spent("s-pay", today()) == 40_000
        assert reopened.state.limits("s-allergy").daily_cap_tiyn == 50_000
        assert [d.id for d in reopened.state.menu(today())] == ["soup", "porridge", "bun", "tea"]
        receipt = await reopened.receipt(sold.event.seq)
        assert receipt is not None
        assert receipt["lines"] == [
            {"id": "soup", "name": "Сорпа", "price_tiyn": 30_000, "portions": 1},
            {"id": "tea", "name": "Шай", "price_tiyn": 5_000, "portions": 2},
        ]
        assert receipt["amount_tiyn"] == 40_000
        await money_invariants(reopened)
    finally:
        await reopened.close()


async def test_tap_then_sale_records_the_tap_and_the_paid_meal(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as p:
            free = await p.submit(tap("UID:04A1B2C3"))
            pay = await p.submit(tap("UID:04D4E5F6"))
            poor = await p.submit(tap("UID:0411AA22"))
            blocked = await p.submit(tap("UID:04DEAD00"))
            sold = await p.sell(buy("s-pay", "soup"))
            allergic = await p.sell(buy("s-allergy", "porridge"))
            capped = await p.sell(buy("s-allergy", "soup", "soup"))
        assert free.decision.granted and free.decision.meal == "free"
        assert (pay.decision.reason, pay.decision.balance_tiyn) == (Reason.PAY, 100_000)
        assert isinstance(pay.event, DeniedEvent) and pay.event.reason is Reason.PAY
        assert poor.decision.reason is Reason.INSUFFICIENT_BALANCE
        assert blocked.decision.reason is Reason.CARD_BLOCKED
        assert isinstance(sold.event, MealServedEvent)
        assert (sold.event.meal, sold.event.amount_tiyn, sold.event.items) == (
            "paid",
            30_000,
            ["soup"],
        )
        assert sold.event.balance_after_tiyn == 70_000
        assert allergic.decision.reason is Reason.ALLERGEN_BLOCKED
        assert capped.decision.reason is Reason.DAILY_CAP_EXCEEDED
        assert isinstance(capped.event, DeniedEvent)
        counts = await money_invariants(store)
        assert counts == {"debits": 1, "debited_tiyn": 30_000}
        assert ("s-pay", today().isoformat(), "lunch", sold.event.seq) in await store.meal_ledger()
    finally:
        await store.close()


async def test_two_terminals_never_spend_the_same_money_twice(tmp_path: Path) -> None:
    """Two canteen terminals sell to one student at the same moment, over and over: the single
    writer decides every sale on top of the ones still committing, so exactly what the balance
    covers is sold, never more, and every sale saw a different balance."""
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        results: list[Sold] = []
        async with Pipeline(store) as p:

            async def terminal(name: str) -> None:
                sales = [p.sell(buy("s-pay", "soup", terminal=name)) for _ in range(6)]
                results.extend(await asyncio.gather(*sales))

            async with asyncio.TaskGroup() as tg:
                tg.create_task(terminal("canteen-1"))
                tg.create_task(terminal("canteen-2"))
        granted = [r for r in results if r.decision.granted]
        assert len(results) == 12
        assert len(granted) == 3  # 100_000 tiyn buys three soups of 30_000, no overdraft
        assert {r.decision.reason for r in results if not r.decision.granted} == {
            Reason.INSUFFICIENT_BALANCE
        }
        assert sorted(r.decision.balance_after_tiyn for r in granted) == [10_000, 40_000, 70_000]
        assert store.state.balance("s-pay") == 10_000
        assert await money_invariants(store) == {"debits": 3, "debited_tiyn": 90_000}
    finally:
        await store.close()


async def test_overdraft_from_the_config_is_the_only_way_below_zero(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    store.set_overdraft(20_000)
    try:
        async with Pipeline(store) as p:
            sold = [await p.sell(buy("s-pay", "soup")) for _ in range(5)]
        assert [s.decision.granted for s in sold] == [True, True, True, True, False]
        assert store.state.balance("s-pay") == -20_000
        await money_invariants(store)
    finally:
        await store.close()


@pytest.mark.parametrize("where", ["after_debit", "after_receipt"])
async def test_a_failure_between_decide_and_commit_leaves_no_half_sale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """The disk fails inside the sale's transaction (after the debit row, or after the receipt):
    nothing of the sale stays, the screen is never told "served", and the next sale works."""
    store = await open_school(tmp_path / "edge.sqlite")
    real = edge.store.canteen.write_sales
    failures = {"left": 1}

    def failing(db: sqlite3.Connection, sales: list[tuple[Any, ...]], *more: Any) -> None:
        if failures["left"] > 0:
            failures["left"] -= 1
            if where == "after_debit":
                seq, sid, *_rest, amount, after = sales[0]
                db.execute("INSERT INTO debits VALUES (?, ?, ?, ?)", (seq, sid, amount, after))
            else:
                real(db, sales, *more)
            raise sqlite3.OperationalError("disk I/O error (injected)")
        real(db, sales, *more)

    monkeypatch.setattr(edge.store.canteen, "write_sales", failing)
    try:
        async with Pipeline(store) as p:
            with pytest.raises(PipelineError, match="injected"):
                await p.sell(buy("s-pay", "soup"))
            assert await money_invariants(store) == {"debits": 0, "debited_tiyn": 0}
            assert store.state.balance("s-pay") == 100_000
            after = await p.sell(buy("s-pay", "soup"))
        assert after.decision.granted and after.decision.balance_after_tiyn == 70_000
        assert await money_invariants(store) == {"debits": 1, "debited_tiyn": 30_000}
        seqs = [e.seq for e in await store.journal_rows()]
        assert seqs == list(range(1, len(seqs) + 1))  # the failed sale's seq was given out again
    finally:
        await store.close()


async def test_a_credit_arriving_during_a_rush_is_neither_lost_nor_misstated(
    tmp_path: Path,
) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as p:
            sales = [asyncio.ensure_future(p.sell(buy("s-pay", "tea"))) for _ in range(15)]
            for v in range(3, 8):
                credit = SyncDelta(
                    school=SCHOOL,
                    version=v,
                    base_version=v - 1,
                    changes=[
                        BalanceCredit(ledger_id=f"top-{v}", student_id="s-pay", amount_tiyn=1_000)
                    ],
                )
                await store.apply_delta(credit)
                await asyncio.sleep(0)
            sold = await asyncio.gather(*sales)
        assert all(s.decision.granted for s in sold)
        assert store.state.balance("s-pay") == 100_000 + 5 * 1_000 - 15 * 5_000
        rows = await store.money_rows()
        by_seq = {r[0]: r[3] for r in rows["debits"]}
        for s in sold:  # the balance the event states is the one its debit left
            assert isinstance(s.event, MealServedEvent)
            assert by_seq[s.event.seq] == s.event.balance_after_tiyn
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_snapshot_carries_credits_once_and_limits(tmp_path: Path) -> None:
    """An edge too far behind gets a snapshot: a credit of a delta it never saw arrives in it,
    one it already applied is not credited again, and the limits are replaced when carried."""
    store = await open_school(tmp_path / "edge.sqlite")  # L-s-pay-2 (100_000) applied
    try:
        snap = snapshot().model_copy(
            update={
                "version": 9,
                "balance_credits": [
                    BalanceCredit(ledger_id="L-s-pay-2", student_id="s-pay", amount_tiyn=100_000),
                    BalanceCredit(ledger_id="L-s-pay-5", student_id="s-pay", amount_tiyn=2_500),
                ],
                "parent_limits": [ParentLimitsSet(student_id="s-pay", daily_cap_tiyn=1_000)],
            }
        )
        await store.apply_snapshot(snap)
        assert store.state.balance("s-pay") == 102_500
        assert store.state.limits("s-pay").daily_cap_tiyn == 1_000
        assert store.state.limits("s-allergy").allergen_blocks == frozenset()  # replaced
        await store.apply_snapshot(snap.model_copy(update={"parent_limits": None}))
        assert store.state.balance("s-pay") == 102_500
        assert store.state.limits("s-pay").daily_cap_tiyn == 1_000  # not carried: kept
        await money_invariants(store)
    finally:
        await store.close()


async def test_a_snapshot_keeps_the_days_menu(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        await store.apply_snapshot(snapshot().model_copy(update={"version": 9}))
        assert [d.id for d in store.state.menu(today())] == ["soup", "porridge", "bun", "tea"]
        async with Pipeline(store) as p:
            assert (await p.submit(tap("UID:04D4E5F6"))).decision.reason is Reason.PAY
    finally:
        await store.close()


async def test_a_snapshot_brings_the_days_menu_set_at_the_server(tmp_path: Path) -> None:
    """An edge brought up to date by a snapshot (first enrolment, or far behind) gets the
    dated menus the server set: before, the snapshot's undated menu was ignored and the school
    sold nothing to paying students all day (issue 14)."""
    from protocol.messages import MenuItem, MenuSet

    store = await open_school(tmp_path / "edge.sqlite")
    try:
        tomorrow = today() + dt.timedelta(days=1)
        plov = MenuItem(id="plov", name="Палау", price_tiyn=65_000)
        snap = snapshot().model_copy(
            update={
                "version": 9,
                "menus": [
                    MenuSet(local_date=today().isoformat(), items=[plov]),
                    MenuSet(local_date=tomorrow.isoformat(), items=[plov]),
                ],
            }
        )
        await store.apply_snapshot(snap)
        assert [d.id for d in store.state.menu(today())] == ["plov"]
        assert [d.id for d in store.state.menu(tomorrow)] == ["plov"]
    finally:
        await store.close()


async def test_an_alarm_journaled_while_a_group_waits_never_overtakes_it(tmp_path: Path) -> None:
    """The pipeline prepares a group (a sale, seq 1) and commits it from a task that runs a
    moment later; a reader alarm journaled in that moment (seq 2) used to reach the journal
    thread first and be refused ("does not follow"), and the numbers given out again under the
    group still committing. Groups now queue for the thread in the order their numbers were
    given."""
    from protocol.messages import AlarmCode

    store = await open_school(tmp_path / "edge.sqlite")
    try:
        sale = MealServedEvent(
            seq=1,
            at_ms=0,
            terminal="canteen-1",
            student_id="s-free",
            period="lunch",
            local_date=today().isoformat(),
            meal="free",
        )
        prep = store.prepare_journal([edge.store.JournalEntry(sale)])
        alarm = asyncio.create_task(
            store.journal_alarm("canteen-1", AlarmCode.READER_OFFLINE, True, "")
        )
        await asyncio.sleep(0.05)  # the alarm reaches the journal thread meanwhile
        (committed,) = await store.commit_journal(prep)
        assert (committed.seq, await alarm) == (1, 2)
        assert [e.seq for e in await store.journal_rows()] == [1, 2]
    finally:
        await store.close()
