"""The journal and its outbox: every event gets the next gap-free ``seq`` of this device in the
same transaction as its decision's side effects, and stays unsent until the server acknowledges
it (DESIGN invariants 1 and 2). Groups of entries are prepared (numbered) on the loop and
committed in order, whole, by the one journal thread (pipelined group commit)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from edge.core.model import MealKey, Presence, ServedMeal
from edge.store import canteen
from edge.store.base import StoreBase, _in_transaction
from edge.store.canteen import Sale
from edge.store.errors import StoreError
from edge.store.lending import LendingWrite, write_lending
from protocol.codec import canonical, loads_plain
from protocol.messages import AlarmCode, AlarmEvent, Event

log = logging.getLogger(__name__)

HIGH_WATER = 0.8
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    backlog: int
    oldest_unsent_ms: int | None
    last_seq: int
    acked_through: int
    capacity: int
    high_water_alarm: bool


@dataclass(frozen=True, slots=True)
class CardWrite:
    """A card changed at the school's desk (``edge.cards``), written with its event."""

    action: Literal["issue", "block", "unbind"]
    card_ref: str
    card_key: str = ""  # issue: the store's key of the number (a keyed hash)
    owner_kind: str = ""
    owner_id: str = ""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One event to journal in a transaction, with its side effects."""

    event: Event  # its seq is assigned by the store
    credential: str | None = None
    meal: tuple[MealKey, str, int] | None = None  # key, meal kind, amount in tiyn
    presence: tuple[str, dt.date, Presence] | None = None
    sale: Sale | None = None  # a paid meal: debit + receipt (with ``meal``)
    card: CardWrite | None = None
    lending: LendingWrite | None = None  # a library desk act: the item's new holder


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
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[int, CardWrite]],
        list[tuple[int, LendingWrite]],
    ]
    epoch: int = 0  # the store's failure count when prepared
    txn: asyncio.Future[None] | None = None


class JournalMixin(StoreBase):
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
        cards: list[tuple[int, CardWrite]] = []
        spends: list[tuple[Any, ...]] = []
        tokens: list[tuple[Any, ...]] = []
        lendings: list[tuple[int, LendingWrite]] = []
        doubt = {"clock_in_doubt": True} if self.clock_in_doubt() else {}
        for entry in entries:
            ev = entry.event.model_copy(update={"seq": seq, **doubt})
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
                spends.extend((seq, vid, sale.student_id, t) for vid, t in sale.vouchers)
                if sale.token is not None:
                    tokens.append((sale.token[0], sale.token[1], sale.student_id, seq))
            if entry.card is not None:
                cards.append((seq, entry.card))
            if entry.lending is not None:
                lendings.append((seq, entry.lending))
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
                clock_in_doubt=True if doubt else None,
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
            (rows, meals, presence, alarm_row, sales, spends, tokens, cards, lendings),
            self._epoch,
        )
        # Queued now, not when the caller gets round to awaiting it: another group prepared
        # later (an alarm, a sale) must never reach the journal thread first.
        assert self._writer is not None, "store is closed"
        prep.txn = asyncio.wrap_future(
            self._writer_thread.submit(self._commit_in_order, self._writer, prep)
        )
        return prep

    async def commit_journal(self, prep: PreparedJournal) -> list[Event]:
        """Commit a prepared group (in the journal thread); memory changes only after it."""
        txn = prep.txn
        assert txn is not None
        interrupted: BaseException | None = None
        try:
            await asyncio.shield(txn)
        except BaseException as err:
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
            # The group committed while our caller was being cancelled: memory follows the
            # journal below, then the cancellation goes on (swallowed, it left a task group
            # waiting for ever on a task that had been told to stop).
            interrupted = err
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
                paid = sale.balance_paid_tiyn
                balances[sale.student_id] = balances.get(sale.student_id, 0) - paid
                spent = spending.get((sale.student_id, day), 0)
                spending[(sale.student_id, day)] = spent + sale.amount_tiyn
                for vid, tiyn in sale.vouchers:
                    used = self.state.voucher_spent
                    used[vid] = used.get(vid, 0) + tiyn
                if sale.token is not None:
                    self.state.redeemed_tokens.add(sale.token[0])
            if entry.presence is not None:
                pid, day, st = entry.presence
                self.state.presence_by_person[pid] = (day, st)
        for cb in self._append_listeners:
            cb(self.last_seq)
        if interrupted is not None:
            raise interrupted
        return prep.events

    def _commit_in_order(self, db: sqlite3.Connection, prep: PreparedJournal) -> None:
        """In the journal thread: one group, one transaction. The thread's next seq moves only
        once the COMMIT succeeded: a COMMIT that fails (a full disk: the WAL is written then)
        leaves it where it was, so the group re-numbered after the failure follows."""
        _in_transaction(db, self._journal_rows_in_order, prep)
        self._thread_next_seq = prep.next_seq

    def _journal_rows_in_order(self, db: sqlite3.Connection, prep: PreparedJournal) -> None:
        """In the journal thread: refuse a group that does not follow the last committed one."""
        expected = self._thread_next_seq
        if prep.first_seq != expected:
            raise StoreError(
                f"journal group starting at seq {prep.first_seq} does not follow seq "
                f"{expected - 1}: an earlier group failed"
            )
        write_group(db, *prep.rows)

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
        at_ms = int(self.clock().timestamp() * 1000)
        ev = AlarmEvent(
            seq=1, at_ms=at_ms, terminal=terminal, code=code, active=active, detail=detail
        )
        async with self.write_lock:
            (done, *_) = await self.journal([JournalEntry(ev)])
        return done.seq

    async def last_at_ms(self) -> int | None:
        """The time of the last journaled event (the clock's lower bound at start)."""
        async with self._db.execute("SELECT at_ms FROM journal ORDER BY seq DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else None

    async def journal_rows(self, first: int = 1, last: int | None = None) -> list[Event]:
        """Journaled events in ``[first, last]`` (acknowledged or not), for audits and tests."""
        async with self._db.execute(
            "SELECT event FROM journal WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last if last is not None else 2**62),
        ) as cur:
            return [_event(b) for (b,) in await cur.fetchall()]

    # --------------------------------------------------------------------------------- outbox

    async def outbox_batch(self, after_seq: int, limit: int) -> list[Event]:
        return decode_events(await self.outbox_blobs(after_seq, limit))

    @staticmethod
    def decode_events(blobs: list[bytes]) -> list[Event]:
        """Stored journal rows as events (CPU work: off the event loop for a large batch)."""
        return decode_events(blobs)

    async def outbox_blobs(self, after_seq: int, limit: int) -> list[bytes]:
        """The next events to upload as stored (undecoded): the uplink decodes and signs them
        off the event loop that serves taps (:func:`decode_events`)."""
        start = max(after_seq, self._acked)
        async with self._db.execute(
            "SELECT event FROM journal WHERE seq > ? ORDER BY seq LIMIT ?", (start, limit)
        ) as cur:
            return [b for (b,) in await cur.fetchall()]

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


def write_group(
    db: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    meals: list[tuple[Any, ...]],
    presence: list[tuple[Any, ...]],
    alarm_row: tuple[Any, ...] | None,
    sales: list[tuple[Any, ...]],
    spends: list[tuple[Any, ...]],
    tokens: list[tuple[Any, ...]],
    cards: list[tuple[int, CardWrite]] | None = None,
    lendings: list[tuple[int, LendingWrite]] | None = None,
) -> None:
    """Events, their side effects, and the high-water alarm if it fires (one transaction)."""
    db.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)", rows)
    for seq, card in cards or []:
        _write_card(db, seq, card)
    for seq, act in lendings or []:
        write_lending(db, seq, act)
    bought = ("paid", "voucher")  # a student who pays may buy again in the same period
    free = [m for m in meals if m[3] not in bought]
    if free:
        db.executemany("INSERT INTO meal_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)", free)
    if len(free) < len(meals):
        # a paying student may buy again in the same period: the ledger keeps the period's first
        db.executemany(
            "INSERT OR IGNORE INTO meal_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [m for m in meals if m[3] in bought],
        )
    if sales:
        canteen.write_sales(db, sales, spends, tokens)
    if presence:
        _upsert_presence(db, presence)
    if alarm_row is not None:
        db.execute("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?)", alarm_row)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('outbox_alarm', '1')")


def _write_card(db: sqlite3.Connection, seq: int, c: CardWrite) -> None:
    if c.action == "issue":  # a number already bound fails the group (checked before, too)
        db.execute(
            "INSERT INTO cards (card_key, owner_kind, owner_id, blocked_reason, card_ref, "
            "issued_seq) VALUES (?, ?, ?, NULL, ?, ?)",
            (c.card_key, c.owner_kind, c.owner_id, c.card_ref, seq),
        )
    elif c.action == "block":
        db.execute("UPDATE cards SET blocked_reason = ? WHERE card_ref = ?", (c.reason, c.card_ref))
    else:
        db.execute("DELETE FROM cards WHERE card_ref = ?", (c.card_ref,))


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


def _blob(ev: Event) -> bytes:
    return canonical(ev.model_dump(mode="json"))


def decode_events(blobs: list[bytes]) -> list[Event]:
    """Stored journal rows as events (CPU work: call it off the event loop for a large batch)."""
    return [_event(b) for b in blobs]


def _event(blob: bytes) -> Event:
    return EVENT_ADAPTER.validate_python(loads_plain(blob, context="journal"))
