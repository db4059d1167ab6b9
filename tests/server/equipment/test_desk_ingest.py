"""The library desk's acts at the centre: ``lending`` events signed by the school's edge go
through the real ingest code and are applied once, in the ingest transaction; a refused act
changes nothing and does not stop the batch; a re-sent batch applies nothing twice. The desk's
list (``lending_set``) carries the items in stock or lent, their holders and the approved lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol import topics
from protocol.messages import EventBatch, LendingActEvent
from protocol.signing import sign_batch
from server.db import make_engine
from server.equipment import service as svc
from server.equipment.models import Item, ItemEvent, Loan
from server.equipment.rules import EquipmentError, parse_lending_event
from server.ingest.core import IngestStore
from server.models import ChangeLogEntry
from server.people.models import StaffMember, Student
from server.settings import ServerSettings
from server.sync.changelog import load_changes
from tests.support.console import World
from tests.support.sync import enrolled_device

NOW = 1_788_000_000_000
KID = "s1-7b-1"


def act(seq: int, what: str, inv: str, student: str = KID) -> LendingActEvent:
    return LendingActEvent(
        seq=seq,
        at_ms=NOW + seq,
        terminal="library-desk",
        act=what,  # type: ignore[arg-type]
        inventory_no=inv,
        student_id=student,
        staff_id="lib1",
    )


def send(ingest: IngestStore, key: Any, settings: ServerSettings, *events: LendingActEvent) -> Any:
    batch = EventBatch(school="S1", device="edge-1", sent_at_ms=NOW, events=list(events))
    topic = topics.events("S1", "edge-1", settings.topic_prefix)
    return ingest.ingest([(topic, sign_batch(batch, key))])


def test_desk_acts_are_applied_once_through_ingest(
    db: Session, world: World, settings: ServerSettings
) -> None:
    key, _, _ = enrolled_device(db, settings, "S1", "edge-1")
    user = world.users["admin1"]  # the member who acts at the desk has a console account
    db.add(StaffMember(school_id="S1", ref="lib1", full_name="Librarian", user_pk=user))
    for kind, inv in (("book", "B-1"), ("textbook", "T-1"), ("book", "B-2")):
        svc.add_item(db, None, "S1", kind=kind, inventory_no=inv, title=inv, now=NOW)
    db.commit()
    ingest = IngestStore(make_engine(settings.database_url), topic_prefix=settings.topic_prefix)
    events = [
        act(1, "lend", "B-1"),
        act(2, "lend", "T-1"),
        act(3, "return", "B-2"),  # not lent: refused, nothing changes, the batch goes on
        act(4, "damaged", "T-1"),
        act(5, "lend", "B-2"),
        act(6, "lost", "B-2"),
        act(7, "return", "B-1", student="s1-7b-2"),  # another student's item: refused
        act(8, "return", "B-1"),
    ]
    out = send(ingest, key, settings, *events)
    assert out.rejections == [] and out.events_inserted == 8

    def state() -> tuple[list[tuple[str, str | None, str]], dict[str, str]]:
        db.rollback()
        loans = db.execute(
            select(Item.inventory_no, Loan.condition, Loan.source)
            .join(Loan, Loan.item_pk == Item.pk)
            .order_by(Loan.pk)
        ).all()
        items = dict(db.execute(select(Item.inventory_no, Item.status)).all())
        return [(i, c, s) for i, c, s in loans], items

    first = state()
    assert first == (
        [("B-1", "ok", "edge"), ("T-1", "damaged", "edge"), ("B-2", "lost", "edge")],
        {"B-1": "in_stock", "T-1": "repair", "B-2": "lost"},
    )
    # The same batch again (the edge did not get the ack): nothing applied twice.
    again = send(ingest, key, settings, *events)
    assert again.events_inserted == 0
    assert state() == first
    assert db.scalar(select(func.count()).select_from(Loan)) == 3
    by = db.execute(select(Loan.lent_by, Loan.returned_by)).all()
    assert set(by) == {(user, user)}
    # The refused acts are in the items' history, by reason (no student).
    refused = db.execute(
        select(Item.inventory_no, ItemEvent.note)
        .join(ItemEvent, ItemEvent.item_pk == Item.pk)
        .where(ItemEvent.action == "desk_refused")
        .order_by(ItemEvent.pk)
    ).all()
    assert [tuple(r) for r in refused] == [
        ("B-2", "return: The item is not lent: nothing to return."),
        ("B-1", "return: The item is lent to another student."),
    ]


def test_the_desk_list_carries_items_holders_and_approved_lists(db: Session, world: World) -> None:
    book = svc.add_item(db, None, "S1", kind="book", inventory_no="B-1", title="Abai", now=NOW)
    svc.add_item(db, None, "S1", kind="book", inventory_no="B-9", title="Gone", now=NOW)
    gone = db.execute(select(Item).where(Item.inventory_no == "B-9")).scalar_one()
    svc.set_status(db, None, gone, "written_off", "old", NOW)
    st = db.get_one(Student, world.students[KID])
    svc.lend(db, None, book, st, today=dt.date(2026, 9, 1), now=NOW)
    before = db.scalar(select(func.count()).select_from(ChangeLogEntry))
    svc.publish_lending(db, "S1")
    db.flush()
    (row,) = db.execute(
        select(ChangeLogEntry.changes).order_by(ChangeLogEntry.version.desc()).limit(1)
    ).scalars()
    assert db.scalar(select(func.count()).select_from(ChangeLogEntry)) == before + 1
    (change,) = load_changes([row])
    assert change.op == "lending_set"
    assert [(i.inventory_no, i.kind, i.holder) for i in change.items] == [("B-1", "book", KID)]
    assert change.approvals == []


def test_a_lending_event_is_parsed_or_refused_with_the_reason() -> None:
    ev = parse_lending_event("lending", KID, {"act": "lost", "inventory_no": "B-1", "at_ms": 5})
    assert (ev.act, ev.inventory_no, ev.student_id, ev.at_ms) == ("lost", "B-1", KID, 5)
    assert parse_lending_event("equipment_return", KID, {"inventory_no": "B", "at_ms": 5}).act == (
        "return"
    )
    with pytest.raises(EquipmentError, match="Not a lending event"):
        parse_lending_event("lending", KID, {"act": "steal", "inventory_no": "B", "at_ms": 5})
    with pytest.raises(EquipmentError, match="names a student"):
        parse_lending_event("lending", None, {"act": "lend", "inventory_no": "B", "at_ms": 5})
