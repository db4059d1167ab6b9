"""read -> identify -> decide -> commit -> actuate.

One writer task decides taps in arrival order, as they arrive (each numbered and encoded as it is
decided), and hands every batch decided together to the store's open journal group at once
(``EdgeStore.hand_over``). The journal thread
takes the open group itself the moment the transaction before it returns (no trip through the
event loop between two group commits), so the next group is decided while the previous one's
fsync runs, on top of its (uncommitted) effects, deciding never waits for an fsync, and a tap
waits for at most the commit under way and its own group's. A tap's future resolves only after
the transaction holding its decision, event and side effects has committed and the store's
memory follows it, so nothing is actuated without a durable record (DESIGN invariant 1).

A group that fails takes down every group handed over before the loop heard of it (their
numbers no longer follow: the thread refuses them): their decisions may rest on the failed
group's effects. From then on decisions see exactly what was committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.core.decide import Decision, decide
from edge.core.model import (
    Dish,
    MealKey,
    ParentLimits,
    Presence,
    Purchase,
    SchoolState,
    ServedMeal,
    Tap,
    Voucher,
)
from edge.core.money import PurchaseDecision, decide_purchase
from edge.faults import crash_point
from edge.store import EdgeStore, JournalEntry, PreparedJournal, Sale
from edge.store.journal import Numbered
from protocol.messages import (
    AlarmCode,
    DeniedEvent,
    Direction,
    EntryEvent,
    Event,
    ExitEvent,
    LibraryVisitEvent,
    ManualPassEvent,
    MealServedEvent,
    NotPassedEvent,
    Reason,
    TerminalKind,
    VoucherSpend,
)

log = logging.getLogger(__name__)
CHECKPOINT_EVERY = 1.0  # seconds


class PipelineError(Exception):
    """The pipeline cannot decide (no policy yet, or the store failed). ``cannot_record``: the
    store cannot write (a full disk, an I/O error): nothing was recorded, so nothing may be
    actuated; the terminal says so."""

    def __init__(self, message: str, *, cannot_record: bool = False) -> None:
        super().__init__(message)
        self.cannot_record = cannot_record


SQLITE_IOERR = 10
SQLITE_FULL = 13


def store_cannot_write(err: BaseException) -> bool:
    """A full disk or an I/O error (SQLite's primary codes, or the OS's), not a bug."""
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (SQLITE_FULL, SQLITE_IOERR):
        return True
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT)


@dataclass(slots=True)
class StoreFault:
    """The store cannot write: since when (the school's time), how many taps were refused."""

    since: dt.datetime
    refused: int
    detail: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """A committed decision and the event that records it."""

    tap: Tap
    decision: Decision
    event: Event


@dataclass(frozen=True, slots=True)
class Sold:
    """A committed purchase decision (granted: debit + receipt at ``event.seq``) and its event."""

    purchase: Purchase
    decision: PurchaseDecision
    event: Event


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Layer:
    """Effects of one group of decisions that is not committed yet."""

    __slots__ = ("debits", "meals", "presence_by_person", "spending", "tokens", "voucher_spends")

    def __init__(self) -> None:
        self.presence_by_person: dict[str, tuple[dt.date, Presence]] = {}
        self.meals: dict[MealKey, ServedMeal] = {}
        self.debits: dict[str, int] = {}  # tiyn per student
        self.spending: dict[tuple[str, dt.date], int] = {}
        self.voucher_spends: dict[str, int] = {}  # tiyn per voucher id
        self.tokens: set[str] = set()  # QR vouchers used


class _View:
    """The state as committed, overlaid with the effects of groups still committing (oldest
    first) and of the decisions earlier in the group being decided (the last layer)."""

    def __init__(self, base: SchoolState, layers: list[_Layer]) -> None:
        self.base = base
        self.layers = layers
        self.card = base.card
        self.student = base.student
        self.staff = base.staff
        self.limits: Callable[[str], ParentLimits] = base.limits
        self.menu: Callable[[dt.date], tuple[Dish, ...]] = base.menu
        self.vouchers: Callable[[str], tuple[Voucher, ...]] = base.vouchers
        self.issuer_keys: Callable[[], Mapping[str, Ed25519PublicKey]] = base.issuer_keys

    def voucher_left(self, voucher: Voucher) -> int:
        pending = sum(layer.voucher_spends.get(voucher.id, 0) for layer in self.layers)
        return self.base.voucher_left(voucher) - pending

    def token_redeemed(self, token_id: str) -> bool:
        return self.base.token_redeemed(token_id) or any(
            token_id in layer.tokens for layer in self.layers
        )

    def balance(self, student_id: str) -> int:
        pending = sum(layer.debits.get(student_id, 0) for layer in self.layers)
        return self.base.balance(student_id) - pending

    def spent(self, student_id: str, day: dt.date) -> int:
        key = (student_id, day)
        pending = sum(layer.spending.get(key, 0) for layer in self.layers)
        return self.base.spent(student_id, day) + pending

    def presence(self, person_id: str, day: dt.date) -> Presence | None:
        for layer in reversed(self.layers):
            got = layer.presence_by_person.get(person_id)
            if got is not None:
                return got[1] if got[0] == day else None
        return self.base.presence(person_id, day)

    def served(self, key: MealKey) -> ServedMeal | None:
        for layer in reversed(self.layers):
            got = layer.meals.get(key)
            if got is not None:
                return got
        return self.base.served(key)


def to_ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def plan(
    tap: Tap, decision: Decision, *, defer_presence: bool, seq: int = 1, doubt: bool = False
) -> JournalEntry:
    """The event and side effects that record ``decision``; ``seq`` and ``doubt``: the
    number the store will give it and whether the clock is in doubt (the store copies the
    event only if they turn out otherwise)."""
    at_ms = to_ms(tap.at)
    flag: Literal[True] | None = True if doubt else None
    if not decision.granted:
        return JournalEntry(
            DeniedEvent(
                seq=seq,
                clock_in_doubt=flag,
                at_ms=at_ms,
                terminal=tap.terminal,
                terminal_kind=tap.kind,
                direction=tap.direction,
                reason=decision.reason,
                student_id=decision.student_id,
            ),
            credential=tap.credential,
        )
    presence = None
    if decision.presence_after is not None and not defer_presence:
        assert decision.person_id is not None
        presence = (decision.person_id, decision.local_date, decision.presence_after)
    if tap.is_manual:
        assert decision.student_id and decision.authorised_by
        ev: Event = ManualPassEvent(
            seq=seq,
            clock_in_doubt=flag,
            at_ms=at_ms,
            terminal=tap.terminal,
            student_id=decision.student_id,
            authorised_by=decision.authorised_by,
            direction=tap.direction or Direction.IN,
        )
        return JournalEntry(ev, presence=presence)
    if tap.kind is TerminalKind.TURNSTILE:
        cls = ExitEvent if tap.direction is Direction.OUT else EntryEvent
        ev = cls(
            seq=seq,
            clock_in_doubt=flag,
            at_ms=at_ms,
            terminal=tap.terminal,
            student_id=decision.student_id,
            staff_id=decision.staff_id,
            passback_violation=decision.passback_violation,
        )
        return JournalEntry(ev, credential=tap.credential, presence=presence)
    assert decision.student_id is not None
    if tap.kind is TerminalKind.CANTEEN:
        assert decision.meal is not None and decision.meal_period is not None
        key = MealKey(decision.student_id, decision.local_date, decision.meal_period)
        ev = MealServedEvent(
            seq=seq,
            clock_in_doubt=flag,
            at_ms=at_ms,
            terminal=tap.terminal,
            student_id=decision.student_id,
            period=decision.meal_period,
            local_date=decision.local_date.isoformat(),
            meal=decision.meal,
        )
        return JournalEntry(ev, meal=(key, decision.meal.value, 0))
    return JournalEntry(
        LibraryVisitEvent(
            seq=seq,
            clock_in_doubt=flag,
            at_ms=at_ms,
            terminal=tap.terminal,
            student_id=decision.student_id,
        )
    )


def plan_purchase(
    purchase: Purchase, decision: PurchaseDecision, menu: tuple[Dish, ...]
) -> JournalEntry:
    """The event, debit, receipt and meal ledger row that record a purchase decision."""
    at_ms = to_ms(purchase.at)
    if not decision.granted:
        return JournalEntry(
            DeniedEvent(
                seq=1,
                at_ms=at_ms,
                terminal=purchase.terminal,
                terminal_kind=TerminalKind.CANTEEN,
                reason=decision.reason,
                student_id=decision.student_id,
            )
        )
    assert decision.meal is not None and decision.meal_period is not None
    dishes = {d.id: d for d in menu}
    portions: dict[str, int] = {}
    for item in decision.items:
        portions[item] = portions.get(item, 0) + 1
    lines = tuple((i, dishes[i].name, dishes[i].price_tiyn, n) for i, n in portions.items())
    key = MealKey(decision.student_id, decision.local_date, decision.meal_period)
    ev = MealServedEvent(
        seq=1,
        at_ms=at_ms,
        terminal=purchase.terminal,
        student_id=decision.student_id,
        period=decision.meal_period,
        local_date=decision.local_date.isoformat(),
        meal=decision.meal,
        amount_tiyn=decision.amount_tiyn,
        items=list(decision.items),
        balance_after_tiyn=decision.balance_after_tiyn,
        vouchers=[VoucherSpend(voucher_id=v, amount_tiyn=t) for v, t in decision.vouchers],
        qr_token=decision.token.token_id if decision.token is not None else None,
    )
    token = decision.token
    sale = Sale(
        decision.student_id,
        decision.amount_tiyn,
        decision.balance_after_tiyn,
        lines,
        vouchers=decision.vouchers,
        token=(token.token_id, token.issuer) if token is not None else None,
    )
    return JournalEntry(ev, meal=(key, decision.meal.value, decision.amount_tiyn), sale=sale)


@dataclass
class _Work:
    tap: Tap | Purchase
    defer_presence: bool
    future: asyncio.Future[Outcome | Sold]


class _Group:
    """The pipeline's record of one journal group: its taps, their decisions, and the layers
    of their effects (one per batch of taps decided together and handed over into it)."""

    __slots__ = ("decisions", "layer", "layers", "work")

    def __init__(self, layer: _Layer) -> None:
        self.layer = layer  # the first batch's (the one being decided, while it is one)
        self.layers = [layer]
        self.work: list[_Work] = []
        self.decisions: list[Decision | PurchaseDecision] = []


MAX_BATCH = 256  # taps decided together, then handed over at once


class Pipeline:
    """Owns the writer task. Use as ``async with Pipeline(store) as p: await p.submit(tap)``."""

    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._tasks: asyncio.TaskGroup | None = None
        self._writer: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None]
        self._layers: list[_Layer] = []  # effects of groups decided, not yet committed
        self._epoch = store.journal_epoch  # the layers rest on no failed group of this epoch
        self._in_flight = 0  # groups handed to the journal thread, not yet reported back
        self._drained = asyncio.Event()
        self._drained.set()
        self.decisions = 0
        self.groups = 0
        self.on_group: Callable[[int], None] | None = None  # a committed group's size (benches)
        # set while the store cannot write (a full disk); cleared by the next commit that works
        self.store_fault: StoreFault | None = None

    async def __aenter__(self) -> Pipeline:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._writer = self._tasks.create_task(self._write_loop(), name="pipeline-writer")
        self._checkpointer = self._tasks.create_task(self._checkpoint_loop(), name="checkpoint")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.cancel()
            self._checkpointer.cancel()
        await self._drained.wait()  # the groups handed over report back (their taps resolve)
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)

    async def submit(self, tap: Tap, *, defer_presence: bool = False) -> Outcome:
        """Decide and durably record ``tap``; returns once committed. The caller then actuates."""
        if self.store.policy is None:
            raise PipelineError("no policy loaded: the school has not received its policy yet")
        crash_point("after_read")
        if self.store.clock_in_doubt() and not tap.clock_in_doubt:
            tap = dataclasses.replace(tap, clock_in_doubt=True)
        fut: asyncio.Future[Outcome | Sold] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Work(tap, defer_presence, fut))
        done = await fut
        assert isinstance(done, Outcome)
        return done

    async def sell(self, purchase: Purchase) -> Sold:
        """Decide and durably record a purchase (debit, receipt, meal ledger row and event in
        one transaction, in order with every tap of the school); returns once committed."""
        if self.store.policy is None:
            raise PipelineError("no policy loaded: the school has not received its policy yet")
        fut: asyncio.Future[Outcome | Sold] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Work(purchase, False, fut))
        done = await fut
        assert isinstance(done, Sold)
        return done

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            try:
                await self.store.checkpoint()
            except sqlite3.OperationalError as err:  # busy with a reader: next time
                log.debug("WAL checkpoint postponed: %s", err)

    async def _write_loop(self) -> None:
        """Decide taps in arrival order, as they arrive: every tap waiting is decided (each one
        numbered and encoded as it is), then the batch is handed over at once to the store's
        open group (``EdgeStore.hand_over``), which the journal thread takes itself the moment
        its previous transaction returns. Deciding never waits for an fsync; the thread never
        takes half of what the loop is deciding."""
        store = self.store
        while True:
            work = await self._queue.get()
            await store.money_settled()  # a downlink credit is committing: wait for it
            if store.journal_epoch != self._epoch:
                # A journal group failed: every group handed over before the store knew is
                # refused (its numbers do not follow), so no decision may rest on their
                # effects any more.
                self._layers.clear()
                self._epoch = store.journal_epoch
            batch = _Group(_Layer())
            self._layers.append(batch.layer)
            numbered: list[Numbered] = []
            self._decide(work, batch, numbered)
            while (
                len(batch.work) < MAX_BATCH and not self._queue.empty() and store.money_is_settled()
            ):
                self._decide(self._queue.get_nowait(), batch, numbered)
            prep = store.hand_over(numbered, self._group_done)
            group: _Group | None = prep.tag
            if group is None:  # a new group
                prep.tag = batch
                self._in_flight += 1
                self._drained.clear()
            else:  # joined the open group
                group.work += batch.work
                group.decisions += batch.decisions
                group.layers.append(batch.layer)

    def _decide(self, work: _Work, batch: _Group, numbered: list[Numbered]) -> None:
        """Decide one tap on the committed state and the effects of the groups and taps decided
        before it (pure), plan its record, number it, and add its effects to the batch's."""
        store = self.store
        policy = store.policy
        assert policy is not None
        layer = batch.layer
        view = _View(store.state, self._layers)
        tap = work.tap
        seq, doubt = store.next_seq, store.clock_in_doubt()
        if isinstance(tap, Purchase):
            sale = decide_purchase(policy, view, tap)
            crash_point("after_decide")
            entry = plan_purchase(tap, sale, view.menu(sale.local_date))
            numbered.append(store.number_entry(entry))
            batch.work.append(work)
            batch.decisions.append(sale)
            if entry.sale is not None and entry.meal is not None:
                sid, amount = sale.student_id, sale.amount_tiyn
                layer.debits[sid] = layer.debits.get(sid, 0) + sale.balance_paid_tiyn
                key = (sid, sale.local_date)
                layer.spending[key] = layer.spending.get(key, 0) + amount
                for vid, tiyn in sale.vouchers:
                    layer.voucher_spends[vid] = layer.voucher_spends.get(vid, 0) + tiyn
                if sale.token is not None:
                    layer.tokens.add(sale.token.token_id)
                if view.served(entry.meal[0]) is None:
                    layer.meals[entry.meal[0]] = ServedMeal(tap.at, tap.terminal)
            return
        if not tap.is_manual:
            view.card(tap.credential or "")  # identify
        crash_point("after_identify")
        decision = decide(policy, view, tap)
        crash_point("after_decide")
        entry = plan(tap, decision, defer_presence=work.defer_presence, seq=seq, doubt=doubt)
        numbered.append(store.number_entry(entry))
        batch.work.append(work)
        batch.decisions.append(decision)
        if entry.presence is not None:
            pid, day, state = entry.presence
            layer.presence_by_person[pid] = (day, state)
        if entry.meal is not None:
            layer.meals[entry.meal[0]] = ServedMeal(tap.at, tap.terminal)

    def _group_done(self, prep: PreparedJournal, err: BaseException | None) -> None:
        """On the loop, in commit order, once the store's memory follows the journal: resolve
        the group's taps (or refuse them all: nothing of the group is actuated)."""
        group: _Group = prep.tag
        self._in_flight -= 1
        if self._in_flight == 0:
            self._drained.set()
        for layer in group.layers:  # committed: its effects are in the store's state now
            if layer in self._layers:
                self._layers.remove(layer)
        if err is not None:  # the store failed: no tap of this group is actuated
            full = store_cannot_write(err) or self.store_fault is not None
            if full:
                self._store_failed(len(group.work), err)
            else:
                log.error("journal commit failed; %d taps refused: %s", len(group.work), err)
            for work in group.work:
                if not work.future.done():
                    work.future.set_exception(
                        PipelineError(f"journal commit failed: {err}", cannot_record=full)
                    )
            return
        crash_point("after_commit")
        if self.store_fault is not None:
            self._store_recovered()
        self.decisions += len(group.work)
        self.groups += 1
        if self.on_group is not None:
            self.on_group(len(group.work))
        for work, d, e in zip(group.work, group.decisions, prep.events, strict=False):
            if work.future.done():
                continue
            if isinstance(work.tap, Purchase):
                assert isinstance(d, PurchaseDecision)
                work.future.set_result(Sold(work.tap, d, e))
            else:
                assert isinstance(d, Decision)
                work.future.set_result(Outcome(work.tap, d, e))

    def _store_failed(self, taps: int, err: BaseException) -> None:
        fault = self.store_fault
        if fault is None:
            log.error("the store cannot write (%s): taps are refused until it can", err)
            fault = self.store_fault = StoreFault(self.store.clock(), 0, str(err)[:200])
        fault.refused += taps

    def _store_recovered(self) -> None:
        """The store writes again: record the outage now that it can be recorded."""
        fault = self.store_fault
        assert fault is not None and self._tasks is not None
        self.store_fault = None
        log.warning("the store writes again after %d refused taps", fault.refused)
        detail = (
            f"{fault.refused} taps refused, not recorded, since "
            f"{fault.since.isoformat(timespec='seconds')}: {fault.detail}"
        )[:500]

        async def record() -> None:
            try:
                await self.store.journal_alarm(
                    self.store.device, AlarmCode.STORE_FULL, True, detail
                )
                await self.store.journal_alarm(
                    self.store.device, AlarmCode.STORE_FULL, False, "the store writes again"
                )
            except Exception as err:  # full again: the next commit that works tries again
                log.error("the store's outage not recorded yet: %s", err)
                if self.store_fault is None:
                    self.store_fault = fault

        self._tasks.create_task(record(), name="store-full-record")

    async def passage(self, outcome: Outcome, passed: bool, at: dt.datetime) -> None:
        """The turnstile reported whether the person went through a released gate."""
        d = outcome.decision
        person = d.person_id
        if person is None or d.presence_after is None:
            return
        async with self.store.write_lock:
            if passed:
                await self.store.set_presence(person, d.local_date, d.presence_after, to_ms(at))
                return
            ev = NotPassedEvent(
                seq=1,
                at_ms=to_ms(at),
                terminal=outcome.tap.terminal,
                granted_seq=outcome.event.seq,
                student_id=d.student_id,
                staff_id=d.staff_id,
            )
            await self.store.journal([JournalEntry(ev)])


def denial_reason(outcome: Outcome) -> Reason | None:
    return None if outcome.decision.granted else outcome.decision.reason


Clock = Callable[[], dt.datetime]
