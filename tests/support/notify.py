"""Helpers of the notification tests: a device whose events are "stored by ingest", consent,
the outbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.clock import now_ms
from server.models import Device, IngestProgress, StoredEvent
from server.people.models import Consent


def add_device(db: Session, school: str, device: str = "edge") -> int:
    d = Device(school_id=school, device_id=device, created_at_ms=now_ms())
    db.add(d)
    db.flush()
    db.add(IngestProgress(device_pk=d.pk, committed_through=0, gaps=[], updated_at_ms=0))
    db.commit()
    return d.pk


def store(
    db: Session,
    device_pk: int,
    school: str,
    kind: str,
    student: str | None,
    at_ms: int | None = None,
    **extra: Any,
) -> int:
    """Store one event the way ingest does (the next seq, committed_through advanced)."""
    prog = db.get_one(IngestProgress, device_pk)
    seq = prog.committed_through + 1
    at = at_ms if at_ms is not None else now_ms() - 1000
    payload = {
        "seq": seq,
        "at_ms": at,
        "terminal": "gate-1",
        "kind": kind,
        "student_id": student,
        **extra,
    }
    db.add(
        StoredEvent(
            device_pk=device_pk,
            seq=seq,
            school_id=school,
            at_ms=at,
            kind=kind,
            terminal="gate-1",
            student_id=student,
            payload=payload,
            received_at_ms=now_ms(),
        )
    )
    prog.committed_through = seq
    db.commit()
    return seq


def consent(db: Session, student_pk: int, granted: bool = True) -> None:
    db.add(
        Consent(
            student_pk=student_pk,
            kind=ConsentKind.NOTIFICATIONS.value,
            granted=granted,
            given_by="Parent One",
            document="No. 1",
            signed_on=dt.date(2026, 9, 1),
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()


def outbox(db: Session) -> list[Any]:
    from server.notify.models import OutboxMessage

    db.expire_all()
    return list(db.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())


CHILD = "s1-3a-1"  # parent1's child, given name "Name3AS1"
