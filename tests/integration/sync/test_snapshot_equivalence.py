"""Invariant 4: a snapshot at version N (the server's fold of its change log) leaves an edge in
the same state as applying deltas 1..N; replaying a delta changes nothing."""

from __future__ import annotations

import random
from pathlib import Path

from edge.store import EdgeStore
from protocol.messages import (
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    CardBind,
    CardBinding,
    CardBlock,
    CardUnbind,
    CategoriesSet,
    CategoryMembership,
    Change,
    ConsentKind,
    ConsentRecord,
    ConsentSet,
    LendingApproval,
    LendingItem,
    LendingSet,
    OwnerKind,
    StaffRecord,
    StaffRemove,
    StaffUpsert,
    StudentRecord,
    StudentRemove,
    StudentUpsert,
    SyncDelta,
    SyncSnapshot,
)
from server.sync.state import SchoolState, compacted, fold, legacy_money_of
from tests.support.canteen_school import money_invariants


def random_changes(rng: random.Random, n: int) -> list[list[Change]]:
    """Versions of 1-4 changes each, over a small id space so that they collide."""
    state = SchoolState()
    versions: list[list[Change]] = []
    for _ in range(n):
        changes: list[Change] = []
        for _ in range(rng.randint(1, 4)):
            sid, tid = f"st{rng.randint(1, 6)}", f"tc{rng.randint(1, 3)}"
            cred = f"EM:{rng.randint(1, 8):04d}"
            pick = rng.randrange(9)
            change: Change
            if pick == 0 or not state.students:
                change = StudentUpsert(
                    student=StudentRecord(
                        id=sid, grade=rng.randint(1, 11), class_name="5A", shift=rng.randint(1, 2)
                    )
                )
            elif pick == 1 and rng.random() < 0.4:
                change = StudentRemove(student_id=rng.choice(sorted(state.students)))
            elif pick == 2:
                change = StaffUpsert(staff=StaffRecord(id=tid, roles=["guard"]))
            elif pick == 3 and state.staff:
                change = StaffRemove(staff_id=rng.choice(sorted(state.staff)))
            elif pick == 4:
                change = CardBind(
                    card=CardBinding(
                        credential=cred,
                        owner_kind=OwnerKind.STUDENT,
                        owner_id=rng.choice(sorted(state.students)),
                    )
                )
            elif pick == 5:
                change = CardBlock(credential=cred, reason=f"lost {rng.randint(1, 9)}")
            elif pick == 6:
                change = CardUnbind(credential=cred)
            elif pick == 7:
                change = ConsentSet(
                    student_id=rng.choice(sorted(state.students)),
                    consent=ConsentRecord(
                        kind=ConsentKind.DATA,
                        granted=rng.random() < 0.7,
                        given_by="parent",
                        at_ms=rng.randint(0, 10**12),
                        document="doc",
                    ),
                )
            else:
                change = CategoriesSet(
                    student_id=rng.choice(sorted(state.students)),
                    categories=[
                        CategoryMembership(
                            code="large_family",
                            valid_from="2026-01-01",
                            valid_to="2026-12-31",
                            document="cert",
                        )
                    ],
                )
            state.apply(change)
            changes.append(change)
        if rng.random() < 0.2:  # the library desk's list, wholesale
            lending = LendingSet(
                items=[
                    LendingItem(
                        inventory_no=f"I-{i}",
                        kind="device" if i < 3 else "book",
                        campaign="c1" if i < 3 else None,
                        holder=rng.choice([None, *sorted(state.students)]),
                    )
                    for i in range(rng.randint(0, 5))
                ],
                approvals=[
                    LendingApproval(campaign="c1", student_id=sid, rank=r + 1)
                    for r, sid in enumerate(sorted(state.students)[: rng.randint(0, 3)])
                ],
            )
            state.apply(lending)
            changes.append(lending)
        versions.append(changes)
    return versions


def edge_view(store: EdgeStore) -> tuple[object, object, object]:
    s = store.state
    return (dict(s.students), dict(s.staff_by_id), dict(s.cards))


async def desk_view(store: EdgeStore) -> tuple[object, object]:
    items = [await store.desk_item(f"I-{i}") for i in range(6)]
    approvals = [await store.desk_approvals_of(f"st{i}") for i in range(1, 7)]
    return items, approvals


async def test_snapshot_equals_deltas_and_replay_changes_nothing(tmp_path: Path) -> None:
    rng = random.Random(2026)
    non_empty = lent = 0
    for trial in range(5):
        versions = random_changes(rng, 25)
        by_delta = await EdgeStore.open(tmp_path / f"d{trial}.db", school="S1", device="a")
        by_snap = await EdgeStore.open(tmp_path / f"s{trial}.db", school="S1", device="b")
        try:
            for v, changes in enumerate(versions, start=1):
                delta = SyncDelta(school="S1", version=v, base_version=v - 1, changes=changes)
                assert await by_delta.apply_delta(delta)
            before = edge_view(by_delta)
            assert not await by_delta.apply_delta(delta)  # a replay
            assert edge_view(by_delta) == before
            state = fold(c for changes in versions for c in changes)
            await by_snap.apply_snapshot(state.snapshot("S1", len(versions)))
            assert await by_snap.sync_version() == await by_delta.sync_version()
            assert edge_view(by_snap) == edge_view(by_delta), f"trial {trial}"
            assert await desk_view(by_snap) == await desk_view(by_delta), f"trial {trial}"
            lent += any(i is not None and i.holder for i in (await desk_view(by_snap))[0])
            non_empty += bool(by_delta.state.students and by_delta.state.cards)
        finally:
            await by_delta.close()
            await by_snap.close()
    assert non_empty >= 2 and lent >= 1  # the comparison is not vacuous


async def test_a_snapshot_of_the_compacted_log_equals_a_long_history(tmp_path: Path) -> None:
    """A long history (800 versions over a small roster) folded from its compacted form (the
    centre's checkpoint) gives the same snapshot, and an edge that takes it ends where an edge
    that applied every delta is; the compacted form is the size of the roster, not the
    history."""
    rng = random.Random(19)
    versions = random_changes(rng, 800)
    flat = [c for changes in versions for c in changes]
    state = fold(flat)
    short = compacted(state)
    assert len(short) < len(flat) / 20
    assert fold(short).snapshot("S1", 800) == state.snapshot("S1", 800)
    # a checkpoint in the middle, folded with the rest: the same again
    middle = compacted(fold(c for changes in versions[:517] for c in changes))
    rest = [c for changes in versions[517:] for c in changes]
    assert fold(rest, fold(middle)).snapshot("S1", 800) == state.snapshot("S1", 800)
    by_delta = await EdgeStore.open(tmp_path / "d.db", school="S1", device="a")
    by_snap = await EdgeStore.open(tmp_path / "s.db", school="S1", device="b")
    try:
        for v, changes in enumerate(versions, start=1):
            delta = SyncDelta(school="S1", version=v, base_version=v - 1, changes=changes)
            assert await by_delta.apply_delta(delta)
        await by_snap.apply_snapshot(fold(rest, fold(middle)).snapshot("S1", 800))
        assert edge_view(by_snap) == edge_view(by_delta)
        assert await desk_view(by_snap) == await desk_view(by_delta)
        assert by_delta.state.students  # not vacuous
    finally:
        await by_delta.close()
        await by_snap.close()


def money_versions(rng: random.Random, n: int) -> list[list[Change]]:
    """Versions over a small roster that comes and goes, with top-ups and corrections (now and
    then one sent twice in a version) to its students, some of whom have left."""
    versions: list[list[Change]] = []
    lid = 0
    for _ in range(n):
        changes: list[Change] = []
        for _ in range(rng.randint(1, 4)):
            sid = f"st{rng.randint(1, 5)}"
            pick = rng.randrange(6)
            lid += 1
            if pick == 0:
                changes.append(
                    StudentUpsert(student=StudentRecord(id=sid, grade=5, class_name="5A", shift=1))
                )
            elif pick == 1 and rng.random() < 0.3:
                changes.append(StudentRemove(student_id=sid))
            elif pick == 2:
                debit = BalanceDebit(
                    ledger_id=f"D{lid}", student_id=sid, amount_tiyn=rng.randint(1, 9) * 100
                )
                changes.append(debit)
            else:
                credit = BalanceCredit(
                    ledger_id=f"L{lid}", student_id=sid, amount_tiyn=rng.randint(1, 50) * 1_000
                )
                changes += [credit, credit] if rng.random() < 0.1 else [credit]
        versions.append(changes)
    return versions


def money_delta(versions: list[list[Change]], v: int) -> SyncDelta:
    return SyncDelta(school="S1", version=v, base_version=v - 1, changes=versions[v - 1])


def money_snapshot(versions: list[list[Change]], v: int, *, legacy: bool) -> SyncSnapshot:
    """The snapshot at ``v`` from a checkpoint in the middle folded with the versions after it
    (as the centre reads it); ``legacy``: with the lists, for an edge of the release before."""
    cut = v // 2
    checkpoint = compacted(fold(c for changes in versions[:cut] for c in changes))
    state = fold((c for changes in versions[cut:v] for c in changes), fold(checkpoint))
    flat = [c for changes in versions[:v] for c in changes]
    return state.snapshot("S1", v, legacy_money_of(flat) if legacy else None)


async def test_money_by_snapshots_equals_money_by_deltas(tmp_path: Path) -> None:
    """Issue 19: an edge that takes some deltas, a snapshot of nets (from the compacted log),
    more deltas, replays, the next snapshot twice, ends with the balances of an edge that
    applied every delta; so does one that takes the lists of a server of the release before
    between snapshots of nets."""
    rng = random.Random(1919)
    checked = 0
    for trial in range(3):
        versions = money_versions(rng, 60)
        n = len(versions)
        k1, k2, k3 = sorted(rng.sample(range(1, n), 3))

        def delta(v: int) -> SyncDelta:
            return money_delta(versions, v)  # noqa: B023 - used within this iteration

        def snap_at(v: int, *, legacy: bool = False) -> SyncSnapshot:
            return money_snapshot(versions, v, legacy=legacy)  # noqa: B023

        stores = [
            await EdgeStore.open(tmp_path / f"{name}{trial}.db", school="S1", device=name)
            for name in ("a", "b", "c")
        ]
        a, b, c = stores
        try:
            for v in range(1, n + 1):
                assert await a.apply_delta(delta(v))
            for v in range(1, k1 + 1):
                await b.apply_delta(delta(v))
                await c.apply_delta(delta(v))
            await b.apply_snapshot(snap_at(k2))
            await c.apply_snapshot(snap_at(k2))
            for v in range(k2 + 1, k3 + 1):
                await b.apply_delta(delta(v))
                await c.apply_delta(delta(v))
            assert not await b.apply_delta(delta(k3))  # a replay
            await c.apply_snapshot(snap_at(k3, legacy=True))  # a server of the release before
            for store in (b, c):
                await store.apply_snapshot(snap_at(n))
                await store.apply_snapshot(snap_at(n))
            roster = set(a.state.students)
            for store in (b, c):
                assert {s: store.state.balance(s) for s in roster} == {
                    s: a.state.balance(s) for s in roster
                }, f"trial {trial}"
                await money_invariants(store)
            checked += sum(1 for s in roster if a.state.balance(s) != 0)
        finally:
            for store in stores:
                await store.close()
    assert checked >= 3  # not vacuous


def test_the_nets_a_snapshot_carries() -> None:
    """One net per student who has had money (on the roster or not: a credit for a student not
    yet on it is delivered too), but an erased student's (the log renamed their money; the edge
    holds it under the old id); a ledger id counted once; a checkpoint of the release before
    (every credit as a change) folds to the same nets as one of this release."""
    pupil = StudentUpsert(student=StudentRecord(id="st1", grade=5, class_name="5A", shift=1))
    top_up = BalanceCredit(ledger_id="L1", student_id="st1", amount_tiyn=10_000)
    log: list[Change] = [
        pupil,
        top_up,
        top_up,  # the same ledger entry again
        BalanceDebit(ledger_id="L1", student_id="st1", amount_tiyn=2_500),  # a debit's own id
        BalanceCredit(ledger_id="L2", student_id="tok-9", amount_tiyn=7_000),
    ]
    state = fold(log)
    nets = [
        BalanceTotal(student_id="st1", net_tiyn=7_500),
        BalanceTotal(student_id="tok-9", net_tiyn=7_000),
    ]
    assert state.snapshot("S1", 5).balance_totals == nets
    assert state.snapshot("S1", 5, leave_out={"tok-9"}).balance_totals == nets[:1]
    left = fold([StudentRemove(student_id="st1")], fold(compacted(state)))
    assert left.snapshot("S1", 6).balance_totals == nets
    # the release before checkpointed every credit and debit as changes: the same nets
    assert fold(log).money == fold(compacted(fold(log))).money == {"st1": 7_500, "tok-9": 7_000}
