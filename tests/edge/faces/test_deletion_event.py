"""The FaceTemplatesDeletedEvent on the wire and through the server's own ingest code path."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from protocol import topics
from protocol.codec import decode, encode
from protocol.messages import EventBatch, FaceTemplatesDeletedEvent
from protocol.signing import sign_batch
from server.db import make_engine, session_factory
from server.ingest.core import IngestStore
from server.migrate import upgrade
from server.models import StoredEvent
from server.settings import ServerSettings
from tests.support.sync import enrolled_device


def deletion(seq: int = 1, **kw: object) -> FaceTemplatesDeletedEvent:
    values: dict[str, object] = {
        "seq": seq,
        "at_ms": 1_700_000_000_000,
        "terminal": "faces",
        "student_id": "st-bio",
        "templates": 2,
        "reason": "consent_withdrawn",
    }
    values.update(kw)
    return FaceTemplatesDeletedEvent.model_validate(values)


def test_the_event_has_no_room_for_biometric_data() -> None:
    assert set(FaceTemplatesDeletedEvent.model_fields) == {
        "seq",
        "at_ms",
        "terminal",
        "clock_in_doubt",  # a flag (True or absent): no room for data either
        "kind",
        "student_id",
        "templates",
        "reason",
    }
    with pytest.raises(ValidationError):
        deletion(encoding=[0.1] * 128)  # extra fields are refused
    with pytest.raises(ValidationError):
        deletion(templates=-1)
    with pytest.raises(ValidationError):
        deletion(reason="because")
    batch = EventBatch(school="S1", device="d1", sent_at_ms=1, events=[deletion()])
    assert decode(encode(batch), EventBatch) == batch


def test_server_ingest_stores_the_deletion(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(url)
    settings = ServerSettings(database_url=url, topic_prefix="qaqpa-test/faces/v1")
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            key, _, _ = enrolled_device(s, settings, "S1", "d1")
        events = [deletion(1), deletion(2, student_id="st-gone", reason="student_removed")]
        batch = EventBatch(school="S1", device="d1", sent_at_ms=1, events=events)  # type: ignore[arg-type]
        store = IngestStore(engine, topic_prefix=settings.topic_prefix)
        out = store.ingest(
            [(topics.events("S1", "d1", settings.topic_prefix), sign_batch(batch, key))]
        )
        assert out.rejections == [] and out.events_inserted == 2
        assert [a.committed_through for a in out.acks] == [2]
        with engine.connect() as c:
            rows = c.execute(select(StoredEvent).order_by(StoredEvent.seq)).all()
        assert [
            (r.kind, r.student_id, r.payload["templates"], r.payload["reason"]) for r in rows
        ] == [
            ("face_templates_deleted", "st-bio", 2, "consent_withdrawn"),
            ("face_templates_deleted", "st-gone", 2, "student_removed"),
        ]
    finally:
        engine.dispose()
