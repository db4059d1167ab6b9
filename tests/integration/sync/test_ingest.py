"""Ingest worker against real Mosquitto and real PostgreSQL (and SQLite)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from protocol import topics
from protocol.codec import decode, encode
from protocol.messages import EventAck, EventBatch
from protocol.signing import generate_key
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.models import IngestRejection, ServerAlarm, StoredEvent
from server.settings import ServerSettings
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import Probe, enrolled_device, entries, signed
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mosquitto]


def _acks(probe: Probe, topic: str) -> list[EventAck]:
    return [decode(p, EventAck) for p in probe.received(topic)]


@pytest.mark.parametrize("db", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def test_batches_are_stored_once_and_acked(
    db: str,
    request: pytest.FixtureRequest,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
) -> None:
    url = request.getfixturevalue("pg_url" if db == "postgres" else "sqlite_url")
    settings = make_settings(url)
    engine = make_engine(url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "d1")
    probe = Probe(SYSTEM_BROKER[1])
    ack_topic = topics.ack("S1", "d1", prefix)
    probe.subscribe(ack_topic)
    ev_topic = topics.events("S1", "d1", prefix)
    with IngestWorker(settings, engine):
        probe.publish(ev_topic, signed("S1", "d1", key, 1, 100))
        probe.publish(ev_topic, signed("S1", "d1", key, 201, 50))  # a gap: 101-200 missing
        assert wait_until(lambda: any(a.missing for a in _acks(probe, ack_topic)), 10)
        probe.publish(ev_topic, signed("S1", "d1", key, 101, 100))
        probe.publish(ev_topic, signed("S1", "d1", key, 1, 100))  # a re-send: stored once
        assert wait_until(
            lambda: max(a.committed_through for a in _acks(probe, ack_topic)) == 250, 10
        )
    probe.close()
    gap_acks = [a for a in _acks(probe, ack_topic) if a.missing]
    assert gap_acks[0].committed_through == 100
    assert [(m.first, m.last) for m in gap_acks[0].missing] == [(101, 200)]
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == 250
        assert c.execute(select(func.max(StoredEvent.seq))).scalar() == 250
        dup = c.execute(select(IngestRejection.count).where(IngestRejection.reason == "duplicate"))
        assert dup.scalar() == 1
    engine.dispose()


def test_forged_wrong_school_replayed_and_malformed_are_refused(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key1, _, _ = enrolled_device(s, settings, "S1", "d1")
        key2, _, _ = enrolled_device(s, settings, "S2", "d2")
    probe = Probe(SYSTEM_BROKER[1])
    ack1 = topics.ack("S1", "d1", prefix)
    probe.subscribe(ack1)
    ev1 = topics.events("S1", "d1", prefix)
    with IngestWorker(settings, engine) as worker:
        probe.publish(ev1, signed("S1", "d1", key1, 1, 10))
        assert wait_until(lambda: bool(probe.received(ack1)), 10)
        # forged: signed with another key
        probe.publish(ev1, signed("S1", "d1", generate_key(), 11, 10))
        # school 2's device claims school 1 in its own (correctly signed) batch
        probe.publish(topics.events("S2", "d2", prefix), signed("S1", "d2", key2, 1, 10))
        # school 2's device posts on school 1's topic with its own key
        probe.publish(ev1, signed("S2", "d2", key2, 11, 10))
        # malformed payloads
        probe.publish(ev1, b"\xff\x00garbage")
        probe.publish(
            ev1, encode(EventBatch(school="S1", device="d1", sent_at_ms=1, events=entries(11, 3)))
        )
        # an unknown device
        probe.publish(topics.events("S1", "ghost", prefix), signed("S1", "ghost", key1, 1, 1))
        # replay of the first batch
        probe.publish(ev1, signed("S1", "d1", key1, 1, 10))
        # and the stream carries on
        probe.publish(ev1, signed("S1", "d1", key1, 11, 10))
        assert wait_until(
            lambda: max(decode(p, EventAck).committed_through for p in probe.received(ack1)) == 20,
            10,
        )
        assert wait_until(lambda: worker.batches_rejected >= 6, 5)
    probe.close()
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == 20
        rows = c.execute(select(IngestRejection.reason, IngestRejection.count)).all()
        by_reason: dict[str, int] = {}
        for reason, count in rows:
            by_reason[reason] = by_reason.get(reason, 0) + count
        assert by_reason == {
            "signature": 3,  # forged, wrong key, unsigned
            "wrong_school": 1,
            "malformed": 1,
            "unknown_device": 1,
            "duplicate": 1,
        }
        assert c.execute(select(func.count()).select_from(ServerAlarm)).scalar() == 6
    engine.dispose()
