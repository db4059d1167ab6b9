"""events: partitioned by month of the event's own time (PostgreSQL; SQLite stays one table)

The exactly-once key stays (device, seq): the primary key becomes (device_pk, seq, at_ms)
because PostgreSQL wants the partition key in every unique key, and ``at_ms`` is the time the
edge journaled with the event, which a re-send carries unchanged, so a re-sent event meets its
first copy in the same partition (README, "Events at national scale"). Every existing row is
moved; months with data get their partition, the rest goes to ``events_default``.

Revision ID: 0017_partitions
Revises: 0016
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0017_partitions"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_events_school_at", "school_id, at_ms"),
    ("ix_events_school_kind_at", "school_id, kind, at_ms"),
    ("ix_events_student_at", "student_id, at_ms"),
)
_COLUMNS = """
    device_pk BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    school_id VARCHAR(64) NOT NULL,
    at_ms BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL,
    terminal VARCHAR(64) NOT NULL,
    student_id VARCHAR(64),
    staff_id VARCHAR(64),
    payload JSONB NOT NULL,
    received_at_ms BIGINT NOT NULL,
    CONSTRAINT events_device_pk_fkey FOREIGN KEY (device_pk) REFERENCES devices (pk)
"""
_ALL = "device_pk, seq, school_id, at_ms, kind, terminal, student_id, staff_id, payload, received_at_ms"
# Months a partition is made for when rows are there (outside: the default partition).
_FIRST_YEAR = 2000


def _month_start(year: int, month: int) -> int:
    return int(dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()) * 1000


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _create_month(year: int, month: int) -> None:
    ny, nm = _next(year, month)
    op.execute(
        f"CREATE TABLE IF NOT EXISTS events_p{year:04d}{month:02d} PARTITION OF events "
        f"FOR VALUES FROM ({_month_start(year, month)}) TO ({_month_start(ny, nm)})"
    )


def _drop_old_keys(table: str) -> None:
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS events_pkey")
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS events_device_pk_fkey")
    for name, _cols in _INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # the one-machine demo: one table, the (device_pk, seq) key as before
    op.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    _drop_old_keys("events_unpartitioned")
    op.execute(
        f"CREATE TABLE events ({_COLUMNS}, CONSTRAINT events_pkey PRIMARY KEY "
        "(device_pk, seq, at_ms)) PARTITION BY RANGE (at_ms)"
    )
    for name, cols in _INDEXES:
        op.execute(f"CREATE INDEX {name} ON events ({cols})")
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    months = set()
    y, m = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    for _ in range(5):  # the month before this one to three ahead
        months.add((y, m))
        y, m = _next(y, m)
    last_year = now.year + 1
    rows = op.get_bind().execute(
        text(
            "SELECT DISTINCT CAST(EXTRACT(YEAR FROM t) AS INT), CAST(EXTRACT(MONTH FROM t) AS INT) "
            "FROM (SELECT to_timestamp(at_ms / 1000.0) AT TIME ZONE 'UTC' AS t "
            "FROM events_unpartitioned) s"
        )
    )
    months.update((int(y), int(m)) for y, m in rows if _FIRST_YEAR <= y <= last_year)
    for y, m in sorted(months):
        _create_month(y, m)
    op.execute(f"INSERT INTO events ({_ALL}) SELECT {_ALL} FROM events_unpartitioned")
    op.execute("DROP TABLE events_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    _drop_old_keys("events_partitioned")
    op.execute(
        f"CREATE TABLE events ({_COLUMNS}, CONSTRAINT events_pkey PRIMARY KEY (device_pk, seq))"
    )
    # (device, seq) was kept unique by ingest across partitions: nothing to drop here.
    op.execute(
        f"INSERT INTO events ({_ALL}) SELECT {_ALL} FROM events_partitioned "
        "ON CONFLICT (device_pk, seq) DO NOTHING"
    )
    op.execute("DROP TABLE events_partitioned")  # and its partitions
    for name, cols in _INDEXES:
        op.execute(f"CREATE INDEX {name} ON events ({cols})")
