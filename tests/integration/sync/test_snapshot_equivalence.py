"""Invariant 4: a snapshot at version N (the server's fold of its change log) leaves an edge in
the same state as applying deltas 1..N; replaying a delta changes nothing."""

from __future__ import annotations

import random
from pathlib import Path

from edge.store import EdgeStore
from protocol.messages import (
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
)
from server.sync.state import SchoolState, compacted, fold


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
