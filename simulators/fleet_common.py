"""What the two parts of ``qaqpa bench fleet`` share: the caveat beside every figure, and a
scratch database on the bench's PostgreSQL primary."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg

from server.migrate import upgrade
from simulators.pg_pair import BenchPair


def caveat() -> str:
    return (
        f"measured on {os.cpu_count()} cores shared by the simulated fleet, the broker, the "
        "ingest workers, the PostgreSQL primary and its standby (and anything else running): "
        "a lower bound for dedicated machines, not a production size"
    )


@contextlib.contextmanager
def scratch_database(pair: BenchPair, label: str) -> Iterator[str]:
    """A new database at the latest schema on the primary (it reaches the standby by
    replication), dropped afterwards."""
    name = f"qaqpa_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pair.primary.url(name)
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(pair.primary.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
