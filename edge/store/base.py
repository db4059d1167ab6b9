"""The store's connections and memory: open (with the migrations), close, the journal thread
that runs every write transaction, and loading the decision state from the database."""

from __future__ import annotations

import abc
import asyncio
import base64
import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite

from edge.core.cardkey import CardKeyOf, is_keyed, keyed, plain
from edge.core.model import (
    Card,
    Dish,
    MealKey,
    ParentLimits,
    Policy,
    Presence,
    SchoolState,
    ServedMeal,
    Voucher,
)
from edge.state import build_state
from edge.store.errors import StoreError
from edge.store.journal_thread import JournalThread
from edge.store.migrations import migrate
from protocol.messages import (
    CategoryMembership,
    ConsentRecord,
    OwnerKind,
    PolicyDoc,
    StaffRecord,
    StudentRecord,
)
from protocol.signing import load_public_key

_T = TypeVar("_T")


class StoreBase(abc.ABC):
    """What every part of ``EdgeStore`` shares: the connections, the journal thread and the
    memory. The parts (journal, downlink, canteen) are mixins over it; there is one writer."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        school: str,
        device: str,
        capacity: int,
        card_key: bytes | None = None,
    ) -> None:
        self._db = db
        # how a card number is kept and looked up (DESIGN invariant 5): a keyed hash with the
        # school's card key; the number itself only for a store opened without the key
        self.card_key_of: CardKeyOf = keyed(card_key) if card_key is not None else plain
        # The journal's transactions run whole in one dedicated thread on their own connection:
        # one hop per group commit instead of one per statement (see ``journal``); the thread
        # takes the pipeline's open group itself as soon as the transaction before returns.
        self._writer: sqlite3.Connection | None = None
        self._writer_thread: JournalThread[Any] = JournalThread(self._run_group)
        self._loop = asyncio.get_running_loop()  # the thread reports each group's outcome here
        self._last_open: Any = None  # the pipeline's last open group (``append_entry``)
        # benches: (first seq, next seq, began, ended) of each journal group, in the thread
        self.group_probe: Callable[[int, int, float, float], None] | None = None
        self.school = school
        self.device = device
        self.capacity = capacity
        self.state = SchoolState()
        self.display_names: dict[str, str] = {}  # shown on the canteen kiosk only, never logged
        self.staff_names: dict[str, str] = {}  # shown on the staff page only, never logged
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
        # The daemon's clock (``edge.clock_guard``): the time of the store's own events (alarms)
        # and whether the wall clock is in doubt (every event journaled meanwhile is flagged).
        self.clock: Callable[[], dt.datetime] = _utc_now
        self.clock_in_doubt: Callable[[], bool] = _never

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
        card_key: bytes | None = None,
    ) -> Self:
        """Open (or create) the store. A damaged or foreign file raises; it is never recreated.

        ``card_key`` (``edge.cards.load_card_key``): card numbers are kept as keyed hashes, and
        numbers an older store kept as they are get hashed now, once. Without it, numbers are
        kept as they are, and a store whose numbers are hashed is refused (nothing would match).
        """
        exists = await asyncio.to_thread(lambda: path.exists() and path.stat().st_size > 0)
        if not exists and not create:
            raise StoreError(f"{path}: no edge store here")
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            store = cls(db, school, device, outbox_capacity, card_key)
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
            async with db.execute("PRAGMA quick_check") as cur:
                row = await cur.fetchone()
            if row is None or row[0] != "ok":
                raise StoreError(f"{path}: integrity check failed: {row[0] if row else '?'}")
            # Create, or bring to this code's schema version, in one transaction; a store of
            # another school or device, or of a newer release, is refused untouched.
            await asyncio.to_thread(
                migrate, path, school=self.school, device=self.device, fresh=fresh
            )
            await asyncio.to_thread(_hash_card_numbers, path, self.card_key_of)
            meta = await self._meta()
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: not a usable edge store ({err})") from err
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

    @abc.abstractmethod
    def _run_group(self, prep: Any) -> None:
        """In the journal thread: commit one journal group (``JournalMixin._run_group``)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _meta(self) -> dict[str, str]:
        async with self._db.execute("SELECT key, value FROM meta") as cur:
            return {k: v for k, v in await cur.fetchall()}

    def _set_policy(self, doc: PolicyDoc) -> None:
        self.policy_doc = doc
        self.policy = Policy.from_doc(doc, overdraft_tiyn=self.overdraft_tiyn)

    async def _load_state(self) -> None:
        students, staff, cards = await self._roster_records()
        state = build_state(students, staff, cards)
        state.card_key = self.card_key_of
        self.display_names = {s.id: s.display_name for s in students}
        self.staff_names = {t.id: t.display_name for t in staff}
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
        async with self._db.execute(
            "SELECT voucher_id, SUM(amount_tiyn) FROM voucher_spends GROUP BY voucher_id"
        ) as cur:
            state.voucher_spent = {vid: int(t) for vid, t in await cur.fetchall()}
        async with self._db.execute("SELECT token_id FROM voucher_tokens") as cur:
            state.redeemed_tokens = {t for (t,) in await cur.fetchall()}
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
        vouchers: dict[str, list[Voucher]] = {}
        async with self._db.execute(
            "SELECT voucher_id, issuer, student_id, amount_tiyn, valid_from, valid_to, "
            "meal_periods FROM vouchers ORDER BY voucher_id"
        ) as cur:
            for vid, issuer, sid, amount, vf, vt, periods in await cur.fetchall():
                vouchers.setdefault(sid, []).append(
                    Voucher(
                        vid,
                        issuer,
                        sid,
                        int(amount),
                        dt.date.fromisoformat(vf),
                        dt.date.fromisoformat(vt),
                        frozenset(json.loads(periods)),
                    )
                )
        keys = {}
        async with self._db.execute(
            "SELECT issuer, public_key FROM voucher_issuers WHERE revoked = 0"
        ) as cur:
            for issuer, pub in await cur.fetchall():
                keys[issuer] = load_public_key(base64.b64decode(pub))
        self.state.menus = menus
        self.state.parent_limits = limits
        self.state.vouchers_by_student = {sid: tuple(vs) for sid, vs in vouchers.items()}
        self.state.issuer_public_keys = keys

    async def _roster_records(
        self,
    ) -> tuple[list[StudentRecord], list[StaffRecord], list[Card]]:
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
            "SELECT card_key, owner_kind, owner_id, blocked_reason FROM cards"
        ) as cur:
            cards = [Card(c, OwnerKind(k), o, b) for c, k, o, b in await cur.fetchall()]
        return students, staff, cards


def _hash_card_numbers(path: Path, key_of: CardKeyOf) -> None:
    """With the card key: replace the numbers the store keeps as they are by their keyed hash
    (one transaction), and check the key is the one the store's hashes were made with (its
    fingerprint in ``meta.card_key_id``): a lost key replaced by a new one would leave every
    card unknown, so it is refused. Without a key (a tool, a test) nothing changes here, and a
    keyed hash matches no tap."""
    if key_of is plain:
        return
    fingerprint = key_of("QAQPA:CARDKEYID")[len("h1:") : len("h1:") + 16]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'card_key_id'").fetchone()
            if row is not None and row[0] != fingerprint:
                raise StoreError(
                    f"{path}: the card key is not the one this store's card numbers were "
                    "hashed with (card_key_file); restore that key file"
                )
            numbers = [k for (k,) in db.execute("SELECT card_key FROM cards") if not is_keyed(k)]
            db.executemany(
                "UPDATE cards SET card_key = ? WHERE card_key = ?",
                [(key_of(n), n) for n in numbers],
            )
            if row is None:
                db.execute("INSERT INTO meta VALUES ('card_key_id', ?)", (fingerprint,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    finally:
        db.close()


def _writer_connection(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    # Checkpoints (copying the WAL into the database, with an fsync of the database) run from
    # ``checkpoint()`` between commits, not inside a tap's commit.
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _never() -> bool:
    return False


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
