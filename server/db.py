"""Engine and session factory; one code path for PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


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
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
