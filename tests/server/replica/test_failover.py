"""Failover: the primary dies (immediate stop, as a crash), the standby is promoted with
``pg_ctl promote``, the server is pointed at it and ingest goes on. Everything committed and
replicated before the crash is there; the edge's re-sent batch (its ack was lost with the
primary) is stored once; the sequence has no gap. A pair of its own (ports 18641/18642): the
promotion ends it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from protocol import topics
from protocol.messages import EntryEvent, EventBatch
from protocol.signing import sign_batch
from server.db import make_engine, session_factory
from server.ingest.core import IngestStore, RejectReason
from server.models import IngestProgress, StoredEvent
from server.people.service import add_school
from server.replica import Replica
from server.settings import ServerSettings
from simulators.pg_pair import pg_bin, run_pg
from tests.support.centre import centre_key_file
from tests.support.pg_pair import PgPair, fresh_database
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres, pytest.mark.exclusive]  # its own pair on fixed ports
NOW = 1_788_000_000_000


@pytest.fixture
def own_pair() -> Iterator[PgPair]:
    pair = PgPair.on(18641, 18642)
    pair.primary.wipe()
    pair.standby.wipe()
    pair.ensure()
    yield pair
    pair.standby.wipe()
    pair.primary.wipe()


def batch(key: object, first: int, last: int) -> bytes:
    events = [
        EntryEvent(seq=s, at_ms=NOW + s, terminal="gate-1", student_id=f"kid-{s % 7}")
        for s in range(first, last + 1)
    ]
    b = EventBatch(school="S1", device="edge-1", sent_at_ms=NOW + last, events=events)
    return sign_batch(b, key)  # type: ignore[arg-type]


def test_promoted_standby_takes_over_ingest_with_nothing_lost(own_pair: PgPair) -> None:
    with fresh_database(own_pair.primary) as name:
        settings = ServerSettings(
            database_url=own_pair.primary.url(name),
            topic_prefix=f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1",
            centre_key_file=centre_key_file(),
        )
        topic = topics.events("S1", "edge-1", settings.topic_prefix)
        engine = make_engine(settings.database_url)
        with session_factory(engine)() as db:
            add_school(db, "S1", "School No. 1", region="R1")
            key, _, _ = enrolled_device(db, settings, "S1", "edge-1")
        store = IngestStore(engine, topic_prefix=settings.topic_prefix)
        assert store.ingest([(topic, batch(key, 1, 30))]).events_inserted == 30
        store.close()
        own_pair.wait_replayed()

        own_pair.primary.stop("immediate")  # the primary's machine is gone
        engine.dispose()
        run_pg([str(pg_bin() / "pg_ctl"), "promote", "-w", "-D", str(own_pair.standby.data)])

        # The server, pointed at the promoted standby.
        moved = settings.model_copy(update={"database_url": own_pair.standby.url(name)})
        engine = make_engine(moved.database_url)
        store = IngestStore(engine, topic_prefix=moved.topic_prefix)
        # The edge never got the ack of 1..30 from the dead primary: it sends them again, then more.
        out = store.ingest([(topic, batch(key, 1, 30)), (topic, batch(key, 31, 60))])
        store.close()
        assert out.events_inserted == 30  # the re-sent batch is acked as a duplicate, not stored
        assert [r.reason for r in out.rejections] == [RejectReason.DUPLICATE]
        with session_factory(engine)() as db:
            seqs = db.scalars(select(StoredEvent.seq).order_by(StoredEvent.seq)).all()
            assert seqs == list(range(1, 61)), "every event once, no gap"
            assert db.scalar(select(func.max(IngestProgress.committed_through))) == 60
        # A reporting URL still naming the promoted server is no longer a standby: not read.
        replica = Replica(moved.database_url, engine, max_lag_s=60, zone="UTC")
        assert replica.probe().reason == "not_standby"
        replica.dispose()
        engine.dispose()
