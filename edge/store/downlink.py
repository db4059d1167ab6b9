"""The downlink: roster, cards, consents, policy, menus and money from the server (or the school
itself) as versioned deltas and snapshots, each applied in one transaction, replays ignored
(DESIGN invariant 4). Memory follows once the transaction commits."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from edge.state import build_state
from edge.store.base import StoreBase
from edge.store.errors import StoreError, SyncGap
from protocol.messages import (
    CardBinding,
    CategoryMembership,
    Change,
    PolicyDoc,
    StaffRecord,
    StudentRecord,
    SyncDelta,
    SyncSnapshot,
)

_T = TypeVar("_T")


@dataclass
class _DownlinkEffects:
    """What a downlink transaction changed that memory must follow once it commits."""

    # (student, amount) of credits (+) and server debits (-) applied for the first time
    credits: list[tuple[str, int]]


class DownlinkMixin(StoreBase):
    async def sync_version(self) -> int:
        return self._sync_version

    async def apply_snapshot(self, snap: SyncSnapshot) -> None:
        """Replace roster, cards, staff and policy wholesale, atomically; add the credits it
        carries (once per ledger id) and replace the parents' limits when it carries them."""
        async with self.write_lock:
            money = bool(snap.balance_credits or snap.balance_debits)
            await self._money_transaction(_replace_all, snap, money)
            self._after_downlink(snap.policy, snap.version)
        await self._reload_roster()

    async def apply_delta(self, delta: SyncDelta) -> bool:
        """Apply a delta atomically. False for a replay (nothing changes); SyncGap if ahead."""
        async with self.write_lock:
            if delta.version <= self._sync_version:
                return False
            if delta.base_version != self._sync_version:
                raise SyncGap(
                    f"delta {delta.base_version}->{delta.version} does not follow "
                    f"version {self._sync_version}"
                )
            policy = await self._apply_changes(delta)
            self._after_downlink(policy, delta.version)
        await self._reload_roster()
        return True

    async def apply_local(self, changes: Sequence[Change]) -> None:
        """Apply changes made at the school itself (a school not enrolled with a server, the
        demo): the same code as a delta's, atomically, without a downlink version."""
        delta = SyncDelta(
            school=self.school,
            version=self._sync_version + 1,
            base_version=self._sync_version,
            changes=list(changes),
        )
        async with self.write_lock:
            policy = await self._apply_changes(delta, keep_version=True)
            if policy is not None:
                self._set_policy(policy)
        await self._reload_roster()

    async def _apply_changes(
        self, delta: SyncDelta, *, keep_version: bool = False
    ) -> PolicyDoc | None:
        """The delta's transaction; a credit waits for the sales being committed and holds new
        ones until it is in memory (the balance a sale states is the one its debit leaves)."""
        money = any(c.op in ("balance_credit", "balance_debit") for c in delta.changes)
        policy: PolicyDoc | None = await self._money_transaction(
            _apply_delta, delta, money, keep_version
        )
        return policy

    async def _money_transaction(
        self, fn: Callable[..., _T], message: Any, money: bool, *args: Any
    ) -> _T:
        """``fn(db, message, effects, *args)`` as one transaction; with credits in it, it waits
        for the sales being committed and holds new ones until memory has the credits."""
        effects = _DownlinkEffects(credits=[])
        if money:
            self._money_settled.clear()
        try:
            if money:
                await self._journal_idle.wait()  # groups decided, not yet committed
            result = await self._write(fn, message, effects, *args)
            for sid, amount in effects.credits:
                self.state.balances[sid] = self.state.balances.get(sid, 0) + amount
        finally:
            self._money_settled.set()
        return result

    async def import_roster(
        self,
        students: Iterable[StudentRecord],
        staff: Iterable[StaffRecord],
        cards: Iterable[CardBinding],
        policy: PolicyDoc | None,
    ) -> None:
        """Load a roster file locally (before the school is enrolled with a server)."""
        await self.apply_snapshot(
            SyncSnapshot(
                school=self.school,
                version=self._sync_version,
                policy=policy or self.policy_doc,
                students=list(students),
                staff=list(staff),
                cards=list(cards),
            )
        )

    async def install_policy(self, doc: PolicyDoc) -> None:
        """A locally configured policy (a school not yet enrolled with a server)."""
        async with self.write_lock:
            await self._write(_put_policy, doc)
            self._set_policy(doc)

    def _after_downlink(self, policy: PolicyDoc | None, version: int) -> None:
        self._sync_version = version
        if policy is not None:
            self._set_policy(policy)

    async def _reload_roster(self) -> None:
        students, staff, cards = await self._roster_records()
        fresh = build_state(students, staff, cards)
        self.display_names = {s.id: s.display_name for s in students}
        self.state.students = fresh.students
        self.state.staff_by_id = fresh.staff_by_id
        self.state.cards = fresh.cards
        await self._load_canteen_setup()
        for cb in self._change_listeners:
            cb()


def _set_version(db: sqlite3.Connection, version: int) -> None:
    db.execute("UPDATE meta SET value = ? WHERE key = 'sync_version'", (str(version),))


def _put_policy(db: sqlite3.Connection, doc: PolicyDoc) -> None:
    db.execute(
        "INSERT OR REPLACE INTO meta VALUES ('policy', ?)",
        (doc.model_dump_json(by_alias=True),),
    )


def _put_student(db: sqlite3.Connection, s: StudentRecord) -> None:
    db.execute(
        "INSERT INTO students VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "grade = excluded.grade, class_name = excluded.class_name, shift = excluded.shift, "
        "display_name = excluded.display_name",
        (s.id, s.grade, s.class_name, s.shift, s.display_name),
    )
    db.execute("DELETE FROM consents WHERE student_id = ?", (s.id,))
    db.executemany(
        "INSERT INTO consents VALUES (?, ?, ?, ?, ?, ?)",
        [(s.id, c.kind.value, int(c.granted), c.given_by, c.at_ms, c.document) for c in s.consents],
    )
    _put_categories(db, s.id, s.categories)


def _put_categories(
    db: sqlite3.Connection, student_id: str, cats: list[CategoryMembership]
) -> None:
    db.execute("DELETE FROM categories WHERE student_id = ?", (student_id,))
    db.executemany(
        "INSERT OR REPLACE INTO categories VALUES (?, ?, ?, ?, ?)",
        [(student_id, c.code, c.valid_from, c.valid_to, c.document) for c in cats],
    )


def _put_staff(db: sqlite3.Connection, t: StaffRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO staff VALUES (?, ?, ?, ?, ?)",
        (t.id, json.dumps(t.roles), json.dumps(t.classes), t.pin_hash, t.display_name),
    )


def _apply_change(
    db: sqlite3.Connection, change: Any, effects: _DownlinkEffects, version: int
) -> PolicyDoc | None:
    op = change.op
    if op == "student_upsert":
        _put_student(db, change.student)
    elif op == "student_remove":
        db.execute(
            "DELETE FROM cards WHERE owner_id = ? AND owner_kind = 'student'",
            (change.student_id,),
        )
        db.execute("DELETE FROM students WHERE id = ?", (change.student_id,))
    elif op == "staff_upsert":
        _put_staff(db, change.staff)
    elif op == "staff_remove":
        db.execute(
            "DELETE FROM cards WHERE owner_id = ? AND owner_kind = 'staff'", (change.staff_id,)
        )
        db.execute("DELETE FROM staff WHERE id = ?", (change.staff_id,))
    elif op == "card_bind":
        c = change.card
        db.execute(
            "INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?)",
            (c.credential.upper(), c.owner_kind.value, c.owner_id, c.blocked_reason),
        )
    elif op == "card_block":
        db.execute(
            "UPDATE cards SET blocked_reason = ? WHERE credential = ?",
            (change.reason, change.credential.upper()),
        )
    elif op == "card_unbind":
        db.execute("DELETE FROM cards WHERE credential = ?", (change.credential.upper(),))
    elif op == "consent_set":
        c = change.consent
        db.execute(
            "INSERT OR REPLACE INTO consents VALUES (?, ?, ?, ?, ?, ?)",
            (change.student_id, c.kind.value, int(c.granted), c.given_by, c.at_ms, c.document),
        )
    elif op == "categories_set":
        _put_categories(db, change.student_id, change.categories)
    elif op == "policy_set":
        _put_policy(db, change.policy)
        return change.policy  # type: ignore[no-any-return]
    elif op == "menu_set":
        db.execute(
            "INSERT OR REPLACE INTO menu VALUES (?, ?)",
            (change.local_date, json.dumps([i.model_dump() for i in change.items])),
        )
    elif op == "balance_credit":
        cur = db.execute(
            "INSERT OR IGNORE INTO balance_credits VALUES (?, ?, ?, ?)",
            (change.ledger_id, change.student_id, change.amount_tiyn, version),
        )
        if cur.rowcount == 1:  # the same ledger entry again credits nothing
            db.execute(
                "INSERT INTO balances VALUES (?, ?) ON CONFLICT (student_id) DO UPDATE "
                "SET balance_tiyn = balance_tiyn + excluded.balance_tiyn",
                (change.student_id, change.amount_tiyn),
            )
            effects.credits.append((change.student_id, change.amount_tiyn))
    elif op == "balance_debit":
        _apply_debit(db, change, effects, version)
    elif op == "voucher_grant":
        db.execute(  # once per voucher id: a replay or a snapshot never adds it twice
            "INSERT OR IGNORE INTO vouchers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                change.voucher_id,
                change.issuer,
                change.student_id,
                change.amount_tiyn,
                change.valid_from,
                change.valid_to,
                json.dumps(sorted(change.meal_periods)),
                version,
            ),
        )
    elif op == "voucher_issuer_key":
        db.execute(
            "INSERT OR REPLACE INTO voucher_issuers VALUES (?, ?, ?)",
            (change.issuer, change.public_key, int(change.revoked)),
        )
    elif op == "parent_limits_set":
        db.execute(
            "INSERT OR REPLACE INTO parent_limits VALUES (?, ?, ?)",
            (change.student_id, json.dumps(sorted(change.allergen_blocks)), change.daily_cap_tiyn),
        )
    else:  # pragma: no cover - the protocol's union is closed
        raise StoreError(f"unknown change {op!r}")
    return None


def _apply_debit(
    db: sqlite3.Connection, change: Any, effects: _DownlinkEffects, version: int
) -> None:
    """A server debit (a manager's negative correction), once per ledger id, in full: the
    server's ledger has booked it, so refusing it here would leave the two apart for good. A
    balance taken below the overdraft sells nothing until it is topped up (money.py)."""
    row = db.execute(
        "SELECT balance_tiyn FROM balances WHERE student_id = ?", (change.student_id,)
    ).fetchone()
    after = (int(row[0]) if row else 0) - change.amount_tiyn
    cur = db.execute(
        "INSERT OR IGNORE INTO server_debits VALUES (?, ?, ?, ?, ?)",
        (change.ledger_id, change.student_id, change.amount_tiyn, after, version),
    )
    if cur.rowcount == 1:
        db.execute(
            "INSERT INTO balances VALUES (?, ?) ON CONFLICT (student_id) DO UPDATE "
            "SET balance_tiyn = balance_tiyn + excluded.balance_tiyn",
            (change.student_id, -change.amount_tiyn),
        )
        effects.credits.append((change.student_id, -change.amount_tiyn))


def _replace_all(db: sqlite3.Connection, snap: SyncSnapshot, effects: _DownlinkEffects) -> None:
    # Menus are dated and replaced date by date (menu_set); the snapshot's undated ``menu`` cannot
    # replace them, so they stay: a snapshot in the morning must not stop the day's sales.
    for table in ("consents", "categories", "cards", "staff", "students"):
        db.execute(f"DELETE FROM {table}")
    for s in snap.students:
        _put_student(db, s)
    for t in snap.staff:
        _put_staff(db, t)
    db.executemany(
        "INSERT INTO cards VALUES (?, ?, ?, ?)",
        [
            (c.credential.upper(), c.owner_kind.value, c.owner_id, c.blocked_reason)
            for c in snap.cards
        ],
    )
    if snap.policy is not None:
        _put_policy(db, snap.policy)
    for credit in snap.balance_credits:  # each ledger id once, whatever came before
        _apply_change(db, credit, effects, snap.version)
    for change in [*snap.balance_debits, *snap.vouchers, *snap.voucher_issuers]:
        _apply_change(db, change, effects, snap.version)  # each id once, as in a delta
    if snap.parent_limits is not None:
        db.execute("DELETE FROM parent_limits")
        for limits in snap.parent_limits:
            _apply_change(db, limits, effects, snap.version)
    _set_version(db, snap.version)


def _apply_delta(
    db: sqlite3.Connection, delta: SyncDelta, effects: _DownlinkEffects, keep_version: bool
) -> PolicyDoc | None:
    policy: PolicyDoc | None = None
    for change in delta.changes:
        policy = _apply_change(db, change, effects, delta.version) or policy
    if not keep_version:
        _set_version(db, delta.version)
    return policy
