"""A device revoked from the console is refused by a running ingest worker at its very next
batch, although the worker had its key cached (``DEVICE_CACHE_TTL_S``) a moment before."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol import topics
from server.db import make_engine
from server.ingest import IngestWorker
from server.ingest.core import DEVICE_CACHE_TTL_S, RejectReason
from server.models import IngestRejection
from server.settings import ServerSettings
from tests.support.console import Browser, World
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import Probe, enrolled_device, signed
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


@pytest.fixture
def settings(pg_console_url: str, make_settings: Callable[..., ServerSettings]) -> ServerSettings:
    return make_settings(pg_console_url)


def test_a_device_revoked_in_the_console_is_refused_at_its_next_batch(
    make_browser: Callable[[str], Browser],
    world: World,
    db: Session,
    settings: ServerSettings,
    prefix: str,
) -> None:
    key, _, _ = enrolled_device(db, settings, "S1", "gate1")
    other, _, _ = enrolled_device(db, settings, "S1", "gate2")
    engine = make_engine(settings.database_url)
    probe = Probe(SYSTEM_BROKER[1])
    events = topics.events("S1", "gate1", prefix)
    with IngestWorker(settings, engine) as worker:
        probe.publish(events, signed("S1", "gate1", key, 1, 3))
        probe.publish(topics.events("S1", "gate2", prefix), signed("S1", "gate2", other, 1, 2))
        assert wait_until(lambda: worker.events_inserted == 5, 10)  # both keys now cached
        b = make_browser("operator")
        b.get("/schools/S1/devices")
        r = b.post(
            "/schools/S1/devices/revoke", {"device": "gate1", "reason": "stolen", "confirm": "yes"}
        )
        assert r.status_code == 200
        # well within the cache's lifetime: the cache alone would still accept the old key
        probe.publish(events, signed("S1", "gate1", key, 4, 2))
        assert wait_until(lambda: worker.batches_rejected == 1, 10)
        assert worker.events_inserted == 5
        # the other device's cached key keeps working
        probe.publish(topics.events("S1", "gate2", prefix), signed("S1", "gate2", other, 3, 1))
        assert wait_until(lambda: worker.events_inserted == 6, 10)
    assert DEVICE_CACHE_TTL_S >= 10
    db.rollback()
    reasons = db.scalars(select(IngestRejection.reason)).all()
    assert reasons == [RejectReason.NOT_ENROLLED]
    probe.close()
    engine.dispose()


def test_a_lost_listening_connection_never_leaves_a_revoked_key_cached(
    pg_url: str, make_settings: Callable[..., ServerSettings], prefix: str
) -> None:
    """Kill the worker's LISTEN connection, then revoke (its notification is lost): the next
    batch is still refused, because a worker that cannot hear key changes trusts no cache."""
    from sqlalchemy import text

    from server.db import session_factory
    from server.devices import revoke
    from server.ingest.core import IngestStore

    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    with session_factory(engine)() as s:
        key, _, _ = enrolled_device(s, settings, "S1", "gate1")
    events = topics.events("S1", "gate1", prefix)
    store = IngestStore(engine, topic_prefix=prefix)
    assert store.ingest([(events, signed("S1", "gate1", key, 1, 2))]).events_inserted == 2
    assert store.ingest([(events, signed("S1", "gate1", key, 3, 1))]).events_inserted == 1
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
        ).scalar_one()
    assert killed == 1
    with session_factory(engine)() as s:
        revoke(s, "S1", "gate1")
        s.commit()
    out = store.ingest([(events, signed("S1", "gate1", key, 4, 1))])
    assert [r.reason for r in out.rejections] == [RejectReason.NOT_ENROLLED]
    store.close()
    engine.dispose()
