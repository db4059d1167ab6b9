"""Reports and dashboards read from a streaming hot standby (``database_replica_url``).

A page that only reads takes ``ReadDb``: a session on the standby when one is configured, up and
not too far behind, else on the primary. Either way the page's ``request.state.read_source``
says where the data came from and how old it is, and the console shows it above the page
("data as of 09:41:07, 3 s behind"; "the standby is unreachable: read from the primary").
Everything the page writes (its audit entry, the sign-in) still goes through ``Db``, the primary:
the standby session refuses to flush, and the standby itself refuses writes.

How far behind: the primary's current WAL position is read first; a standby that has replayed
up to it holds everything committed before the page was asked for (0 s behind, as of now).
Otherwise the data is as of the last transaction the standby replayed
(``pg_last_xact_replay_timestamp()``), and the lag is the standby's clock minus that moment.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from server.db import is_postgres, make_read_engine, session_factory
from server.settings import ServerSettings

log = logging.getLogger(__name__)

# After the standby failed to answer, pages read from the primary for this long before it is
# asked again (so a standby that went away costs one connection attempt per interval, not one
# per page).
RETRY_AFTER_S = 10.0

Reason = Literal["", "unreachable", "lagging", "not_standby"]


class ReadOnlySessionError(RuntimeError):
    """Something tried to write through the standby's session (a bug: writes take ``Db``)."""


@dataclass(frozen=True, slots=True)
class ReadSource:
    """Where a page's data came from. ``standby`` False: the primary (``reason`` says why)."""

    standby: bool
    reason: Reason = ""
    as_of_ms: int | None = None  # the data holds everything committed before this moment
    lag_s: float | None = None
    caught_up: bool = False  # the standby had replayed all the primary had written
    max_lag_s: float | None = None
    zone: str = "Asia/Almaty"

    @property
    def as_of(self) -> str:
        if self.as_of_ms is None:
            return ""
        moment = datetime.fromtimestamp(self.as_of_ms / 1000, zoneinfo.ZoneInfo(self.zone))
        return moment.strftime("%H:%M:%S")

    @property
    def lag(self) -> int:
        """Whole seconds behind, rounded up: a standby not caught up is at least 1 s behind."""
        return 0 if self.caught_up else max(1, math.ceil(self.lag_s or 0.0))


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError("the standby's session is read-only; write through Db")


class Replica:
    """The standby of one primary: its engine, its sessions and how far behind it is."""

    def __init__(self, url: str, primary: Engine, *, max_lag_s: float, zone: str) -> None:
        self.engine = make_read_engine(url)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        event.listen(self.sessions, "before_flush", _refuse_flush)
        self._primary = primary
        self._max_lag_s = max_lag_s
        self._zone = zone
        self._lock = threading.Lock()
        self._down_until = 0.0

    def dispose(self) -> None:
        self.engine.dispose()

    def mark_down(self) -> None:
        """The standby failed a page's query: the next pages read from the primary for a while."""
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER_S

    def _primary_lsn(self) -> str | None:
        if not is_postgres(self._primary):
            return None
        try:
            with self._primary.connect() as conn:
                return str(conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one())
        except SQLAlchemyError:
            return None  # the primary's own trouble shows on the page's other queries

    def probe(self) -> ReadSource:
        """Where the next page should read from; never raises."""
        with self._lock:
            if time.monotonic() < self._down_until:
                return self._fallback("unreachable")
        lsn = self._primary_lsn()
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT pg_is_in_recovery(),"
                        " CASE WHEN CAST(:lsn AS text) IS NULL THEN false"
                        " ELSE pg_last_wal_replay_lsn() >= CAST(CAST(:lsn AS text) AS pg_lsn) END,"
                        " (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000)::bigint,"
                        " (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
                    ),
                    {"lsn": lsn},
                ).one()
        except SQLAlchemyError as err:
            log.warning("the standby did not answer (%s): reading from the primary", type(err))
            self.mark_down()
            return self._fallback("unreachable")
        in_recovery, caught_up, replayed_ms, now_ms = row
        if not in_recovery:
            # Promoted, or pointed at a primary by mistake: not the standby this URL promised.
            return self._fallback("not_standby")
        if caught_up:
            return self._source(standby=True, as_of_ms=now_ms, lag_s=0.0, caught_up=True)
        lag_s = max(0.0, (now_ms - replayed_ms) / 1000) if replayed_ms is not None else None
        if lag_s is None or lag_s > self._max_lag_s:
            return self._source(standby=False, reason="lagging", as_of_ms=replayed_ms, lag_s=lag_s)
        return self._source(standby=True, as_of_ms=replayed_ms, lag_s=lag_s)

    def _source(self, **kw: Any) -> ReadSource:
        return ReadSource(max_lag_s=self._max_lag_s, zone=self._zone, **kw)

    def _fallback(self, reason: Reason) -> ReadSource:
        return self._source(standby=False, reason=reason)


def replica_for(settings: ServerSettings, primary: Engine) -> Replica | None:
    """The standby the settings name, or None (pages read from the primary, no notice)."""
    if not settings.database_replica_url:
        return None
    return Replica(
        settings.database_replica_url,
        primary,
        max_lag_s=settings.database_replica_max_lag_s,
        zone=settings.default_timezone,
    )


def read_db(request: Request) -> Iterator[Session]:
    replica: Replica | None = getattr(request.app.state, "replica", None)
    factory: sessionmaker[Session] = request.app.state.sessions
    on_standby = False
    if replica is not None:
        source = replica.probe()
        request.state.read_source = source
        if source.standby:
            factory, on_standby = replica.sessions, True
    with factory() as session:
        try:
            yield session
        except OperationalError:
            # The standby went away (or cancelled the query in a recovery conflict) after the
            # probe: this page fails, the next ones read from the primary with the notice.
            if on_standby and replica is not None:
                replica.mark_down()
            raise


# A session for pages that only read (reports, dashboards); writes go through ``Db``.
ReadDb = Annotated[Session, Depends(read_db)]
