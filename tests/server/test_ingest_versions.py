"""The wire protocol's versioning policy at the server (README, Wire protocol): an edge of a newer
release sends an event kind, or a field of a known kind, this server release does not know. The
event is parked: stored as sent with the rest of its batch and acknowledged (so the edge's
outbox moves on), counted and alarmed for the operators, and never applied by this release. A
known kind that is simply wrong is an edge bug: the batch is refused whole, as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from protocol import topics
from protocol.messages import CardsBlockedEvent, EntryEvent, EventBatch
from server.db import make_engine, session_factory
from server.ingest import core
from server.ingest.core import IngestOutcome, IngestStore, RejectReason
from server.models import IngestRejection, ServerAlarm, StoredEvent
from server.settings import ServerSettings
from tests.support.sync import enrolled_device, signed_raw

NOW = 1_790_000_000_000


def batch_of(*events: dict[str, Any]) -> dict[str, Any]:
    return {"school": "S1", "device": "edge-1", "sent_at_ms": NOW, "events": list(events)}


def entry(seq: int) -> dict[str, Any]:
    ev = EntryEvent(seq=seq, at_ms=NOW + seq, terminal="gate-1", student_id=f"s{seq}")
    return ev.model_dump(mode="json")


def setup(sqlite_url: str, make_settings: Callable[..., ServerSettings]) -> tuple[Any, Any, Any]:
    settings = make_settings(sqlite_url)
    engine = make_engine(sqlite_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "edge-1")
    return engine, IngestStore(engine, topic_prefix=settings.topic_prefix), key


def send(ingest: IngestStore, key: Any, prefix: str, plain: dict[str, Any]) -> IngestOutcome:
    return ingest.ingest([(topics.events("S1", "edge-1", prefix), signed_raw(plain, key))])


def stored(engine: Any) -> dict[int, tuple[str, dict[str, Any]]]:
    with engine.connect() as c:
        rows = c.execute(select(StoredEvent.seq, StoredEvent.kind, StoredEvent.payload)).all()
    return {seq: (kind, payload) for seq, kind, payload in rows}


def test_an_unknown_kind_is_parked_and_the_rest_of_the_batch_stored(
    sqlite_url: str, make_settings: Callable[..., ServerSettings], prefix: str
) -> None:
    engine, ingest, key = setup(sqlite_url, make_settings)
    newer = {  # a kind of a later release (say, the fire alarm), with fields of its own
        "seq": 2,
        "at_ms": NOW + 2,
        "kind": "evacuation_started",
        "terminal": "fire-panel",
        "zone": "east wing",
        "released_gates": ["gate-1", "gate-2"],
    }
    out = send(ingest, key, prefix, batch_of(entry(1), newer, entry(3)))

    # stored, all three, and the edge is told so: its outbox moves past the parked event
    assert out.events_inserted == 3
    assert [a.committed_through for a in out.acks] == [3]
    rows = stored(engine)
    assert sorted(rows) == [1, 2, 3]
    assert rows[2] == ("evacuation_started", newer)  # kept as sent, for a later release
    assert rows[1][0] == rows[3][0] == "entry"
    # ... but not silently: counted and alarmed, with what and where
    assert [(r.reason, r.device) for r in out.rejections] == [(RejectReason.UNKNOWN_KIND, "edge-1")]
    with engine.connect() as c:
        alarms = c.execute(select(ServerAlarm.code, ServerAlarm.detail)).all()
        counted = c.execute(select(IngestRejection.reason, IngestRejection.count)).all()
    assert [a.code for a in alarms] == ["event_parked:unknown_kind"]
    assert "evacuation_started" in alarms[0].detail and "seq 2..2" in alarms[0].detail
    assert counted == [("unknown_kind", 1)]

    # the edge re-sends (its ack was lost): still once each
    again = send(ingest, key, prefix, batch_of(entry(1), newer, entry(3)))
    assert again.events_inserted == 0 and [a.committed_through for a in again.acks] == [3]
    assert sorted(stored(engine)) == [1, 2, 3]
    engine.dispose()


def test_a_field_this_release_does_not_know_parks_the_event_and_applies_nothing(
    sqlite_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, ingest, key = setup(sqlite_url, make_settings)
    applied: list[int] = []  # the seqs handed to the card records' code (the desk's effects)
    real = core._record_cards

    def record_cards(conn: Any, rows: list[dict[str, Any]]) -> None:
        applied.extend(r["seq"] for r in rows)
        real(conn, rows)

    monkeypatch.setattr(core, "_record_cards", record_cards)

    def blocked(seq: int) -> dict[str, Any]:
        ev = CardsBlockedEvent(
            seq=seq,
            at_ms=NOW + seq,
            terminal="staff-page",
            student_id=f"s{seq}",
            authorised_by="t1",
            reason="lost",
            cards=1,
        )
        return ev.model_dump(mode="json")

    newer = blocked(2) | {"witness": "t2"}  # a field of a later release
    out = send(ingest, key, prefix, batch_of(entry(1), newer, blocked(3)))
    assert out.events_inserted == 3 and [a.committed_through for a in out.acks] == [3]
    assert [r.reason for r in out.rejections] == [RejectReason.UNKNOWN_FIELD]
    assert stored(engine)[2] == ("cards_blocked", newer)
    assert applied == [3]  # the parked one is kept, not applied by this release
    engine.dispose()


def test_a_known_kind_that_is_wrong_still_refuses_the_batch(
    sqlite_url: str, make_settings: Callable[..., ServerSettings], prefix: str
) -> None:
    engine, ingest, key = setup(sqlite_url, make_settings)
    broken = entry(2) | {"at_ms": "yesterday"}  # an edge bug, not a newer release
    out = send(ingest, key, prefix, batch_of(entry(1), broken))
    assert out.events_inserted == 0 and out.acks == []
    assert [r.reason for r in out.rejections] == [RejectReason.MALFORMED]
    assert stored(engine) == {}
    # the same batch from this release's own models goes through
    good = EventBatch.model_validate(batch_of(entry(1), entry(2)))
    assert send(ingest, key, prefix, good.model_dump(mode="json")).events_inserted == 2
    engine.dispose()
