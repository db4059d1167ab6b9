"""The move of a school's card numbers to the school, at the centre: nothing is erased while an
enrolled edge is behind the move's version (a revoked one does not count), nor for a school with
no enrolled edge; once every edge acknowledged it, the numbers go from the cards table and from
the change log in one transaction, and the log still folds to the same records."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import CardBind, CardBinding, CardBlock, OwnerKind
from server.cards.models import Card
from server.cards.move import move_status, start_move
from server.clock import now_ms
from server.models import ChangeLogEntry, Device
from server.sync.cardmove import finish_move
from server.sync.changelog import append_changes, load_state
from tests.support.consents import give
from tests.support.console import World

NUMBER = "EM:0000000101"


def legacy_card(db: Session, pk: int, ref: str, number: str) -> Card:
    card = Card(card_ref="c-tmp", credential=number, student_pk=pk, school_id="S1", issued_at_ms=1)
    db.add(card)
    db.flush()
    card.card_ref = f"c-{card.pk}"
    binding = CardBinding(credential=number, owner_kind=OwnerKind.STUDENT, owner_id=ref)
    append_changes(db, "S1", [CardBind(card=binding)])
    return card


def device(db: Session, name: str, *, revoked: bool = False) -> Device:
    row = Device(school_id="S1", device_id=name, created_at_ms=now_ms(), public_key=b"k" * 32)
    row.revoked_at_ms = now_ms() if revoked else None
    db.add(row)
    db.flush()
    return row


def numbers_in_log(db: Session) -> bool:
    return any("EM:" in repr(c) for c in db.execute(select(ChangeLogEntry.changes)).scalars())


def test_no_edge_no_erase_then_every_edge_then_erase(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    give(admin, pk)
    card = legacy_card(db, pk, "s1-3a-1", NUMBER)
    append_changes(db, "S1", [CardBlock(credential=NUMBER, reason="lost")])
    card.status, card.block_reason = "blocked", "lost"
    db.commit()
    move = start_move(db, "S1")
    db.commit()
    assert start_move(db, "S1").version == move.version  # once
    # No enrolled edge: nobody would hold the number, so it stays.
    assert not finish_move(db, "S1")
    one, two = device(db, "edge-1"), device(db, "edge-2")
    device(db, "edge-old", revoked=True)  # revoked: not waited for
    one.applied_version = move.version
    two.applied_version = move.version - 1
    db.commit()
    assert not finish_move(db, "S1")
    st = move_status(db, "S1")
    assert (st.numbers_here, st.edges, st.behind) == (1, 2, [("edge-2", move.version - 1)])
    assert numbers_in_log(db)
    before = load_state(db, "S1").records
    assert before[card.card_ref].status == "blocked"
    # edge-2 acknowledges: the numbers go, the records stay as they were.
    two.applied_version = move.version
    assert finish_move(db, "S1")
    db.commit()
    db.expire_all()
    assert db.get_one(Card, card.pk).credential is None
    assert not numbers_in_log(db)
    after = load_state(db, "S1")
    assert after.records == before and after.cards == {} and after.moved
    snap = after.snapshot("S1", move.version)
    assert snap.cards == [] and snap.card_refs == [] and snap.card_records == list(before.values())
    assert move_status(db, "S1").done_at_ms is not None
    assert not finish_move(db, "S1")  # done once
