"""Engine and session factory; one code path for PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

# How long a new PostgreSQL connection may take: a centre whose database host is gone answers
# "unreachable" in seconds instead of hanging a page or a worker on the operating system's timeout.
CONNECT_TIMEOUT_S = 5


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the per-dialect settings the ingest path relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def make_read_engine(url: str, connect_timeout_s: int = 2) -> Engine:
    """An engine for reading only (a hot standby): every transaction read-only, and a short
    connection timeout so that a standby that went away costs a page at most that long."""
    if url.startswith("sqlite"):
        return make_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": connect_timeout_s,
            "options": "-c default_transaction_read_only=on",
        },
    )


# SQLSTATEs of a server going away: admin shutdown (pg_ctl stop -m fast/immediate), crash
# shutdown, starting up or shutting down, and the whole class 08 (connection exceptions).
_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached (down, restarting, connection lost),
    so the same work may succeed later; False for errors of the work itself (a constraint, a
    deadlock, a bug). Accepts SQLAlchemy's wrapped errors and psycopg's own (raw COPY)."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        return state is None or state.startswith("08") or state in _GONE_STATES
    return isinstance(exc, psycopg.InterfaceError)
