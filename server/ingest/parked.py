"""Parked events: what ingest kept without applying because this release could not read it (an
event kind, or a field of a known kind, of a newer edge release: README, Wire protocol), and
their replay once a release knows them (``qaqpa server parked list|replay``).

Ingest records each parked event in ``parked_events`` when it first stores it (``keep``). A
replay reads the stored payload (as sent) again with this release's models: an event it now
reads is applied as ingest applies a new event (the roll-ups, the card records, the library
desks' acts), in one transaction with the mark ``replayed_at_ms``, so it is applied once however
often the replay runs; an event still unknown stays parked, and the replay says which and why.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, insert, select, update

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


def _query(school: str | None, device: str | None, replayed: bool) -> Any:
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
        rows = conn.execute(_query(school, device, replayed)).all()
    return [_parked(r) for r in rows]


def _parked(r: Any) -> Parked:
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


@dataclass(slots=True)
class Replay:
    applied: list[Parked] = field(default_factory=list)
    still_parked: list[Parked] = field(default_factory=list)


def replay(
    engine: Engine, now_ms: int, *, school: str | None = None, device: str | None = None
) -> Replay:
    """Apply the parked events this release now reads, once each, in one transaction; leave
    the others parked. Rows being replayed by another run at the same time are locked first
    (PostgreSQL), so two runs never apply one event twice."""
    from server.ingest.core import (  # here: core imports this module
        _COLUMNS,
        CARD_EVENT_KINDS,
        LENDING_EVENT_KINDS,
        _record_cards,
        _record_lending,
    )
    from server.rollups.service import apply_rollups

    out = Replay()
    with engine.begin() as conn:
        q = _query(school, device, replayed=False)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update(of=ParkedEvent)
        rows: list[dict[str, Any]] = []
        for r in conn.execute(q).all():
            item = _parked(r)
            if item.reading is not Reading.KNOWN:
                out.still_parked.append(item)
                continue
            out.applied.append(item)
            rows.append({c: r._mapping[c] for c in _COLUMNS})  # an ingest row
        if not rows:
            return out
        # As ingest applies an event it stores for the first time (IngestStore._store); not
        # ``fresh``: the roll-ups count the pupil's day again from the stored events.
        apply_rollups(conn, rows)
        desk = [r for r in rows if r["kind"] in CARD_EVENT_KINDS]
        if desk:
            _record_cards(conn, desk)
        lending = [r for r in rows if r["kind"] in LENDING_EVENT_KINDS]
        if lending:
            _record_lending(conn, lending)
        for row in rows:
            conn.execute(
                update(ParkedEvent)
                .where(ParkedEvent.device_pk == row["device_pk"], ParkedEvent.seq == row["seq"])
                .values(replayed_at_ms=now_ms)
            )
    return out
