"""THE proof for cards (DESIGN invariant 5): card numbers stay at the school.

Two real edges of one school (store, pipeline, EM-Marine driver on a pty, EdgeSync) talk to the
real ingest worker and downlink service on PostgreSQL through the real Mosquitto, under a
private topic prefix that a raw subscriber records from the first byte.

1. The release before: the console had bound a card by its number (the centre holds it, the
   edges got it by number). Both edges let the child in with it.
2. The move starts while edge 2 is offline. Edge 1 applies it and acknowledges; the centre keeps
   its copy of the number, since edge 2 is behind; nothing changes for edge 2, which still has
   the card by number. The console blocks the lost card by record; the new card is bound at
   edge 1's desk (keyed hash in its store), its record and fee reach the centre, and the child
   is let in with it.
3. Edge 2 comes back, catches up and acknowledges: only then the centre erases the number, in
   its cards table and in the change log; edge 2 refuses the lost card (blocked by record).
4. The new card's number appears in no MQTT payload in either direction, in no row of any server
   table, in no log line (DEBUG and up); after the move, no number of the school is in any
   server table.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from protocol.messages import CardBind, CardBinding, OwnerKind, PolicySet
from server.cards.models import Card
from server.cards.move import move_status, start_move
from server.models import ChangeLogEntry, School, StoredEvent
from server.settings import ServerSettings
from server.sync.cardmove import CardMove
from server.sync.changelog import append_changes
from tests.support.consents import give
from tests.support.console import World
from tests.support.school_sim import ALL_DAY, SimSchool
from tests.support.sync import Probe
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]

OLD = "EM:0000000101"  # bound by the console before the move
NEW = "EM:0004242424"  # bound at the school's desk after it
CHILD = "s1-3a-1"


def needles(number: str) -> list[bytes]:
    """The forms a number could travel in: as read, without its type, as the reader's integer."""
    digits = number.split(":", 1)[1]
    return [number.encode(), digits.encode(), str(int(digits)).encode()]


OLD_NEEDLES = [OLD.encode(), OLD.split(":")[1].encode()]  # its integer (101) is too short


def stored(db: Session, kind: str) -> list[StoredEvent]:
    db.rollback()
    return list(
        db.execute(
            select(StoredEvent).where(StoredEvent.school_id == "S1", StoredEvent.kind == kind)
        ).scalars()
    )


def every_row(db: Session) -> str:
    """Every row of every table of the server's database, as text."""
    db.rollback()
    out: list[str] = []
    for table in inspect(db.get_bind()).get_table_names():
        out += [repr(tuple(r)) for r in db.execute(text(f'SELECT * FROM "{table}"'))]
    return "\n".join(out)


@pytest.mark.timeout(240)
def test_card_numbers_stay_at_the_school(
    settings: ServerSettings,
    world: World,
    db: Session,
    make_browser,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings.model_copy(
        update={"topic_prefix": f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1"}
    )
    probe = Probe(settings.mqtt_port)
    probe.subscribe(f"{settings.topic_prefix}/#")
    db.get_one(School, "S1").card_price_tiyn = 15_000
    db.commit()
    admin = make_browser("admin1")
    child = world.students[CHILD]
    give(admin, child)
    # 1. The release before: a card bound by the console, by number.
    old = Card(card_ref="c-tmp", credential=OLD, student_pk=child, school_id="S1", issued_at_ms=1)
    db.add(old)
    db.flush()
    old.card_ref = f"c-{old.pk}"
    binding = CardBinding(credential=OLD, owner_kind=OwnerKind.STUDENT, owner_id=CHILD)
    append_changes(db, "S1", [PolicySet(policy=ALL_DAY), CardBind(card=binding)])
    db.commit()

    one = SimSchool(settings, "S1", tmp_path, card_key=b"k" * 32)
    two = SimSchool(settings, "S1", tmp_path, device="edge-2", services=False, card_key=b"q" * 32)
    with one:
        with two:
            one.wait_synced()
            two.wait_synced()
            two.tap(OLD)
            wait_until(lambda: len(stored(db, "entry")) == 1, 20, "edge 2 lets the child in")

        # 2. Edge 2 is offline: the move starts.
        move = start_move(db, "S1")
        db.commit()
        one.wait_synced()
        assert one.call(one.store.card_record(old.card_ref)) == ("student", CHILD, None)  # type: ignore[union-attr]

        def only_edge_2_behind() -> bool:
            db.rollback()
            return [d for d, _v in move_status(db, "S1").behind] == ["edge-2"]

        wait_until(only_edge_2_behind, 20, "edge 1 acknowledges the move")
        status = move_status(db, "S1")
        assert status.done_at_ms is None and status.numbers_here == 1 and status.edges == 2
        db.refresh(old)
        assert old.credential == OLD  # kept for edge 2, which is behind

        # The console blocks the lost card by record; the new one is bound at edge 1's desk.
        admin.get(f"/students/{child}/cards")
        r = admin.post(f"/students/{child}/cards/{old.pk}/block", {"reason": "lost"})
        assert r.status_code == 303
        one.wait_synced()
        assert one.store.state.card(OLD).blocked_reason == "lost"  # type: ignore[union-attr]
        ref = one.desk_issue(CHILD, NEW, replaces=old.card_ref)

        def record() -> Card | None:
            db.rollback()
            return db.execute(select(Card).where(Card.card_ref == ref)).scalar_one_or_none()

        new = wait_until(record, 20, "the new card's record at the centre")
        assert (new.student_pk, new.credential, new.fee_tiyn, new.replaces_card_pk) == (
            child,
            None,
            15_000,
            old.pk,
        )
        one.tap(NEW)
        wait_until(lambda: len(stored(db, "entry")) == 2, 20, "edge 1 lets the child in")
        with closing(sqlite3.connect(tmp_path / "edge-1.sqlite")) as edge_db:
            keys = [k for (k,) in edge_db.execute("SELECT card_key FROM cards")]
        assert len(keys) == 2 and all(k.startswith("h1:") for k in keys)  # keyed hashes only

        # 3. Edge 2 comes back: it catches up, acknowledges, and only then the number goes.
        db.rollback()
        assert db.get_one(CardMove, "S1").done_at_ms is None
        assert db.get_one(Card, old.pk).credential == OLD  # all this while, still held here
        with two:
            two.wait_synced()

            def done() -> bool:
                db.rollback()
                return db.get_one(CardMove, "S1").done_at_ms is not None

            wait_until(done, 20, "the centre erases its copy of the numbers")
            assert db.get_one(CardMove, "S1").numbers_erased == 1
            assert two.store.state.card(OLD).blocked_reason == "lost"  # type: ignore[union-attr]
            two.tap(OLD)

            def denied() -> list[StoredEvent]:
                return [e for e in stored(db, "denied") if e.payload["reason"] == "card_blocked"]

            wait_until(denied, 20, "edge 2 refuses the lost card")
            last = two.journaled()
            wait_until(
                lambda: two.call(two.store.outbox_stats()).acked_through >= last,  # type: ignore[union-attr]
                20,
                "edge 2's events acknowledged",
            )
    assert move.version <= db.get_one(School, "S1").sync_version

    # 4. Nowhere at the centre, nowhere on the wire, in no log line.
    db.rollback()
    assert [c.credential for c in db.execute(select(Card)).scalars()] == [None, None]
    rows = every_row(db)
    for needle in [*needles(NEW), *OLD_NEEDLES]:
        assert needle.decode() not in rows, f"{needle!r} in a server table"
    for log_row in db.execute(select(ChangeLogEntry.changes)).scalars():
        assert "EM:" not in repr(log_row)
    probe.close()
    with probe.lock:
        captured = list(probe.messages)
    assert any(t.endswith("/events") for t, _ in captured), "no uplink was seen"
    assert any(t.endswith("/sync") for t, _ in captured), "no downlink was seen"
    for topic, payload in captured:
        for needle in needles(NEW):
            assert needle not in payload, f"{needle!r} in a payload on {topic}"
    for rec in caplog.records:
        line = rec.getMessage()
        for needle in needles(NEW):
            assert needle.decode() not in line, f"{needle!r} in a log line: {line[:200]}"
