"""Canteen money at the school: balances credited by the downlink, debits and receipts of sales
(committed with the sale's event by the journal), and the answers audits and kiosks read."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class Sale:
    """A paid meal's money: the debit and the receipt that commit with its event."""

    student_id: str
    amount_tiyn: int  # the price paid: vouchers + balance
    balance_after_tiyn: int
    lines: tuple[tuple[str, str, int, int], ...]  # item id, name, unit price, portions
    vouchers: tuple[tuple[str, int], ...] = ()  # (voucher id, tiyn) paid before the balance
    token: tuple[str, str] | None = None  # a QR voucher redeemed: (token id, issuer)

    @property
    def balance_paid_tiyn(self) -> int:
        return self.amount_tiyn - sum(t for _, t in self.vouchers)


class CanteenMixin(StoreBase):
    def set_overdraft(self, tiyn: int) -> None:
        """The canteen overdraft from the edge config (0: a balance never goes below zero)."""
        self.overdraft_tiyn = tiyn
        if self.policy_doc is not None:
            self._set_policy(self.policy_doc)

    async def money_settled(self) -> None:
        """Returns when no downlink credit is being applied (the pipeline waits here)."""
        await self._money_settled.wait()

    def money_is_settled(self) -> bool:
        """No downlink credit is being applied now (the pipeline decides on without waiting)."""
        return self._money_settled.is_set()

    async def money_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Balances, credits, debits, receipts and the snapshots' adjustments as stored, for
        audits and tests."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, order in (
            ("balances", "student_id"),
            ("balance_credits", "ledger_id"),
            ("debits", "seq"),
            ("receipts", "seq"),
            ("vouchers", "voucher_id"),
            ("voucher_spends", "seq"),
            ("voucher_tokens", "token_id"),
            ("server_debits", "ledger_id"),
            ("downlink_money", "student_id"),
            ("balance_adjustments", "id"),
        ):
            async with self._db.execute(f"SELECT * FROM {table} ORDER BY {order}") as cur:
                out[table] = [tuple(r) for r in await cur.fetchall()]
        return out

    async def receipt(self, seq: int) -> dict[str, Any] | None:
        """The receipt of the sale journaled at ``seq``."""
        async with self._db.execute(
            "SELECT student_id, local_date, period, terminal, at_ms, lines, amount_tiyn, "
            "balance_after_tiyn FROM receipts WHERE seq = ?",
            (seq,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        sid, day, period, terminal, at_ms, lines, amount, after = row
        return {
            "seq": seq,
            "student_id": sid,
            "local_date": day,
            "period": period,
            "terminal": terminal,
            "at_ms": at_ms,
            "lines": json.loads(lines),
            "amount_tiyn": amount,
            "balance_after_tiyn": after,
        }

    async def meal_ledger(self) -> list[tuple[str, str, str, int]]:
        """(student, local date, period, seq) of every meal served, for audits and tests."""
        async with self._db.execute(
            "SELECT student_id, local_date, period, seq FROM meal_ledger ORDER BY seq"
        ) as cur:
            return [(a, b, c, int(d)) for a, b, c, d in await cur.fetchall()]


def write_sales(
    db: sqlite3.Connection,
    sales: list[tuple[Any, ...]],
    spends: Sequence[tuple[Any, ...]] = (),
    tokens: Sequence[tuple[Any, ...]] = (),
) -> None:
    """Debit, balance and receipt of each sale, the vouchers it spent and the QR voucher it
    used up (inside the journal's transaction: all of it or none of it)."""
    from_vouchers: dict[int, int] = {}
    for seq, _vid, _sid, tiyn in spends:
        from_vouchers[seq] = from_vouchers.get(seq, 0) + tiyn
    for seq, sid, _day, _period, _term, _at, _lines, amount, after in sales:
        paid = amount - from_vouchers.get(seq, 0)
        if paid > 0 or not from_vouchers.get(seq):
            db.execute("INSERT INTO debits VALUES (?, ?, ?, ?)", (seq, sid, paid, after))
            db.execute(
                "INSERT INTO balances VALUES (?, ?) ON CONFLICT (student_id) DO UPDATE "
                "SET balance_tiyn = balance_tiyn + excluded.balance_tiyn",
                (sid, -paid),
            )
    db.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sales)
    if spends:
        db.executemany("INSERT INTO voucher_spends VALUES (?, ?, ?, ?)", spends)
    if tokens:  # the primary key refuses a second redemption even if a decision missed it
        db.executemany("INSERT INTO voucher_tokens VALUES (?, ?, ?, ?)", tokens)
