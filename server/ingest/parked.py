"""Parked events: what ingest kept without applying because this release could not read it (an
event kind, or a field of a known kind, of a newer edge release: README, Wire protocol), and
their replay once a release knows them (``qaqpa server parked list|replay``; the replay itself
is ``server.ingest.replay``, which applies what ingest applies).

Ingest records each parked event in ``parked_events`` when it first stores it (``keep``). A
replay reads the stored payload (as sent) again with this release's models: an event it now
reads is applied as ingest applies a new event (the roll-ups, the card records, the library
desks' acts), in one transaction with the mark ``replayed_at_ms``, so it is applied once however
often the replay runs; an event still unknown stays parked, and the replay says which and why.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, insert, select

from protocol.messages import Event
from server.models import Device, ParkedEvent, StoredEvent

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


class Reading(enum.StrEnum):
    """How this release reads a parked event's payload."""

    KNOWN = "known"  # a replay applies it
    UNKNOWN_KIND = "unknown_kind"  # still a kind of a newer release
    UNKNOWN_FIELD = "unknown_field"  # still a field of a newer release
    MALFORMED = "malformed"  # readable kind and fields, but wrong: never applied


def reading(payload: Any) -> Reading:
    """Pure: what this release makes of a stored event (``events.payload``)."""
    try:
        _EVENT.validate_python(payload)
    except ValidationError as err:
        kinds = {e["type"] for e in err.errors()}
        if "union_tag_invalid" in kinds:
            return Reading.UNKNOWN_KIND
        if kinds == {"extra_forbidden"}:
            return Reading.UNKNOWN_FIELD
        return Reading.MALFORMED
    return Reading.KNOWN


def keep(conn: Connection, rows: Sequence[dict[str, Any]], at_ms: int) -> None:
    """Record the parked events of ``rows`` (events rows stored now, each once), in the ingest
    transaction."""
    if rows:
        conn.execute(
            insert(ParkedEvent),
            [
                {
                    "device_pk": r["device_pk"],
                    "seq": r["seq"],
                    "at_ms": r["at_ms"],
                    "school_id": r["school_id"],
                    "parked_at_ms": at_ms,
                }
                for r in rows
            ],
        )


@dataclass(frozen=True, slots=True)
class Parked:
    school: str
    device: str
    seq: int
    kind: str
    at_ms: int
    parked_at_ms: int
    replayed_at_ms: int | None
    reading: Reading


def parked_query(school: str | None, device: str | None, replayed: bool) -> Any:
    """The parked events with their stored rows, by school, device and seq."""
    q = (
        select(
            ParkedEvent.school_id,
            Device.device_id,
            ParkedEvent.device_pk,
            ParkedEvent.seq,
            ParkedEvent.parked_at_ms,
            ParkedEvent.replayed_at_ms,
            StoredEvent.at_ms,
            StoredEvent.kind,
            StoredEvent.terminal,
            StoredEvent.student_id,
            StoredEvent.staff_id,
            StoredEvent.payload,
            StoredEvent.received_at_ms,
        )
        .join(Device, Device.pk == ParkedEvent.device_pk)
        .join(
            StoredEvent,
            (StoredEvent.device_pk == ParkedEvent.device_pk)
            & (StoredEvent.seq == ParkedEvent.seq)
            & (StoredEvent.at_ms == ParkedEvent.at_ms),  # the partition: no scan of the others
        )
        .order_by(ParkedEvent.school_id, Device.device_id, ParkedEvent.seq)
    )
    if not replayed:
        q = q.where(ParkedEvent.replayed_at_ms.is_(None))
    if school is not None:
        q = q.where(ParkedEvent.school_id == school)
    if device is not None:
        q = q.where(Device.device_id == device)
    return q


def parked(
    engine: Engine, *, school: str | None = None, device: str | None = None, replayed: bool = False
) -> list[Parked]:
    """The parked events (those not replayed yet, unless ``replayed``), with how this release
    reads each."""
    with engine.connect() as conn:
        rows = conn.execute(parked_query(school, device, replayed)).all()
    return [parked_item(r) for r in rows]


def parked_item(r: Any) -> Parked:
    """A row of ``parked_query``, with how this release reads its payload."""
    return Parked(
        r.school_id,
        r.device_id,
        r.seq,
        r.kind,
        r.at_ms,
        r.parked_at_ms,
        r.replayed_at_ms,
        reading(r.payload),
    )
