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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter

from edge.core.model import MealKey, Presence, ServedMeal
from edge.faults import crash_point
from edge.store import canteen
from edge.store.base import StoreBase, _in_transaction
from edge.store.canteen import Sale
from edge.store.errors import StoreError
from edge.store.lending import LendingWrite, write_lending
from protocol.codec import canonical_model, loads_plain
from protocol.messages import AlarmCode, AlarmEvent, Event

log = logging.getLogger(__name__)

HIGH_WATER = 0.8
MAX_GROUP = 256  # entries in one of the pipeline's open groups
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


class _Rows:
    """The rows of one journal group, as ``write_group`` takes them."""

    __slots__ = (
        "alarm",
        "cards",
        "journal",
        "lendings",
        "meals",
        "presence",
        "sales",
        "spends",
        "tokens",
    )

    def __init__(self) -> None:
        self.journal: list[tuple[Any, ...]] = []
        self.meals: list[tuple[Any, ...]] = []
        self.presence: list[tuple[Any, ...]] = []
        self.alarm: tuple[Any, ...] | None = None
        self.sales: list[tuple[Any, ...]] = []
        self.spends: list[tuple[Any, ...]] = []
        self.tokens: list[tuple[Any, ...]] = []
        self.cards: list[tuple[int, CardWrite]] = []
        self.lendings: list[tuple[int, LendingWrite]] = []

    def args(self) -> tuple[Any, ...]:
        return (
            self.journal,
            self.meals,
            self.presence,
            self.alarm,
            self.sales,
            self.spends,
            self.tokens,
            self.cards,
            self.lendings,
        )


GroupDone = Callable[["PreparedJournal", BaseException | None], None]
Numbered = tuple[JournalEntry, Event, bytes]  # an entry, its numbered event, the event's bytes


@dataclass(slots=True, eq=False)
class PreparedJournal:
    """A group of journal entries with their sequence numbers and rows, queued for the journal
    thread (so the thread sees groups in the order they were prepared). An *open* group (the
    pipeline's) takes more entries until the thread takes it."""

    entries: list[JournalEntry]
    events: list[Event]
    first_seq: int
    next_seq: int
    rows: _Rows
    epoch: int = 0  # the store's failure count when prepared
    done: asyncio.Future[None] | None = None  # ``journal``'s groups: resolved once in memory
    on_done: GroupDone | None = None  # the pipeline's groups: called once in memory
    tag: Any = None  # the pipeline's own record of the group
    alarm: AlarmEvent | None = None  # the outbox's high-water alarm, raised by this group
    open: bool = False  # the thread has not taken it: entries may still join (under its lock)


class JournalMixin(StoreBase):
    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    @property
    def next_seq(self) -> int:
        """The seq the next entry handed in gets (``append_entry``, ``prepare_journal``)."""
        return self._reserved

    @property
    def journal_epoch(self) -> int:
        """Failed journal groups so far: a group prepared in an earlier epoch is refused."""
        return self._epoch

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
        """Give the entries the next sequence numbers, build their rows and queue them for the
        journal thread as one group (its own transaction).

        Several prepared groups may wait for the journal thread at once: they commit in the
        order they were prepared, and a group queued behind one that failed fails too (its
        decisions may rest on the failed group's effects).
        """
        prep = self._new_group(self._reserved)
        for entry in entries:
            ev = self._number(entry)
            self._add_entry(prep, entry, ev, _blob(ev))
        self._high_water(prep)
        self._journal_idle.clear()
        prep.done = asyncio.get_running_loop().create_future()
        assert self._writer is not None, "store is closed"
        self._writer_thread.add_group(prep, keep_open=False)
        return prep

    def number_entry(self, entry: JournalEntry) -> Numbered:
        """Give one entry the next seq and encode its event (CPU work on the loop, as the
        entry is decided: it overlaps the commit under way); ``hand_over`` queues it."""
        ev = self._number(entry)
        return entry, ev, _blob(ev)

    def hand_over(self, numbered: list[Numbered], on_done: GroupDone) -> PreparedJournal:
        """Add entries numbered just before (``number_entry``, nothing handed in between) to
        the open group, or queue a new open group with them when the thread has taken the last
        one: the thread takes the open group itself the moment its previous transaction
        returns (the pipeline's hand-off, one per batch of taps decided together).
        ``on_done(group, error)`` is called on the loop once a new group has committed (memory
        updated) or failed."""
        assert numbered and numbered[-1][1].seq == self._reserved - 1, "numbered just before"
        last: PreparedJournal | None = self._last_open

        def extend(group: PreparedJournal) -> None:
            for entry, ev, blob in numbered:
                self._add_entry(group, entry, ev, blob)

        if (
            last is not None
            and last.epoch == self._epoch
            and len(last.entries) + len(numbered) <= MAX_GROUP
            and (self._alarm_high or self._reserved - 1 - self._acked < self.capacity * HIGH_WATER)
            and self._writer_thread.extend_open(last, extend)
        ):
            return last
        assert self._writer is not None, "store is closed"
        prep = self._new_group(numbered[0][1].seq)
        prep.on_done = on_done
        extend(prep)
        self._high_water(prep)
        self._writer_thread.add_group(prep, keep_open=prep.alarm is None)
        self._last_open = prep
        return prep

    def append_entry(self, entry: JournalEntry, on_done: GroupDone) -> PreparedJournal:
        """``hand_over`` of one entry."""
        return self.hand_over([self.number_entry(entry)], on_done)

    def _new_group(self, first: int) -> PreparedJournal:
        return PreparedJournal([], [], first, first, _Rows(), self._epoch)

    def _number(self, entry: JournalEntry) -> Event:
        """The entry's event with the next seq (CPU work on the loop, done as the entry is
        decided: it overlaps the commit under way, so the hand-off only appends rows)."""
        seq = self._reserved
        self._reserved = seq + 1
        self._journal_idle.clear()
        ev = entry.event
        doubt = self.clock_in_doubt()
        if ev.seq == seq and (ev.clock_in_doubt or not doubt):
            return ev  # planned with its number (the pipeline's): no copy
        update: dict[str, Any] = {"seq": seq}
        if doubt:
            update["clock_in_doubt"] = True
        return ev.model_copy(update=update)

    def _high_water(self, prep: PreparedJournal) -> None:
        """Raise the outbox's high-water alarm in ``prep`` (with the next seq) if the backlog
        has crossed the mark; raised once, by the group that crossed it."""
        backlog = self._reserved - 1 - self._acked
        if self._alarm_high or backlog < self.capacity * HIGH_WATER:
            return
        seq = self._reserved
        alarm = AlarmEvent(
            seq=seq,
            at_ms=prep.events[-1].at_ms if prep.events else 0,
            terminal=self.device,
            code=AlarmCode.OUTBOX_HIGH_WATER,
            active=True,
            detail=f"outbox backlog {backlog} of capacity {self.capacity}",
            clock_in_doubt=True if self.clock_in_doubt() else None,
        )
        prep.rows.alarm = (seq, alarm.at_ms, alarm.kind, alarm.terminal, _blob(alarm), None)
        prep.alarm = alarm
        prep.next_seq = seq + 1
        self._reserved = seq + 1
        self._alarm_high = True
        log.warning("outbox at %d of %d events: alarm raised", backlog, self.capacity)

    @staticmethod
    def _add_entry(prep: PreparedJournal, entry: JournalEntry, ev: Event, blob: bytes) -> None:
        """The entry's rows join ``prep`` (for an open group: under the thread's lock, with the
        event already encoded outside it)."""
        seq = ev.seq
        r = prep.rows
        prep.entries.append(entry)
        prep.events.append(ev)
        r.journal.append((seq, ev.at_ms, ev.kind, ev.terminal, blob, entry.credential))
        if entry.meal is not None:
            key, kind, amount = entry.meal
            r.meals.append(
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
            r.presence.append((pid, day.isoformat(), st.value, ev.at_ms, seq))
        if entry.sale is not None and entry.meal is not None:
            sale, key = entry.sale, entry.meal[0]
            lines = json.dumps(
                [{"id": i, "name": n, "price_tiyn": p, "portions": k} for i, n, p, k in sale.lines],
                ensure_ascii=False,
            )
            r.sales.append(
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
            r.spends.extend((seq, vid, sale.student_id, t) for vid, t in sale.vouchers)
            if sale.token is not None:
                r.tokens.append((sale.token[0], sale.token[1], sale.student_id, seq))
        if entry.card is not None:
            r.cards.append((seq, entry.card))
        if entry.lending is not None:
            r.lendings.append((seq, entry.lending))
        prep.next_seq = seq + 1

    async def commit_journal(self, prep: PreparedJournal) -> list[Event]:
        """Wait for a prepared group's commit (in the journal thread); memory changes only
        after it, whether the caller is still waiting or not (``_group_done``)."""
        done = prep.done
        assert done is not None
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            if not done.done():  # our caller was cancelled: the thread finishes regardless
                await asyncio.wait([done])
            if not done.cancelled():
                done.exception()  # retrieved: the cancellation is what goes on
            # Committed or not, memory already follows the journal; the cancellation goes on
            # (swallowed, it left a task group waiting for ever on a task told to stop).
            raise
        return prep.events if prep.alarm is None else [*prep.events, prep.alarm]

    def _run_group(self, prep: PreparedJournal) -> None:
        """In the journal thread: commit one group and tell the loop, at once."""
        if prep.on_done is not None:
            crash_point("after_handoff")  # the pipeline's group, taken by the thread
        err: BaseException | None = None
        began = time.perf_counter()
        try:
            assert self._writer is not None, "store is closed"
            _in_transaction(self._writer, self._journal_rows_in_order, prep)
            # The thread's next seq moves only once the COMMIT succeeded: a COMMIT that fails
            # (a full disk: the WAL is written then) leaves it where it was, so the group
            # re-numbered after the failure follows.
            self._thread_next_seq = prep.next_seq
            if prep.on_done is not None:
                crash_point("after_group_commit")  # committed; the loop has not heard yet
        except BaseException as e:
            err = e
        probe = self.group_probe
        if probe is not None:
            probe(prep.first_seq, prep.next_seq, began, time.perf_counter())
        try:
            self._loop.call_soon_threadsafe(self._group_done, prep, err)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.warning("journal group %d.. finished after its event loop closed", prep.first_seq)

    def _group_done(self, prep: PreparedJournal, err: BaseException | None) -> None:
        """On the loop, in commit order: memory follows the journal, then the group's waiters."""
        if self._last_open is prep:
            self._last_open = None
        if err is not None:
            if prep.epoch == self._epoch:  # the first failure since this group was prepared
                self._epoch += 1
                self._reserved = self._next_seq  # give the numbers out again
                self._writer_thread.close_open()  # later entries never join a doomed group
                self._last_open = None
            if self._reserved == self._next_seq:
                self._journal_idle.set()
            if prep.alarm is not None:
                self._alarm_high = False
            self._notify(prep, err)
            return
        self._next_seq = prep.next_seq
        if self._reserved == self._next_seq:
            self._journal_idle.set()
        state = self.state
        for entry, ev in zip(prep.entries, prep.events, strict=True):
            if entry.meal is not None:
                key = entry.meal[0]
                if key not in state.meals:
                    at = dt.datetime.fromtimestamp(ev.at_ms / 1000, dt.UTC)
                    state.meals[key] = ServedMeal(at, ev.terminal)
            if entry.sale is not None and entry.meal is not None:
                sale, day = entry.sale, entry.meal[0].local_date
                balances, spending = state.balances, state.spending
                paid = sale.balance_paid_tiyn
                balances[sale.student_id] = balances.get(sale.student_id, 0) - paid
                spent = spending.get((sale.student_id, day), 0)
                spending[(sale.student_id, day)] = spent + sale.amount_tiyn
                for vid, tiyn in sale.vouchers:
                    used = state.voucher_spent
                    used[vid] = used.get(vid, 0) + tiyn
                if sale.token is not None:
                    state.redeemed_tokens.add(sale.token[0])
            if entry.presence is not None:
                pid, day, st = entry.presence
                state.presence_by_person[pid] = (day, st)
        for cb in self._append_listeners:
            cb(self.last_seq)
        self._notify(prep, None)

    @staticmethod
    def _notify(prep: PreparedJournal, err: BaseException | None) -> None:
        if prep.done is not None and not prep.done.done():
            if err is None:
                prep.done.set_result(None)
            else:
                prep.done.set_exception(err)
        if prep.on_done is not None:
            prep.on_done(prep, err)

    def _journal_rows_in_order(self, db: sqlite3.Connection, prep: PreparedJournal) -> None:
        """In the journal thread: refuse a group that does not follow the last committed one."""
        expected = self._thread_next_seq
        if prep.first_seq != expected:
            raise StoreError(
                f"journal group starting at seq {prep.first_seq} does not follow seq "
                f"{expected - 1}: an earlier group failed"
            )
        write_group(db, *prep.rows.args())

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
    return canonical_model(ev)  # canonical(ev.model_dump(mode="json")), without pydantic


def decode_events(blobs: list[bytes]) -> list[Event]:
    """Stored journal rows as events (CPU work: call it off the event loop for a large batch)."""
    return [_event(b) for b in blobs]


def _event(blob: bytes) -> Event:
    return EVENT_ADAPTER.validate_python(loads_plain(blob, context="journal"))
