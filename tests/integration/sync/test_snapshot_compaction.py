"""The downlink log is compacted: the state a snapshot is built from is the school's checkpoint
(its roster as changes) and at most ``CHECKPOINT_EVERY`` versions after it, so the rows read and
the bytes kept do not grow with the history; the snapshot equals the fold of the whole log."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import func, select

from protocol.codec import encode
from protocol.messages import (
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    CardBind,
    CardBinding,
    CardBlock,
    CategoriesSet,
    CategoryMembership,
    Change,
    ConsentKind,
    ConsentRecord,
    ConsentSet,
    MenuItem,
    MenuSet,
    OwnerKind,
    StaffRecord,
    StaffRemove,
    StaffUpsert,
    StudentRecord,
    StudentUpsert,
)
from server.db import make_engine, session_factory
from server.models import ChangeLogCheckpoint, ChangeLogEntry
from server.sync.changelog import (
    CHECKPOINT_EVERY,
    append_changes,
    changes_after,
    legacy_money,
    load_state,
    versions_read,
)
from server.sync.state import fold

pytestmark = [pytest.mark.postgres]

STUDENTS = 40


def _churn(rng: random.Random, v: int) -> list[Change]:
    """One version of everyday changes over the same roster: consents, categories, cards
    blocked, staff coming and going, the day's menu."""
    sid = f"st{rng.randint(1, STUDENTS)}"
    pick = v % 5
    if pick == 0:
        return [
            ConsentSet(
                student_id=sid,
                consent=ConsentRecord(
                    kind=ConsentKind.DATA,
                    granted=rng.random() < 0.8,
                    given_by="parent",
                    at_ms=v,
                    document=f"doc{v % 7}",
                ),
            )
        ]
    if pick == 1:
        return [
            CategoriesSet(
                student_id=sid,
                categories=[
                    CategoryMembership(
                        code=rng.choice(["large_family", "disabled"]),
                        valid_from="2027-01-01",
                        valid_to="2027-12-31",
                        document="cert",
                    )
                ],
            )
        ]
    if pick == 2:
        return [CardBlock(credential=f"EM:{rng.randint(1, STUDENTS):04d}", reason=f"lost {v % 9}")]
    if pick == 3:
        return (
            [StaffUpsert(staff=StaffRecord(id="tc1", roles=["guard"]))]
            if v % 2
            else [StaffRemove(staff_id="tc1")]
        )
    day = f"2027-{1 + (v // 28) % 12:02d}-{1 + v % 28:02d}"
    return [MenuSet(local_date=day, items=[MenuItem(id="m1", name="Lunch", price_tiyn=50_000)])]


def _sizes(db, school: str) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(log versions read for the head state, checkpoint bytes, snapshot bytes)."""
    cp = db.get(ChangeLogCheckpoint, school)
    head = db.execute(select(func.max(ChangeLogEntry.version))).scalar_one()
    snap = load_state(db, school).snapshot(school, head).model_dump_json()
    return versions_read(db, school), len(json.dumps(cp.changes)), len(snap)


def test_snapshot_reads_the_roster_not_the_history(pg_url: str) -> None:
    rng = random.Random(7)
    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as db:
            roster: list[Change] = []
            for i in range(1, STUDENTS + 1):
                roster.append(
                    StudentUpsert(
                        student=StudentRecord(
                            id=f"st{i}", grade=1 + i % 11, class_name="5A", shift=1
                        )
                    )
                )
                roster.append(
                    CardBind(
                        card=CardBinding(
                            credential=f"EM:{i:04d}",
                            owner_kind=OwnerKind.STUDENT,
                            owner_id=f"st{i}",
                        )
                    )
                )
            append_changes(db, "S1", roster)
            sizes = {}
            for v in range(2, 601):
                append_changes(db, "S1", _churn(rng, v))
                if v in (300, 600):
                    db.flush()
                    sizes[v] = _sizes(db, "S1")
            db.commit()
            # the log is all there (deltas for edges a few versions behind), but a snapshot
            # reads the checkpoint and the last few versions only
            assert db.execute(select(func.count()).select_from(ChangeLogEntry)).scalar() == 600
            read_300, cp_300, snap_300 = sizes[300]
            read_600, cp_600, snap_600 = sizes[600]
            assert read_300 < CHECKPOINT_EVERY and read_600 < CHECKPOINT_EVERY
            # twice the history: the same roster, about the same bytes (the values differ)
            assert cp_600 < cp_300 * 1.1 and snap_600 < snap_300 * 1.1
            # and the state from the checkpoint is the fold of the whole log
            whole = fold(changes_after(db, "S1", 0))
            assert load_state(db, "S1").snapshot("S1", 600) == whole.snapshot("S1", 600)
    finally:
        engine.dispose()


def test_snapshot_money_follows_the_pupils_not_the_top_ups(pg_url: str) -> None:
    """One pupil topped up 10,000 times (100 versions of 100 top-ups, a correction now and
    then): the snapshot and the checkpoint carry one net, as big after 10,000 top-ups as after
    100; the lists sent to an edge of the release before grow with every top-up."""
    engine = make_engine(pg_url)
    try:
        with session_factory(engine)() as db:
            pupil = StudentRecord(id="st1", grade=5, class_name="5A", shift=1)
            append_changes(db, "S1", [StudentUpsert(student=pupil)])
            sizes: dict[int, tuple[int, int, int]] = {}
            for v in range(1, 101):
                money: list[Change] = [
                    BalanceCredit(ledger_id=f"L{v}-{i}", student_id="st1", amount_tiyn=1_000)
                    for i in range(100)
                ]
                if v % 10 == 0:
                    money.append(BalanceDebit(ledger_id=f"D{v}", student_id="st1", amount_tiyn=500))
                append_changes(db, "S1", money)
                if v in (1, 100):
                    db.flush()
                    head = v + 1
                    legacy = legacy_money(db, "S1", head)
                    state = load_state(db, "S1")
                    cp = db.get(ChangeLogCheckpoint, "S1")
                    sizes[v] = (
                        len(encode(state.snapshot("S1", head))),
                        len(json.dumps(cp.changes)) if cp is not None else 0,
                        len(encode(state.snapshot("S1", head, legacy))),
                    )
            db.commit()
            snap_100, _cp, lists_100 = sizes[1]
            snap_10k, cp_10k, lists_10k = sizes[100]
            assert snap_10k <= snap_100 + 8  # the net's digits, nothing more
            assert cp_10k < 2_000  # the pupil and one net, not 10,000 credits
            assert lists_10k > 50 * lists_100  # before: every top-up in every snapshot
            state = load_state(db, "S1")
            assert state.balance_totals() == [
                BalanceTotal(student_id="st1", net_tiyn=10_000 * 1_000 - 10 * 500)
            ]
            assert versions_read(db, "S1") < CHECKPOINT_EVERY
            # the lists are every top-up and correction, once
            credits, debits = legacy_money(db, "S1", 101)
            assert (len(credits), len(debits)) == (10_000, 10)
            whole = fold(changes_after(db, "S1", 0))
            assert state.snapshot("S1", 101) == whole.snapshot("S1", 101)
    finally:
        engine.dispose()
