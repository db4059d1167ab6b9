"""The edge store: one SQLite database per school daemon (aiosqlite, WAL, synchronous=FULL).

It holds the roster (students, staff, cards, consents, social categories), the policy, the meal
ledger, the anti-passback state and the journal of events. The journal is also the outbox: every
event gets the next ``seq`` of this device in the same transaction as the decision and its side
effects (DESIGN invariants 1 and 2), and stays unsent until the server acknowledges it.

The decision state is also kept in memory (``SchoolState``): decisions read memory, transactions
write the database, and memory is changed only after a transaction commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from pydantic import TypeAdapter

from edge.core.model import (
    Dish,
    MealKey,
    ParentLimits,
    Policy,
    Presence,
    SchoolState,
    ServedMeal,
)
from edge.state import build_state
from protocol.codec import canonical, loads_plain
from protocol.messages import (
    AlarmCode,
    AlarmEvent,
    CardBinding,
    CategoryMembership,
    Change,
    ConsentRecord,
    Event,
    PolicyDoc,
    StaffRecord,
    StudentRecord,
    SyncDelta,
    SyncSnapshot,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
HIGH_WATER = 0.8
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE students (
  id TEXT PRIMARY KEY, grade INTEGER NOT NULL, class_name TEXT NOT NULL,
  shift INTEGER NOT NULL, display_name TEXT NOT NULL DEFAULT '');
CREATE TABLE staff (
  id TEXT PRIMARY KEY, roles TEXT NOT NULL, classes TEXT NOT NULL,
  pin_hash TEXT NOT NULL DEFAULT '', display_name TEXT NOT NULL DEFAULT '');
CREATE TABLE cards (
  credential TEXT PRIMARY KEY, owner_kind TEXT NOT NULL, owner_id TEXT NOT NULL,
  blocked_reason TEXT);
CREATE INDEX cards_owner ON cards (owner_id);
CREATE TABLE consents (
  student_id TEXT NOT NULL REFERENCES students (id) ON DELETE CASCADE,
  kind TEXT NOT NULL, granted INTEGER NOT NULL, given_by TEXT NOT NULL,
  at_ms INTEGER NOT NULL, document TEXT NOT NULL, PRIMARY KEY (student_id, kind));
CREATE TABLE categories (
  student_id TEXT NOT NULL REFERENCES students (id) ON DELETE CASCADE,
  code TEXT NOT NULL, valid_from TEXT NOT NULL, valid_to TEXT NOT NULL,
  document TEXT NOT NULL, PRIMARY KEY (student_id, code, valid_from));
CREATE TABLE menu (local_date TEXT PRIMARY KEY, items TEXT NOT NULL);
CREATE TABLE meal_ledger (
  student_id TEXT NOT NULL, local_date TEXT NOT NULL, period TEXT NOT NULL,
  meal TEXT NOT NULL, amount_tiyn INTEGER NOT NULL, terminal TEXT NOT NULL,
  at_ms INTEGER NOT NULL, seq INTEGER NOT NULL,
  PRIMARY KEY (student_id, local_date, period));
CREATE TABLE presence (
  person_id TEXT PRIMARY KEY, local_date TEXT NOT NULL, state TEXT NOT NULL,
  at_ms INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE journal (
  seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  terminal TEXT NOT NULL, event BLOB NOT NULL,
  credential TEXT);  -- the raw credential of a tap: stays at the school, never sent
"""

# Canteen money (added without a schema version bump: created on open when missing). The balance
# is held at the school for spending; every change of it is a row: a credit from the server's
# ledger (idempotent on ledger_id) or a debit by a sale (with its receipt, same transaction).
CANTEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (
  student_id TEXT PRIMARY KEY, balance_tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS balance_credits (
  ledger_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, amount_tiyn INTEGER NOT NULL,
  sync_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS debits (
  seq INTEGER PRIMARY KEY, student_id TEXT NOT NULL, amount_tiyn INTEGER NOT NULL,
  balance_after_tiyn INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
  seq INTEGER PRIMARY KEY, student_id TEXT NOT NULL, local_date TEXT NOT NULL,
  period TEXT NOT NULL, terminal TEXT NOT NULL, at_ms INTEGER NOT NULL, lines TEXT NOT NULL,
  amount_tiyn INTEGER NOT NULL, balance_after_tiyn INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_day ON receipts (student_id, local_date);
CREATE TABLE IF NOT EXISTS parent_limits (
  student_id TEXT PRIMARY KEY, allergen_blocks TEXT NOT NULL, daily_cap_tiyn INTEGER);
"""


class StoreError(Exception):
    """The store cannot be used (damaged, foreign, or a newer schema)."""


class SyncGap(StoreError):
    """A delta's base version is ahead of this edge: it needs a snapshot."""


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    oldest_unsent_ms: int | None
    last_seq: int
    acked_through: int
    capacity: int
    high_water_alarm: bool


@dataclass(frozen=True, slots=True)
class Sale:
    """A paid meal's money: the debit and the receipt that commit with its event."""

    student_id: str
    amount_tiyn: int
    balance_after_tiyn: int
    lines: tuple[tuple[str, str, int, int], ...]  # item id, name, unit price, portions


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One event to journal in a transaction, with its side effects."""

    event: Event  # its seq is assigned by the store
    credential: str | None = None
    meal: tuple[MealKey, str, int] | None = None  # key, meal kind, amount in tiyn
    presence: tuple[str, dt.date, Presence] | None = None
    sale: Sale | None = None  # a paid meal: debit + receipt (with ``meal``)


@dataclass
class _DownlinkEffects:
    """What a downlink transaction changed that memory must follow once it commits."""

    credits: list[tuple[str, int]]  # (student, amount) of credits applied for the first time


@dataclass(slots=True)
class PreparedJournal:
    """A group of journal entries with their sequence numbers, its transaction already queued
    for the journal thread (so the thread sees groups in the order they were prepared)."""

    entries: list[JournalEntry]
    events: list[Event]
    first_seq: int
    next_seq: int
    rows: tuple[
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        tuple[Any, ...] | None,
        list[tuple[Any, ...]],
    ]
    epoch: int = 0  # the store's failure count when prepared
    txn: asyncio.Future[None] | None = None


class EdgeStore:
    def __init__(self, db: aiosqlite.Connection, school: str, device: str, capacity: int) -> None:
        self._db = db
        # The journal's transactions run whole in one dedicated thread on their own connection:
        # one hop per group commit instead of one per statement (see ``journal``).
        self._writer: sqlite3.Connection | None = None
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self.school = school
        self.device = device
        self.capacity = capacity
        self.state = SchoolState()
        self.display_names: dict[str, str] = {}  # shown on the canteen kiosk only, never logged
        self.policy: Policy | None = None
        self.policy_doc: PolicyDoc | None = None
        self.write_lock = asyncio.Lock()
        self._next_seq = 1  # the next seq after the last committed event
        self._reserved = 1  # the next seq to give a prepared group
        self._epoch = 0  # failed journal groups so far: a failure resets _reserved only once
        self._thread_next_seq = 1  # the journal thread's own view of _next_seq
        self._acked = 0
        self._sync_version = 0
        self._alarm_high = False
        self._append_listeners: list[Callable[[int], None]] = []
        self._change_listeners: list[Callable[[], None]] = []
        self.overdraft_tiyn = 0  # the edge config's canteen overdraft, folded into ``policy``
        # Set while a downlink credit commits: the pipeline decides no group meanwhile, so the
        # balance a sale's event states is exactly the one its debit leaves.
        self._money_settled = asyncio.Event()
        self._money_settled.set()
        self._journal_idle = asyncio.Event()  # set when every prepared group has committed
        self._journal_idle.set()

    # ------------------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        school: str,
        device: str,
        outbox_capacity: int = 100_000,
        create: bool = True,
    ) -> EdgeStore:
        """Open (or create) the store. A damaged or foreign file raises; it is never recreated."""
        exists = await asyncio.to_thread(lambda: path.exists() and path.stat().st_size > 0)
        if not exists and not create:
            raise StoreError(f"{path}: no edge store here")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            store = cls(db, school, device, outbox_capacity)
            await store._init(path, fresh=not exists)
        except BaseException:
            await db.close()
            raise
        return store

    async def _init(self, path: Path, *, fresh: bool) -> None:
        db = self._db
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            if fresh:
                await db.execute("BEGIN IMMEDIATE")
                await db.executescript(SCHEMA.replace("\n", " ") + ";")  # executescript commits
                await db.execute("BEGIN IMMEDIATE")
                await db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("school", self.school),
                        ("device", self.device),
                        ("acked_through", "0"),
                        ("sync_version", "0"),
                    ],
                )
                await db.execute("COMMIT")
            async with db.execute("PRAGMA quick_check") as cur:
                row = await cur.fetchone()
            if row is None or row[0] != "ok":
                raise StoreError(f"{path}: integrity check failed: {row[0] if row else '?'}")
            await db.execute("BEGIN IMMEDIATE")
            await db.executescript(CANTEEN_SCHEMA.replace("\n", " ") + ";")  # commits
            meta = await self._meta()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: not a usable edge store ({err})") from err
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise StoreError(f"{path}: schema version {meta.get('schema_version')!r} is not ours")
        if meta.get("school") != self.school or meta.get("device") != self.device:
            raise StoreError(
                f"{path}: belongs to school {meta.get('school')!r} device {meta.get('device')!r}, "
                f"not {self.school!r} {self.device!r}"
            )
        self._acked = int(meta["acked_through"])
        self._sync_version = int(meta["sync_version"])
        if "policy" in meta:
            self._set_policy(PolicyDoc.model_validate_json(meta["policy"]))
        async with db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal") as cur:
            row = await cur.fetchone()
        self._next_seq = max(int(row[0]) if row else 0, self._acked) + 1
        self._reserved = self._thread_next_seq = self._next_seq
        await self._load_state()
        self._alarm_high = meta.get("outbox_alarm") == "1"
        self._writer = await self._in_writer(_writer_connection, path)

    async def close(self) -> None:
        if self._writer is not None:
            await self._in_writer(self._writer.close)
            self._writer = None
        self._writer_thread.shutdown(wait=True)
        await self._db.close()

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        """One write transaction on the writer connection, in its thread. Every write of the
        store goes through here or ``journal``, so reads never hold up a writer."""
        assert self._writer is not None, "store is closed"
        return await self._in_writer(_in_transaction, self._writer, fn, *args)

    async def _in_writer(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_thread, fn, *args)

    async def __aenter__(self) -> EdgeStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _meta(self) -> dict[str, str]:
        async with self._db.execute("SELECT key, value FROM meta") as cur:
            return {k: v for k, v in await cur.fetchall()}

    def _set_policy(self, doc: PolicyDoc) -> None:
        self.policy_doc = doc
        self.policy = Policy.from_doc(doc, overdraft_tiyn=self.overdraft_tiyn)

    def set_overdraft(self, tiyn: int) -> None:
        """The canteen overdraft from the edge config (0: a balance never goes below zero)."""
        self.overdraft_tiyn = tiyn
        if self.policy_doc is not None:
            self._set_policy(self.policy_doc)

    async def money_settled(self) -> None:
        """Returns when no downlink credit is being applied (the pipeline waits here)."""
        await self._money_settled.wait()

    async def _load_state(self) -> None:
        students, staff, cards = await self._roster_records()
        state = build_state(students, staff, cards)
        self.display_names = {s.id: s.display_name for s in students}
        async with self._db.execute("SELECT person_id, local_date, state FROM presence") as cur:
            for pid, day, st in await cur.fetchall():
                state.presence_by_person[pid] = (dt.date.fromisoformat(day), Presence(st))
        horizon = (dt.date.today() - dt.timedelta(days=2)).isoformat()
        async with self._db.execute(
            "SELECT student_id, local_date, period, terminal, at_ms FROM meal_ledger "
            "WHERE local_date >= ?",
            (horizon,),
        ) as cur:
            for sid, day, period, terminal, at_ms in await cur.fetchall():
                state.meals[MealKey(sid, dt.date.fromisoformat(day), period)] = ServedMeal(
                    dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC), terminal
                )
        async with self._db.execute("SELECT student_id, balance_tiyn FROM balances") as cur:
            state.balances = {sid: int(b) for sid, b in await cur.fetchall()}
        async with self._db.execute(
            "SELECT student_id, local_date, SUM(amount_tiyn) FROM receipts WHERE local_date >= ? "
            "GROUP BY student_id, local_date",
            (horizon,),
        ) as cur:
            for sid, day, total in await cur.fetchall():
                state.spending[(sid, dt.date.fromisoformat(day))] = int(total)
        self.state = state
        await self._load_canteen_setup()

    async def _load_canteen_setup(self) -> None:
        """Menus and parents' limits (changed by the downlink only, never by the journal)."""
        menus: dict[dt.date, tuple[Dish, ...]] = {}
        async with self._db.execute("SELECT local_date, items FROM menu") as cur:
            for day, items in await cur.fetchall():
                menus[dt.date.fromisoformat(day)] = tuple(
                    Dish(i["id"], i["name"], int(i["price_tiyn"]), frozenset(i["allergens"]))
                    for i in json.loads(items)
                )
        limits: dict[str, ParentLimits] = {}
        async with self._db.execute(
            "SELECT student_id, allergen_blocks, daily_cap_tiyn FROM parent_limits"
        ) as cur:
            for sid, blocks, cap in await cur.fetchall():
                limits[sid] = ParentLimits(frozenset(json.loads(blocks)), cap)
        self.state.menus = menus
        self.state.parent_limits = limits

    async def _roster_records(
        self,
    ) -> tuple[list[StudentRecord], list[StaffRecord], list[CardBinding]]:
        db = self._db
        consents: dict[str, list[ConsentRecord]] = {}
        async with db.execute(
            "SELECT student_id, kind, granted, given_by, at_ms, document FROM consents"
        ) as cur:
            for sid, kind, granted, by, at_ms, doc in await cur.fetchall():
                consents.setdefault(sid, []).append(
                    ConsentRecord.model_validate(
                        {
                            "kind": kind,
                            "granted": bool(granted),
                            "given_by": by,
                            "at_ms": at_ms,
                            "document": doc,
                        }
                    )
                )
        cats: dict[str, list[CategoryMembership]] = {}
        async with db.execute(
            "SELECT student_id, code, valid_from, valid_to, document FROM categories"
        ) as cur:
            for sid, code, vf, vt, doc in await cur.fetchall():
                cats.setdefault(sid, []).append(
                    CategoryMembership(code=code, valid_from=vf, valid_to=vt, document=doc)
                )
        async with db.execute(
            "SELECT id, grade, class_name, shift, display_name FROM students"
        ) as cur:
            students = [
                StudentRecord(
                    id=i,
                    grade=g,
                    class_name=c,
                    shift=s,
                    display_name=n,
                    consents=consents.get(i, []),
                    categories=cats.get(i, []),
                )
                for i, g, c, s, n in await cur.fetchall()
            ]
        async with db.execute(
            "SELECT id, roles, classes, pin_hash, display_name FROM staff"
        ) as cur:
            staff = [
                StaffRecord(
                    id=i,
                    roles=json.loads(r),
                    classes=json.loads(c),
                    pin_hash=p,
                    display_name=n,
                )
                for i, r, c, p, n in await cur.fetchall()
            ]
        async with db.execute(
            "SELECT credential, owner_kind, owner_id, blocked_reason FROM cards"
        ) as cur:
            cards = [
                CardBinding.model_validate(
                    {"credential": c, "owner_kind": k, "owner_id": o, "blocked_reason": b}
                )
                for c, k, o, b in await cur.fetchall()
            ]
        return students, staff, cards

    # -------------------------------------------------------------------------------- journal

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def add_append_listener(self, cb: Callable[[int], None]) -> None:
        self._append_listeners.append(cb)

    def add_change_listener(self, cb: Callable[[], None]) -> None:
        """Called after the roster, cards, consents or policy changed (a delta or a snapshot)."""
        self._change_listeners.append(cb)

    async def journal(self, entries: Sequence[JournalEntry]) -> list[Event]:
        """Commit events and their side effects in ONE transaction; returns them with their seq.

        Nothing in memory changes unless the commit succeeds; on failure the transaction is
        rolled back and its sequence numbers are given out again.
        """
        return await self.commit_journal(self.prepare_journal(entries))

    def prepare_journal(self, entries: Sequence[JournalEntry]) -> PreparedJournal:
        """Give the entries the next sequence numbers and build their rows (no I/O).

        Several prepared groups may wait for the journal thread at once: they commit in the
        order they were prepared, and a group queued behind one that failed fails too (its
        decisions may rest on the failed group's effects).
        """
        first = seq = self._reserved
        events: list[Event] = []
        rows: list[tuple[Any, ...]] = []
        meals: list[tuple[Any, ...]] = []
        presence: list[tuple[Any, ...]] = []
        sales: list[tuple[Any, ...]] = []
        for entry in entries:
            ev = entry.event.model_copy(update={"seq": seq})
            events.append(ev)
            rows.append((seq, ev.at_ms, ev.kind, ev.terminal, _blob(ev), entry.credential))
            if entry.meal is not None:
                key, kind, amount = entry.meal
                meals.append(
                    (
                        key.student_id,
                        key.local_date.isoformat(),
                        key.period,
                        kind,
                        amount,
                        ev.terminal,
                        ev.at_ms,
                        seq,
                    )
                )
            if entry.presence is not None:
                pid, day, st = entry.presence
                presence.append((pid, day.isoformat(), st.value, ev.at_ms, seq))
            if entry.sale is not None and entry.meal is not None:
                sale, key = entry.sale, entry.meal[0]
                lines = json.dumps(
                    [
                        {"id": i, "name": n, "price_tiyn": p, "portions": k}
                        for i, n, p, k in sale.lines
                    ],
                    ensure_ascii=False,
                )
                sales.append(
                    (
                        seq,
                        sale.student_id,
                        key.local_date.isoformat(),
                        key.period,
                        ev.terminal,
                        ev.at_ms,
                        lines,
                        sale.amount_tiyn,
                        sale.balance_after_tiyn,
                    )
                )
            seq += 1
        backlog = seq - 1 - self._acked
        alarm_row: tuple[Any, ...] | None = None
        if not self._alarm_high and backlog >= self.capacity * HIGH_WATER:
            alarm = AlarmEvent(
                seq=seq,
                at_ms=events[-1].at_ms if events else 0,
                terminal=self.device,
                code=AlarmCode.OUTBOX_HIGH_WATER,
                active=True,
                detail=f"outbox backlog {backlog} of capacity {self.capacity}",
            )
            alarm_row = (seq, alarm.at_ms, alarm.kind, alarm.terminal, _blob(alarm), None)
            events.append(alarm)
            seq += 1
            self._alarm_high = True  # raised once, by the group that crossed the mark
            log.warning("outbox at %d of %d events: alarm raised", backlog, self.capacity)
        self._reserved = seq
        self._journal_idle.clear()
        prep = PreparedJournal(
            list(entries),
            events,
            first,
            seq,
            (rows, meals, presence, alarm_row, sales),
            self._epoch,
        )
        # Queued now, not when the caller gets round to awaiting it: another group prepared
        # later (an alarm, a sale) must never reach the journal thread first.
        assert self._writer is not None, "store is closed"
        prep.txn = asyncio.wrap_future(
            self._writer_thread.submit(
                _in_transaction, self._writer, self._journal_rows_in_order, prep
            )
        )
        return prep

    async def commit_journal(self, prep: PreparedJournal) -> list[Event]:
        """Commit a prepared group (in the journal thread); memory changes only after it."""
        txn = prep.txn
        assert txn is not None
        try:
            await asyncio.shield(txn)
        except BaseException:
            if not txn.done():  # our caller was cancelled: the thread finishes regardless
                await asyncio.wait([txn])
            if txn.cancelled() or txn.exception() is not None:
                if prep.epoch == self._epoch:  # the first failure since this group was prepared
                    self._epoch += 1
                    self._reserved = self._next_seq  # give the numbers out again
                if self._reserved == self._next_seq:
                    self._journal_idle.set()
                if any(ev.kind == "alarm" for ev in prep.events[len(prep.entries) :]):
                    self._alarm_high = False
                raise
        self._next_seq = prep.next_seq
        if self._reserved == self._next_seq:
            self._journal_idle.set()
        for entry, ev in zip(prep.entries, prep.events, strict=False):
            if entry.meal is not None:
                key = entry.meal[0]
                at = dt.datetime.fromtimestamp(ev.at_ms / 1000, dt.UTC)
                self.state.meals.setdefault(key, ServedMeal(at, ev.terminal))
            if entry.sale is not None and entry.meal is not None:
                sale, day = entry.sale, entry.meal[0].local_date
                balances, spending = self.state.balances, self.state.spending
                balances[sale.student_id] = balances.get(sale.student_id, 0) - sale.amount_tiyn
                spent = spending.get((sale.student_id, day), 0)
                spending[(sale.student_id, day)] = spent + sale.amount_tiyn
            if entry.presence is not None:
                pid, day, st = entry.presence
                self.state.presence_by_person[pid] = (day, st)
        for cb in self._append_listeners:
            cb(self.last_seq)
        return prep.events

    def _journal_rows_in_order(self, db: sqlite3.Connection, prep: PreparedJournal) -> None:
        """In the journal thread: refuse a group that does not follow the last committed one."""
        expected = self._thread_next_seq
        if prep.first_seq != expected:
            raise StoreError(
                f"journal group starting at seq {prep.first_seq} does not follow seq "
                f"{expected - 1}: an earlier group failed"
            )
        _journal_rows(db, *prep.rows)
        self._thread_next_seq = prep.next_seq

    async def checkpoint(self) -> None:
        """Fold the WAL into the database without blocking the journal (PASSIVE)."""
        async with self._db.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
            await cur.fetchall()

    async def set_presence(self, person_id: str, day: dt.date, state: Presence, at_ms: int) -> None:
        """Record that a person actually passed a released turnstile. Caller holds write_lock."""
        row = (person_id, day.isoformat(), state.value, at_ms, self.last_seq)
        await self._write(_upsert_presence, [row])
        self.state.presence_by_person[person_id] = (day, state)

    async def journal_alarm(self, terminal: str, code: AlarmCode, active: bool, detail: str) -> int:
        at_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        ev = AlarmEvent(
            seq=1, at_ms=at_ms, terminal=terminal, code=code, active=active, detail=detail
        )
        async with self.write_lock:
            (done, *_) = await self.journal([JournalEntry(ev)])
        return done.seq

    async def journal_rows(self, first: int = 1, last: int | None = None) -> list[Event]:
        """Journaled events in ``[first, last]`` (acknowledged or not), for audits and tests."""
        async with self._db.execute(
            "SELECT event FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last if last is not None else 2**62),
        ) as cur:
            return [_event(b) for (b,) in await cur.fetchall()]

    # --------------------------------------------------------------------------------- outbox

    async def outbox_batch(self, after_seq: int, limit: int) -> list[Event]:
        start = max(after_seq, self._acked)
        async with self._db.execute(
            "SELECT event FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (start, limit)
        ) as cur:
            return [_event(b) for (b,) in await cur.fetchall()]

    async def outbox_ack(self, committed_through: int) -> int:
        """The server has committed every seq up to ``committed_through``. Idempotent."""
        target = min(committed_through, self.last_seq)
        if target <= self._acked:
            return 0
        async with self.write_lock:
            before = self._acked
            backlog = self.last_seq - target
            clear = self._alarm_high and backlog < self.capacity * HIGH_WATER
            await self._write(_set_acked, target, clear)
            self._acked = target
            if clear:
                self._alarm_high = False
        if clear:
            await self.journal_alarm(
                self.device, AlarmCode.OUTBOX_HIGH_WATER, False, f"outbox backlog {backlog}"
            )
        return target - before

    async def outbox_stats(self) -> OutboxStats:
        oldest: int | None = None
        if self.last_seq > self._acked:
            async with self._db.execute(
                "SELECT at_ms FROM journal WHERE seq = ?", (self._acked + 1,)
            ) as cur:
                row = await cur.fetchone()
            oldest = int(row[0]) if row else None
        return OutboxStats(
            backlog=self.last_seq - self._acked,
            oldest_unsent_ms=oldest,
            last_seq=self.last_seq,
            acked_through=self._acked,
            capacity=self.capacity,
            high_water_alarm=self._alarm_high,
        )

    # ------------------------------------------------------------------------------- downlink

    async def sync_version(self) -> int:
        return self._sync_version

    async def apply_snapshot(self, snap: SyncSnapshot) -> None:
        """Replace roster, cards, staff and policy wholesale, atomically; add the credits it
        carries (once per ledger id) and replace the parents' limits when it carries them."""
        async with self.write_lock:
            await self._money_transaction(_replace_all, snap, bool(snap.balance_credits))
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
        money = any(c.op == "balance_credit" for c in delta.changes)
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

    # ------------------------------------------------------------------------ local answers

    async def money_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        """Balances, credits, debits and receipts as stored, for audits and tests."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, order in (
            ("balances", "student_id"),
            ("balance_credits", "ledger_id"),
            ("debits", "seq"),
            ("receipts", "seq"),
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


_T = TypeVar("_T")


def _writer_connection(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    # Checkpoints (copying the WAL into the database, with an fsync of the database) run from
    # ``checkpoint()`` between commits, not inside a tap's commit.
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def _journal_rows(
    db: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    meals: list[tuple[Any, ...]],
    presence: list[tuple[Any, ...]],
    alarm_row: tuple[Any, ...] | None,
    sales: list[tuple[Any, ...]],
) -> None:
    """Events, their side effects, and the high-water alarm if it fires (one transaction)."""
    db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)", rows)
    free = [m for m in meals if m[3] != "paid"]
    if free:
        db.executemany("INSERT INTO meal_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)", free)
    if len(free) < len(meals):
        # a paying student may buy again in the same period: the ledger keeps the period's first
        db.executemany(
            "INSERT OR IGNORE INTO meal_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [m for m in meals if m[3] == "paid"],
        )
    if sales:
        _sales(db, sales)
    if presence:
        _upsert_presence(db, presence)
    if alarm_row is not None:
        db.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)", alarm_row)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('outbox_alarm', '1')")


def _sales(db: sqlite3.Connection, sales: list[tuple[Any, ...]]) -> None:
    """Debit, balance and receipt of each sale (inside the journal's transaction)."""
    for seq, sid, _day, _period, _term, _at, _lines, amount, after in sales:
        db.execute("INSERT INTO debits VALUES (?, ?, ?, ?)", (seq, sid, amount, after))
        db.execute(
            "INSERT INTO balances VALUES (?, ?) ON CONFLICT (student_id) DO UPDATE "
            "SET balance_tiyn = balance_tiyn + excluded.balance_tiyn",
            (sid, -amount),
        )
    db.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", sales)


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
    elif op == "parent_limits_set":
        db.execute(
            "INSERT OR REPLACE INTO parent_limits VALUES (?, ?, ?)",
            (change.student_id, json.dumps(sorted(change.allergen_blocks)), change.daily_cap_tiyn),
        )
    else:  # pragma: no cover - the protocol's union is closed
        raise StoreError(f"unknown change {op!r}")
    return None


def _upsert_presence(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    db.executemany(
        "INSERT INTO presence VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id) DO UPDATE "
        "SET local_date = excluded.local_date, state = excluded.state, "
        "at_ms = excluded.at_ms, seq = excluded.seq",
        rows,
    )


def _set_acked(db: sqlite3.Connection, target: int, clear_alarm: bool) -> None:
    db.execute("UPDATE meta SET value = ? WHERE key = 'acked_through'", (str(target),))
    if clear_alarm:
        db.execute("DELETE FROM meta WHERE key = 'outbox_alarm'")


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


def _in_transaction(db: sqlite3.Connection, fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn(db, *args)`` as one transaction (in the journal thread)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db, *args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def _blob(ev: Event) -> bytes:
    return canonical(ev.model_dump(mode="json"))


def _event(blob: bytes) -> Event:
    return EVENT_ADAPTER.validate_python(loads_plain(blob, context="journal"))


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        log.debug("rollback after a failed statement: no transaction was open")
