"""``qaqpa server parked replay``: the parked events (``server.ingest.parked``) this release now
reads, applied as ingest applies an event it stores for the first time, once each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, update

from server.ingest.core import (
    _COLUMNS,
    CARD_EVENT_KINDS,
    LENDING_EVENT_KINDS,
    _record_cards,
    _record_lending,
)
from server.ingest.parked import Parked, Reading, parked_item, parked_query
from server.models import ParkedEvent
from server.rollups.service import apply_rollups


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
    out = Replay()
    with engine.begin() as conn:
        q = parked_query(school, device, replayed=False)
        if engine.dialect.name == "postgresql":
            q = q.with_for_update(of=ParkedEvent)
        rows: list[dict[str, Any]] = []
        for r in conn.execute(q).all():
            item = parked_item(r)
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
