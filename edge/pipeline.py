"""read -> identify -> decide -> commit -> actuate.

One writer task makes decisions in arrival order and commits them in groups: every tap that
arrives while a transaction is committing goes into the next transaction (group commit). A tap's
future resolves only after the transaction holding its decision, event and side effects has
committed, so nothing is actuated without a durable record (DESIGN invariant 1).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from edge.core.decide import Decision, decide
from edge.core.model import MealKey, Presence, SchoolState, ServedMeal, Tap
from edge.faults import crash_point
from edge.store import EdgeStore, JournalEntry
from protocol.messages import (
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
)

log = logging.getLogger(__name__)
MAX_GROUP = 256
CHECKPOINT_EVERY = 1.0  # seconds


class PipelineError(Exception):
    """The pipeline cannot decide (no policy yet, or the store failed)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A committed decision and the event that records it."""

    tap: Tap
    decision: Decision
    event: Event


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Overlay:
    """The state as the decisions earlier in the same group left it (not yet committed)."""

    def __init__(self, base: SchoolState) -> None:
        self.base = base
        self.presence_by_person: dict[str, tuple[dt.date, Presence]] = {}
        self.meals: dict[MealKey, ServedMeal] = {}
        self.card = base.card
        self.student = base.student
        self.staff = base.staff

    def presence(self, person_id: str, day: dt.date) -> Presence | None:
        got = self.presence_by_person.get(person_id)
        if got is not None:
            return got[1] if got[0] == day else None
        return self.base.presence(person_id, day)

    def served(self, key: MealKey) -> ServedMeal | None:
        return self.meals.get(key) or self.base.served(key)


def to_ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def plan(tap: Tap, decision: Decision, *, defer_presence: bool) -> JournalEntry:
    """The event and side effects that record ``decision``."""
    at_ms = to_ms(tap.at)
    if not decision.granted:
        return JournalEntry(
            DeniedEvent(
                seq=1,
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
            seq=1,
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
            seq=1,
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
            seq=1,
            at_ms=at_ms,
            terminal=tap.terminal,
            student_id=decision.student_id,
            period=decision.meal_period,
            local_date=decision.local_date.isoformat(),
            meal=decision.meal,
        )
        return JournalEntry(ev, meal=(key, decision.meal.value, 0))
    return JournalEntry(
        LibraryVisitEvent(seq=1, at_ms=at_ms, terminal=tap.terminal, student_id=decision.student_id)
    )


@dataclass
class _Work:
    tap: Tap
    defer_presence: bool
    future: asyncio.Future[Outcome]


class Pipeline:
    """Owns the writer task. Use as ``async with Pipeline(store) as p: await p.submit(tap)``."""

    def __init__(self, store: EdgeStore) -> None:
        self.store = store
        self._queue: asyncio.Queue[_Work] = asyncio.Queue()
        self._tasks: asyncio.TaskGroup | None = None
        self._writer: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None]
        self.decisions = 0
        self.groups = 0

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
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)

    async def submit(self, tap: Tap, *, defer_presence: bool = False) -> Outcome:
        """Decide and durably record ``tap``; returns once committed. The caller then actuates."""
        if self.store.policy is None:
            raise PipelineError("no policy loaded: the school has not received its policy yet")
        crash_point("after_read")
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Work(tap, defer_presence, fut))
        return await fut

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY)
            try:
                await self.store.checkpoint()
            except sqlite3.OperationalError as err:  # busy with a reader: next time
                log.debug("WAL checkpoint postponed: %s", err)

    async def _write_loop(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                outcomes = await self._commit_group(group)
            except Exception as err:  # the store failed: no tap of this group is actuated
                log.exception("journal commit failed; %d taps refused", len(group))
                for work in group:
                    if not work.future.done():
                        work.future.set_exception(PipelineError(f"journal commit failed: {err}"))
                continue
            for work, outcome in zip(group, outcomes, strict=True):
                if not work.future.done():
                    work.future.set_result(outcome)

    async def _commit_group(self, group: list[_Work]) -> list[Outcome]:
        store = self.store
        policy = store.policy
        assert policy is not None
        async with store.write_lock:
            view = _Overlay(store.state)
            entries: list[JournalEntry] = []
            decisions: list[Decision] = []
            for work in group:
                tap = work.tap
                if not tap.is_manual:
                    view.card(tap.credential or "")  # identify
                crash_point("after_identify")
                decision = decide(policy, view, tap)
                crash_point("after_decide")
                entry = plan(tap, decision, defer_presence=work.defer_presence)
                if entry.presence is not None:
                    pid, day, state = entry.presence
                    view.presence_by_person[pid] = (day, state)
                if entry.meal is not None:
                    view.meals[entry.meal[0]] = ServedMeal(tap.at, tap.terminal)
                entries.append(entry)
                decisions.append(decision)
            events = await store.journal(entries)
        crash_point("after_commit")
        self.decisions += len(group)
        self.groups += 1
        return [
            Outcome(w.tap, d, e)
            for w, d, e in zip(group, decisions, events[: len(group)], strict=True)
        ]

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
