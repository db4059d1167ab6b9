"""Many small messages from many devices stored in one transaction (the national morning peak):
each event once, every device's progress and gaps as if its messages came one by one, the
roll-ups counted once, and one message the database refuses does not hold back the others."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from protocol import topics
from protocol.messages import EntryEvent, Event, EventAck, EventBatch
from protocol.signing import sign_batch
from server.db import make_engine, session_factory
from server.devices import revoke
from server.ingest.core import IngestOutcome, IngestStore, RejectReason
from server.ingest.worker import IngestWorker, _Message
from server.models import Device, IngestProgress, StoredEvent
from server.rollups.models import RollupAttendance, RollupPresence
from server.settings import ServerSettings
from tests.server.test_ingest_versions import signed_raw
from tests.support.centre import centre_key_file
from tests.support.sync import enrolled_device

pytestmark = [pytest.mark.postgres]

NOW = 1_790_000_000_000
DEVICES = 12


def message(prefix: str, school: str, key: Ed25519PrivateKey, *seqs: int) -> tuple[str, bytes]:
    """One signed message of ``school``'s gate with these events (a pupil each)."""
    events: list[Event] = [
        EntryEvent(seq=s, at_ms=NOW + s * 1000, terminal="gate-1", student_id=f"{school}-p{s}")
        for s in seqs
    ]
    batch = EventBatch(school=school, device="gate", sent_at_ms=NOW, events=events)
    return topics.events(school, "gate", prefix), sign_batch(batch, key)


@pytest.fixture
def fleet(
    pg_url: str, make_settings: Callable[..., ServerSettings]
) -> tuple[Any, IngestStore, dict[str, Ed25519PrivateKey], ServerSettings]:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    keys: dict[str, Ed25519PrivateKey] = {}
    with session_factory(engine)() as s:
        for i in range(DEVICES):
            keys[f"S{i:02d}"], _, _ = enrolled_device(s, settings, f"S{i:02d}", "gate")
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    yield engine, store, keys, settings
    store.close()
    engine.dispose()


def progress(engine: Any) -> dict[str, tuple[int, list[list[int]]]]:
    with engine.connect() as c:
        rows = c.execute(
            select(Device.school_id, IngestProgress.committed_through, IngestProgress.gaps).join(
                Device, Device.pk == IngestProgress.device_pk
            )
        ).all()
    return {school: (through, gaps) for school, through, gaps in rows}


def acks(out: IngestOutcome) -> dict[str, tuple[int, list[tuple[int, int]]]]:
    return {
        a.school: (a.committed_through, [(m.first, m.last) for m in a.missing]) for a in out.acks
    }


def test_single_event_messages_of_many_devices_in_one_transaction(
    fleet: tuple[Any, IngestStore, dict[str, Ed25519PrivateKey], ServerSettings], prefix: str
) -> None:
    engine, store, keys, _ = fleet
    schools = sorted(keys)
    # every device sends seqs 1..3 one per message; S00 loses seq 2 on the way (a gap)
    msgs = [
        message(prefix, school, keys[school], seq)
        for seq in (1, 2, 3)
        for school in schools
        if not (school == "S00" and seq == 2)
    ]
    out = store.ingest(msgs)
    assert out.events_inserted == len(msgs) == 3 * DEVICES - 1
    assert len(out.acks) == DEVICES  # one signed ack per device, not per message
    got = acks(out)
    assert got["S00"] == (1, [(2, 2)])
    assert all(got[s] == (3, []) for s in schools[1:])
    assert progress(engine)["S00"] == (1, [[2, 2]])
    assert all(progress(engine)[s] == (3, []) for s in schools[1:])

    # the gap filled, and the whole peak sent again (acks lost): nothing stored twice
    again = store.ingest([message(prefix, "S00", keys["S00"], 2), *msgs])
    assert again.events_inserted == 1
    assert all(v == (3, []) for v in acks(again).values())
    assert all(v == (3, []) for v in progress(engine).values())
    dups = [r for r in again.rejections if r.reason is RejectReason.DUPLICATE]
    assert len(dups) == len(msgs) - 1  # all but S00's seq 3, above its committed 1
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(StoredEvent)).scalar() == 3 * DEVICES
        # each pupil arrived once: the presence set and the class counters agree
        present = c.execute(select(func.count()).select_from(RollupPresence)).scalar()
        counted = c.execute(select(func.sum(RollupAttendance.present))).scalar()
    assert present == counted == 3 * DEVICES


def test_a_revoked_device_is_refused_at_once_among_many(
    fleet: tuple[Any, IngestStore, dict[str, Ed25519PrivateKey], ServerSettings], prefix: str
) -> None:
    engine, store, keys, _ = fleet
    schools = sorted(keys)
    store.ingest([message(prefix, s, keys[s], 1) for s in schools])  # the devices are cached
    with session_factory(engine)() as s:
        revoke(s, "S03", "gate")
        s.commit()
    out = store.ingest([message(prefix, s, keys[s], 2) for s in schools])
    refused = [(r.school, r.reason) for r in out.rejections]
    assert refused == [("S03", RejectReason.NOT_ENROLLED)]
    assert out.events_inserted == DEVICES - 1


def test_one_message_the_database_refuses_does_not_hold_back_the_others(
    fleet: tuple[Any, IngestStore, dict[str, Ed25519PrivateKey], ServerSettings], prefix: str
) -> None:
    """A parked event (a newer release's kind) with a NUL in a field: signed, valid for the
    protocol, and refused by PostgreSQL's jsonb. The worker stores the rest one by one."""
    engine, store, keys, settings = fleet
    schools = sorted(keys)
    newer = {"seq": 1, "at_ms": NOW, "kind": "evacuation_started", "terminal": "p", "zone": "\x00"}
    poison = signed_raw(
        {"school": "S05", "device": "gate", "sent_at_ms": NOW, "events": [newer]}, keys["S05"]
    )
    msgs = [message(prefix, s, keys[s], 1) for s in schools if s != "S05"]
    msgs.insert(3, (topics.events("S05", "gate", prefix), poison))
    with pytest.raises(Exception, match=r"(?i)unicode|u0000|null"):
        store.ingest(msgs)  # the whole transaction fails

    worker = IngestWorker(settings, engine)
    published: list[str] = []
    pubacks: list[int] = []

    class Client:
        def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
            published.append(topic.split("/school/")[1].split("/")[0])

        def ack(self, mid: int, qos: int) -> None:
            pubacks.append(mid)

    worker._client = Client()  # type: ignore[assignment]
    worker._store = store
    worker._process([_Message(t, p, mid, 1, 0) for mid, (t, p) in enumerate(msgs, 1)])
    assert sorted(published) == [s for s in schools if s != "S05"]  # signed acks: all but it
    assert sorted(pubacks) == list(range(1, len(msgs) + 1))  # the broker's window moves on
    assert {s: v for s, v in progress(engine).items() if s != "S05"} == {
        s: (1, []) for s in schools if s != "S05"
    }
    assert progress(engine)["S05"] == (0, [])


class SplitStore:
    """Refuses any transaction with the message ``bad`` in it."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> IngestOutcome:
        self.calls.append(len(messages))
        if any(p == b"bad" for _t, p in messages):
            raise IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("no"))
        device = messages[0][0].split("/device/")[1].split("/")[0]
        return IngestOutcome(
            acks=[EventAck(school="S1", device=device, committed_through=1, missing=[])]
        )

    def close(self) -> None: ...


def test_the_worker_isolates_a_failing_message() -> None:
    worker = IngestWorker(
        ServerSettings(database_url="sqlite://", centre_key_file=centre_key_file())
    )
    log: list[str] = []

    class Client:
        def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
            log.append("signed-ack " + topic.split("/device/")[1].split("/")[0])

        def ack(self, mid: int, qos: int) -> None:
            log.append(f"puback {mid}")

    store = SplitStore()
    worker._client = Client()  # type: ignore[assignment]
    worker._store = store  # type: ignore[assignment]
    t = "qaqpa/v1/school/S1/device/{}/events"
    worker._process(
        [
            _Message(t.format("a"), b"ok", 1, 1, 0),
            _Message(t.format("b"), b"bad", 2, 1, 0),
            _Message(t.format("c"), b"ok", 3, 1, 0),
        ]
    )
    assert store.calls == [3, 1, 1, 1, 1, 1]  # the batch, a, b three times, c
    assert log == [
        "signed-ack a",
        "puback 1",
        "puback 2",  # given up unstored: no signed ack, the edge sends it again later
        "signed-ack c",
        "puback 3",
    ]


def test_progress_of_many_devices_is_one_statement(
    fleet: tuple[Any, IngestStore, dict[str, Ed25519PrivateKey], ServerSettings], prefix: str
) -> None:
    """The peak's usual case (each device's next seqs, nothing stored above its progress)
    costs a fixed number of statements per transaction, however many devices it touches."""
    engine, store, keys, _ = fleet
    store.ingest([message(prefix, s, keys[s], 1) for s in sorted(keys)])  # warm the caches
    statements: list[str] = []

    def count(_conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        out = store.ingest([message(prefix, s, keys[s], 2) for s in sorted(keys)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert out.events_inserted == DEVICES
    assert len(statements) < 15, statements
    with engine.connect() as c:
        done = "SELECT count(*) FROM ingest_progress WHERE committed_through = 2 AND gaps = '[]'"
        assert c.execute(text(done)).scalar() == DEVICES


def test_the_worker_gives_up_the_rest_when_every_message_fails() -> None:
    """Two given up in a row: the work itself fails (not one message), the rest is given up at
    once instead of three tries each (the edges send them again; nothing stored, nothing lost)."""
    worker = IngestWorker(
        ServerSettings(database_url="sqlite://", centre_key_file=centre_key_file())
    )
    log: list[str] = []

    class Client:
        def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
            log.append("signed-ack")

        def ack(self, mid: int, qos: int) -> None:
            log.append(f"puback {mid}")

    store = SplitStore()
    worker._client = Client()  # type: ignore[assignment]
    worker._store = store  # type: ignore[assignment]
    t = "qaqpa/v1/school/S1/device/{}/events"
    worker._process([_Message(t.format(d), b"bad", mid, 1, 0) for mid, d in enumerate("abcd", 1)])
    assert store.calls == [4, 1, 1, 1, 1, 1, 1]
    assert log == ["puback 1", "puback 2", "puback 3", "puback 4"]
