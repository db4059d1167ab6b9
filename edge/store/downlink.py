"""The downlink: roster, cards, consents, policy, menus and money from the server (or the school
itself) as versioned deltas and snapshots, each applied in one transaction, replays ignored
(DESIGN invariant 4). Memory follows once the transaction commits."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from edge.core.cardkey import CardKeyOf, plain
from edge.faults import crash_point
from edge.state import build_state
from edge.store.base import StoreBase
from edge.store.errors import StoreError, SyncGap
from edge.store.lending import put_lending
from protocol.messages import (
    CardBinding,
    CardRecord,
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
    """What a downlink transaction changed that memory must follow once it commits (and how
    the store keeps card numbers, for the changes that carry one)."""

    # (student, amount) of credits (+) and server debits (-) applied for the first time
    credits: list[tuple[str, int]]
    card_key: CardKeyOf = plain


class DownlinkMixin(StoreBase):
    async def sync_version(self) -> int:
        return self._sync_version

    async def apply_snapshot(self, snap: SyncSnapshot) -> None:
        """Replace roster, cards, staff and policy wholesale, atomically; add the credits it
        carries (once per ledger id) and replace the parents' limits when it carries them."""
        async with self.write_lock:
            money = bool(snap.balance_credits or snap.balance_debits or snap.balance_totals)
            await self._money_transaction(_replace_all, snap, money)
            await self._reload_roster()
            self._after_downlink(snap.policy, snap.version)

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
            await self._reload_roster()
            self._after_downlink(policy, delta.version)
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
        money = any(
            c.op in ("balance_credit", "balance_debit", "balance_totals") for c in delta.changes
        )
        policy: PolicyDoc | None = await self._money_transaction(
            _apply_delta, delta, money, keep_version
        )
        return policy

    async def _money_transaction(
        self, fn: Callable[..., _T], message: Any, money: bool, *args: Any
    ) -> _T:
        """``fn(db, message, effects, *args)`` as one transaction; with credits in it, it waits
        for the sales being committed and holds new ones until memory has the credits."""
        effects = _DownlinkEffects(credits=[], card_key=self.card_key_of)
        if money:
            self._money_settled.clear()
        try:
            if money:
                await self._journal_idle.wait()  # groups decided, not yet committed
            result = await self._write(fn, message, effects, *args)
            if effects.credits:
                crash_point("downlink_written")
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

    async def card_record(self, card_ref: str) -> tuple[str, str, str | None] | None:
        """(owner kind, owner id, blocked reason) of the card this store holds under a record."""
        async with self._db.execute(
            "SELECT owner_kind, owner_id, blocked_reason FROM cards WHERE card_ref = ?",
            (card_ref,),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else (str(row[0]), str(row[1]), row[2])

    async def cards_of(self, owner_kind: str, owner_id: str) -> list[tuple[str | None, str | None]]:
        """(record, blocked reason) of each card bound here to a person: never the number."""
        async with self._db.execute(
            "SELECT card_ref, blocked_reason FROM cards WHERE owner_kind = ? AND owner_id = ? "
            "ORDER BY rowid",
            (owner_kind, owner_id),
        ) as cur:
            return [(r, b) for r, b in await cur.fetchall()]

    async def block_cards_here(self, card_keys: Sequence[str], reason: str) -> None:
        """Block cards by the store's keys of their numbers (the teacher's page: a lost card,
        already journaled for the centre), atomically; memory follows."""
        async with self.write_lock:
            await self._write(_block_keys, list(card_keys), reason)
        await self._reload_roster()

    async def reload_cards(self) -> None:
        """Memory follows a card change made at the desk (``edge.cards``)."""
        await self._reload_roster()

    async def install_policy(self, doc: PolicyDoc) -> None:
        """A locally configured policy (a school not yet enrolled with a server)."""
        async with self.write_lock:
            await self._write(_put_policy, doc)
            self._set_policy(doc)

    def _after_downlink(self, policy: PolicyDoc | None, version: int) -> None:
        """The version is applied once memory holds it (roster reloaded, under the write lock):
        whoever reads ``sync_version()`` finds its cards in ``state``, and two applies never
        leave an older roster in memory under a newer version."""
        self._sync_version = version
        if policy is not None:
            self._set_policy(policy)

    async def _reload_roster(self) -> None:
        students, staff, cards = await self._roster_records()
        fresh = build_state(students, staff, cards)
        self.display_names = {s.id: s.display_name for s in students}
        self.staff_names = {t.id: t.display_name for t in staff}
        self.state.students = fresh.students
        self.state.staff_by_id = fresh.staff_by_id
        self.state.cards = fresh.cards
        self.state.card_key = self.card_key_of
        await self._load_canteen_setup()
        for cb in self._change_listeners:
            cb()


def _block_keys(db: sqlite3.Connection, keys: list[str], reason: str) -> None:
    db.executemany(
        "UPDATE cards SET blocked_reason = ? WHERE card_key = ?", [(reason, k) for k in keys]
    )


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
        db.execute("DELETE FROM staff_pins WHERE staff_id = ?", (change.staff_id,))
    elif op == "card_bind":  # from a centre that still holds the school's numbers
        _bind(db, change.card, effects.card_key)
    elif op == "card_block":
        db.execute(
            "UPDATE cards SET blocked_reason = ? WHERE card_key = ?",
            (change.reason, effects.card_key(change.credential)),
        )
    elif op == "card_unbind":
        db.execute("DELETE FROM cards WHERE card_key = ?", (effects.card_key(change.credential),))
    elif op == "card_refs":  # the move: the record of each number this store holds
        db.executemany(
            "UPDATE cards SET card_ref = ? WHERE card_key = ?",
            [(r.card_ref, effects.card_key(r.credential)) for r in change.refs],
        )
    elif op == "card_record":  # a record the store holds a number for; others: not here
        _follow_record(db, change.record)
    elif op == "card_record_block":
        db.execute(
            "UPDATE cards SET blocked_reason = ? WHERE card_ref = ?",
            (change.reason, change.card_ref),
        )
    elif op == "card_record_unbind":
        db.execute("DELETE FROM cards WHERE card_ref = ?", (change.card_ref,))
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
            _move_balance(db, effects, change.student_id, change.amount_tiyn)
    elif op == "balance_debit":
        _apply_debit(db, change, effects, version)
    elif op == "balance_totals":
        _true_up(db, effects, {t.student_id: t.net_tiyn for t in change.totals}, version)
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
    elif op == "lending_set":
        put_lending(db, change)
    elif op == "parent_limits_set":
        db.execute(
            "INSERT OR REPLACE INTO parent_limits VALUES (?, ?, ?)",
            (change.student_id, json.dumps(sorted(change.allergen_blocks)), change.daily_cap_tiyn),
        )
    else:  # pragma: no cover - the protocol's union is closed
        raise StoreError(f"unknown change {op!r}")
    return None


def _bind(db: sqlite3.Connection, c: CardBinding, key_of: CardKeyOf) -> None:
    db.execute(
        "INSERT INTO cards (card_key, owner_kind, owner_id, blocked_reason) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (card_key) DO UPDATE SET owner_kind = excluded.owner_kind, "
        "owner_id = excluded.owner_id, blocked_reason = excluded.blocked_reason",
        (key_of(c.credential), c.owner_kind.value, c.owner_id, c.blocked_reason),
    )


def _follow_record(db: sqlite3.Connection, r: CardRecord) -> None:
    db.execute(
        "UPDATE cards SET owner_kind = ?, owner_id = ?, blocked_reason = ? WHERE card_ref = ?",
        (
            r.owner_kind.value,
            r.owner_id,
            (r.blocked_reason or "blocked") if r.status == "blocked" else None,
            r.card_ref,
        ),
    )


def _replace_cards(db: sqlite3.Connection, snap: SyncSnapshot, key_of: CardKeyOf) -> None:
    """A snapshot's cards. From a school whose cards have not moved (no records): the numbers
    it carries, wholesale (a card issued at this desk stays: its record is on its way). Otherwise the store keeps the numbers it holds: a card stays when the
    snapshot carries its number or its record, or when it was issued here and the centre has not
    acknowledged its event yet; the records set owners and statuses."""
    if snap.card_records is None:  # the numbers the centre bound, wholesale; desk cards stay
        db.execute("DELETE FROM cards WHERE issued_seq IS NULL")
        for c in snap.cards:
            _bind(db, c, key_of)
        return
    (acked,) = db.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
    numbers = {key_of(c.credential) for c in snap.cards}
    refs = {r.card_ref for r in snap.card_records}
    gone = [
        (k,)
        for k, ref, seq in db.execute("SELECT card_key, card_ref, issued_seq FROM cards")
        if k not in numbers and ref not in refs and (seq is None or seq <= int(acked))
    ]
    db.executemany("DELETE FROM cards WHERE card_key = ?", gone)
    for c in snap.cards:
        _bind(db, c, key_of)
    db.executemany(
        "UPDATE cards SET card_ref = ? WHERE card_key = ?",
        [(r.card_ref, key_of(r.credential)) for r in snap.card_refs or []],
    )
    for r in snap.card_records:
        _follow_record(db, r)


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
        _move_balance(db, effects, change.student_id, -change.amount_tiyn)


def _move_balance(db: sqlite3.Connection, effects: _DownlinkEffects, sid: str, amount: int) -> None:
    """Money from the downlink: the balance and the net applied move together (memory follows
    once the transaction commits)."""
    for table, column in (("balances", "balance_tiyn"), ("downlink_money", "net_tiyn")):
        db.execute(
            f"INSERT INTO {table} VALUES (?, ?) ON CONFLICT (student_id) DO UPDATE "
            f"SET {column} = {column} + excluded.{column}",
            (sid, amount),
        )
    effects.credits.append((sid, amount))


def _true_up(
    db: sqlite3.Connection, effects: _DownlinkEffects, nets: dict[str, int], version: int
) -> None:
    """Each listed student's net money from the centre through ``version``: the balance moves by
    the difference from the net applied here (0 for money already applied, by a delta or an
    earlier snapshot; the credits and debits of the deltas this snapshot replaces otherwise),
    recorded as an adjustment. Students not listed are untouched."""
    applied = dict(db.execute("SELECT student_id, net_tiyn FROM downlink_money"))
    for sid, net in nets.items():
        diff = net - int(applied.get(sid, 0))
        if diff != 0:
            _move_balance(db, effects, sid, diff)
            db.execute(
                "INSERT INTO balance_adjustments (sync_version, student_id, amount_tiyn) "
                "VALUES (?, ?, ?)",
                (version, sid, diff),
            )


def _listed_nets(snap: SyncSnapshot) -> dict[str, int]:
    """The net per student of a snapshot's lists (a server of the release before sends every
    credit and debit ever sent, each ledger id once)."""
    nets: dict[str, int] = {}
    for c in {c.ledger_id: c for c in reversed(snap.balance_credits)}.values():
        nets[c.student_id] = nets.get(c.student_id, 0) + c.amount_tiyn
    for d in {d.ledger_id: d for d in reversed(snap.balance_debits)}.values():
        nets[d.student_id] = nets.get(d.student_id, 0) - d.amount_tiyn
    return nets


def _replace_all(db: sqlite3.Connection, snap: SyncSnapshot, effects: _DownlinkEffects) -> None:
    # Menus are dated and replaced date by date (menu_set); the snapshot's undated ``menu`` cannot
    # replace them, so they stay: a snapshot in the morning must not stop the day's sales. Its
    # dated ``menus`` (the last days set at the server) replace their dates, as a delta would.
    for table in ("consents", "categories", "staff", "students"):
        db.execute(f"DELETE FROM {table}")
    for s in snap.students:
        _put_student(db, s)
    for t in snap.staff:
        _put_staff(db, t)
    # PIN verifiers arrive apart from the roster (sealed): kept, except those of staff gone
    db.execute("DELETE FROM staff_pins WHERE staff_id NOT IN (SELECT id FROM staff)")
    _replace_cards(db, snap, effects.card_key)
    if snap.policy is not None:
        _put_policy(db, snap.policy)
    for credit in snap.balance_credits:  # each ledger id once, whatever came before
        _apply_change(db, credit, effects, snap.version)
    for change in [*snap.balance_debits, *snap.vouchers, *snap.voucher_issuers, *snap.menus]:
        _apply_change(db, change, effects, snap.version)  # each id once, as in a delta
    # The money: the nets it carries, or those of its lists (each list holds every credit and
    # debit sent; after the ids above, a student's net is off only by money an earlier snapshot
    # brought as a net, which the lists' ids then brought again)
    if snap.balance_totals is not None:
        _true_up(db, effects, {t.student_id: t.net_tiyn for t in snap.balance_totals}, snap.version)
    elif snap.balance_credits or snap.balance_debits:
        _true_up(db, effects, _listed_nets(snap), snap.version)
    if effects.credits:
        crash_point("downlink_writing")
    if snap.lending is not None:
        put_lending(db, snap.lending)
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
