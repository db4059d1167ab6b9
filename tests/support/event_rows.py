"""Uplink events of a school's edge for the standby and backup tests: straight into ``events``
(as ingest stores them) or signed through the real ingest code."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from protocol import topics
from protocol.messages import EntryEvent, EventBatch
from protocol.signing import sign_batch
from server.db import make_engine
from server.ingest.core import IngestOutcome, IngestStore
from server.models import Device, IngestProgress, StoredEvent
from server.settings import ServerSettings

ZONE = ZoneInfo("Asia/Almaty")
DAY = dt.date(2026, 11, 20)


def at(day: dt.date, hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return int(dt.datetime.combine(day, dt.time(h, m), ZONE).timestamp() * 1000)


def insert_events(db: Session, school: str, events: list[tuple[str, int, dict[str, Any]]]) -> None:
    """``(kind, at_ms, fields)`` of a new edge of ``school``, seq 1, 2, ... (not committed)."""
    dev = Device(school_id=school, device_id=f"{school.lower()}-edge", created_at_ms=0)
    db.add(dev)
    db.flush()
    db.add(IngestProgress(device_pk=dev.pk, committed_through=0, gaps=[], updated_at_ms=0))
    for seq, (kind, at_ms, fields) in enumerate(events, start=1):
        payload = {"seq": seq, "at_ms": at_ms, "terminal": "gate-1", "kind": kind, **fields}
        db.add(
            StoredEvent(
                device_pk=dev.pk,
                seq=seq,
                school_id=school,
                at_ms=at_ms,
                kind=kind,
                terminal="gate-1",
                student_id=fields.get("student_id"),
                staff_id=fields.get("staff_id"),
                payload=payload,
                received_at_ms=at_ms,
            )
        )


def ingest_entries(
    settings: ServerSettings,
    key: Any,
    school: str,
    device: str,
    entries: list[tuple[int, int, str]],
) -> IngestOutcome:
    """Entries ``(seq, at_ms, student)`` in one signed batch through the real ingest code,
    committed on ``settings.database_url``."""
    batch = EventBatch(
        school=school,
        device=device,
        sent_at_ms=max(a for _, a, _ in entries),
        events=[
            EntryEvent(seq=s, at_ms=a, terminal="gate-1", student_id=st) for s, a, st in entries
        ],
    )
    engine = make_engine(settings.database_url)
    store = IngestStore(engine, topic_prefix=settings.topic_prefix)
    try:
        topic = topics.events(school, device, settings.topic_prefix)
        return store.ingest([(topic, sign_batch(batch, key))])
    finally:
        store.close()
        engine.dispose()
