"""``qaqpa server parked list|replay``: the events ingest parked (a kind, or a field, of a newer
edge release: README, Wire protocol) are recorded when first stored; a replay on a release that
reads them applies each once (the roll-ups count it), however often it runs; one still unknown
stays parked and the command says why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert, select

from protocol import topics
from protocol.messages import EntryEvent, MealServedEvent
from server.cli import main as server_main
from server.db import make_engine, session_factory
from server.ingest.core import IngestStore
from server.ingest.parked import Reading, parked, reading
from server.ingest.replay import replay
from server.models import Device, ParkedEvent, StoredEvent
from server.rollups.models import RollupMeal
from server.settings import ServerSettings
from tests.support.sync import enrolled_device, signed_raw

NOW = 1_790_000_000_000
NEWER = {  # a kind of a later release: parked by this one
    "seq": 2,
    "at_ms": NOW + 2,
    "kind": "evacuation_started",
    "terminal": "fire-panel",
    "zone": "east wing",
}


def entry(seq: int) -> dict[str, Any]:
    ev = EntryEvent(seq=seq, at_ms=NOW + seq, terminal="gate-1", student_id=f"s{seq}")
    return ev.model_dump(mode="json")


def meal(seq: int) -> dict[str, Any]:
    ev = MealServedEvent(
        seq=seq,
        at_ms=NOW + seq,
        terminal="canteen-1",
        student_id="s9",
        period="lunch",
        local_date="2026-09-21",
        meal="free",
    )
    return ev.model_dump(mode="json")


def meals_counted(engine: Any) -> int:
    with engine.connect() as c:
        return int(sum(c.execute(select(RollupMeal.count)).scalars()))


@pytest.fixture(params=["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """SQLite and PostgreSQL (partitioned events, rows locked for the replay)."""
    url: str = request.getfixturevalue(request.param)
    return url


@pytest.fixture
def world(
    db_url: str, make_settings: Callable[..., ServerSettings], prefix: str
) -> tuple[Any, IngestStore, Any]:
    settings = make_settings(db_url)
    engine = make_engine(db_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "edge-1")
    return engine, IngestStore(engine, topic_prefix=prefix), key


def send(ingest: IngestStore, key: Any, prefix: str, *events: dict[str, Any]) -> None:
    plain = {"school": "S1", "device": "edge-1", "sent_at_ms": NOW, "events": list(events)}
    ingest.ingest([(topics.events("S1", "edge-1", prefix), signed_raw(plain, key))])


def parked_by_an_older_release(engine: Any, event: dict[str, Any]) -> None:
    """What an older release's ingest left: the event stored as sent, and parked (it did not
    know the kind then; this release does)."""
    with engine.begin() as c:
        pk = c.execute(select(Device.pk).where(Device.device_id == "edge-1")).scalar_one()
        row = {"device_pk": pk, "seq": event["seq"], "school_id": "S1", "at_ms": event["at_ms"]}
        c.execute(
            insert(StoredEvent).values(
                **row,
                kind=event["kind"],
                terminal=event["terminal"],
                student_id=event.get("student_id"),
                payload=event,
                received_at_ms=NOW,
            )
        )
        c.execute(insert(ParkedEvent).values(**row, parked_at_ms=NOW))


def test_ingest_records_what_it_parks_once_and_a_replay_leaves_it_parked(
    world: tuple[Any, IngestStore, Any], prefix: str
) -> None:
    engine, ingest, key = world
    send(ingest, key, prefix, entry(1), NEWER, entry(3))
    send(ingest, key, prefix, entry(1), NEWER, entry(3))  # re-sent: still parked once
    found = parked(engine)
    assert [(p.seq, p.kind, p.reading) for p in found] == [
        (2, "evacuation_started", Reading.UNKNOWN_KIND)
    ]

    out = replay(engine, NOW + 10)
    assert out.applied == []
    assert [(p.seq, p.reading) for p in out.still_parked] == [(2, Reading.UNKNOWN_KIND)]
    assert [p.seq for p in parked(engine)] == [2]  # still there for the release that knows it
    engine.dispose()


def test_a_parked_event_this_release_reads_is_applied_once(
    world: tuple[Any, IngestStore, Any], prefix: str
) -> None:
    engine, ingest, key = world
    send(ingest, key, prefix, entry(1))
    parked_by_an_older_release(engine, meal(2))
    send(ingest, key, prefix, NEWER | {"seq": 3, "at_ms": NOW + 3})  # parked by this one
    assert meals_counted(engine) == 0  # the older release applied nothing of it
    assert [(p.seq, p.reading) for p in parked(engine)] == [
        (2, Reading.KNOWN),
        (3, Reading.UNKNOWN_KIND),
    ]

    first = replay(engine, NOW + 10)
    assert [p.seq for p in first.applied] == [2]
    assert [p.seq for p in first.still_parked] == [3]
    assert meals_counted(engine) == 1

    again = replay(engine, NOW + 20)  # idempotent: nothing applied twice
    assert again.applied == [] and [p.seq for p in again.still_parked] == [3]
    assert meals_counted(engine) == 1
    done = {p.seq: p.replayed_at_ms for p in parked(engine, replayed=True)}
    assert done == {2: NOW + 10, 3: None}
    engine.dispose()


def test_the_command_lists_and_replays_with_reasons(
    world: tuple[Any, IngestStore, Any],
    prefix: str,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, ingest, key = world
    send(ingest, key, prefix, entry(1))
    parked_by_an_older_release(engine, meal(2))
    send(ingest, key, prefix, NEWER | {"seq": 3, "at_ms": NOW + 3})
    engine.dispose()
    url = ["--database-url", db_url]

    assert server_main(["parked", "list", *url]) == 0
    listed = capsys.readouterr().out
    assert "S1/edge-1 seq 2 meal_served" in listed and "replay` applies it" in listed
    assert "S1/edge-1 seq 3 evacuation_started" in listed
    assert "kind is of a newer edge release: upgrade the server" in listed

    assert server_main(["parked", "replay", *url]) == 0
    replayed = capsys.readouterr().out
    assert "applied: S1/edge-1 seq 2 meal_served" in replayed
    assert "still parked: S1/edge-1 seq 3 evacuation_started" in replayed
    assert "1 applied, 1 still parked" in replayed

    assert server_main(["parked", "replay", *url]) == 0
    assert "0 applied, 1 still parked" in capsys.readouterr().out


def test_reading_tells_a_newer_kind_a_newer_field_and_a_wrong_event_apart() -> None:
    assert reading(meal(2)) is Reading.KNOWN
    assert reading(NEWER) is Reading.UNKNOWN_KIND
    assert reading(meal(2) | {"witness": "t2"}) is Reading.UNKNOWN_FIELD
    assert reading(meal(2) | {"period": 5}) is Reading.MALFORMED
