"""The alarms this edge journaled (reader offline, outbox high water, gate fault, ...), newest
first, for the staff page's duty section: what the people at the school must know when the
link to the centre is down."""

from __future__ import annotations

from edge.store.base import StoreBase
from edge.store.journal import _event
from protocol.messages import AlarmEvent

MAX_ALARMS = 500


class AlarmsMixin(StoreBase):
    async def recent_alarms(self, limit: int = 200) -> list[AlarmEvent]:
        """The newest ``limit`` alarm events (raised and cleared), newest first."""
        async with self._db.execute(
            "SELECT event FROM journal WHERE kind = 'alarm' ORDER BY seq DESC LIMIT ?",
            (max(1, min(limit, MAX_ALARMS)),),
        ) as cur:
            rows = await cur.fetchall()
        out = []
        for (blob,) in rows:
            ev = _event(blob)
            if isinstance(ev, AlarmEvent):
                out.append(ev)
        return out
