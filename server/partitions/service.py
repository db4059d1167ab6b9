"""Monthly partitions of ``events`` on PostgreSQL: make them ahead of time, list them, retire
the months past the retention period (archived to a compressed file with its checksum, or
dropped). SQLite (the one-machine demo) has one unpartitioned table: nothing to do there.

``ensure`` is run by ``qaqpa server partitions ensure`` (daily, from cron) and when an ingest
worker starts; a month with no partition yet lands in ``events_default`` and is moved into its
own partition when that is made.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.orm import Session

from server.models import Region, School
from server.partitions import rules
from server.partitions.rules import Month
from server.retention.models import RetentionSetting
from server.retention.rules import DEFAULT_DAYS_AFTER_LEAVING
from server.rollups.models import RollupPresence

ALL = (
    "device_pk, seq, school_id, at_ms, kind, terminal, student_id, staff_id, payload, "
    "received_at_ms"
)


class PartitionError(RuntimeError):
    pass


def supported(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    month: Month | None  # None: the default partition
    rows: int  # the planner's estimate (exact after ANALYZE), or an exact count if asked
    bytes: int


def partitions(conn: Connection, *, exact: bool = False) -> list[Partition]:
    """The partitions of ``events``, months first (oldest first), then the default."""
    found = conn.execute(
        text(
            "SELECT c.relname, GREATEST(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass"
        )
    ).all()
    out = []
    for name, estimate, size in found:
        rows = estimate
        if exact:
            rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
        out.append(Partition(name, rules.parse_name(name), int(rows), int(size)))
    return sorted(out, key=lambda p: (p.month is None, p.month or Month(1970, 1)))


def _create(conn: Connection, month: Month) -> int:
    """Make ``month``'s partition; the rows of that month already in the default partition
    move into it (in this transaction). Returns the rows moved."""
    lo, hi = month.start_ms, month.end_ms
    conn.execute(text("LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE"))
    conn.execute(
        text(
            "CREATE TEMP TABLE partition_moving ON COMMIT DROP AS "
            f"WITH gone AS (DELETE FROM events_default WHERE at_ms >= {lo} AND at_ms < {hi} "
            f"RETURNING {ALL}) SELECT * FROM gone"
        )
    )
    conn.execute(
        text(f"CREATE TABLE {month.name} PARTITION OF events FOR VALUES FROM ({lo}) TO ({hi})")
    )
    moved = conn.execute(
        text(f"INSERT INTO events ({ALL}) SELECT {ALL} FROM partition_moving")
    ).rowcount
    conn.execute(text("DROP TABLE partition_moving"))
    return int(moved or 0)


@dataclass(slots=True)
class Ensured:
    created: list[str] = field(default_factory=list)
    moved_from_default: int = 0


def ensure(engine: Engine, now_ms: int, months: Iterable[Month] | None = None) -> Ensured:
    """Make the partitions of ``months`` (default: last month to three ahead) that are missing,
    each in its own short transaction."""
    out = Ensured()
    if not supported(engine):
        return out
    want = sorted(set(months if months is not None else rules.wanted(now_ms)))
    with engine.connect() as conn:
        have = {p.month for p in partitions(conn)}
    for month in want:
        if month in have:
            continue
        with engine.begin() as conn:
            out.moved_from_default += _create(conn, month)
        out.created.append(month.name)
    return out


def retention_days(session: Session) -> int:
    """The longest retention period of any region (the product default for a region without
    its own and for schools without a region): a month is retired only when every region's
    period has passed for it."""
    set_days = dict(
        session.execute(
            select(RetentionSetting.region_id, RetentionSetting.days_after_leaving)
        ).all()
    )
    periods = [
        set_days.get(r, DEFAULT_DAYS_AFTER_LEAVING) for r in session.scalars(select(Region.id))
    ]
    orphan = session.execute(select(School.id).where(School.region_id.is_(None)).limit(1)).first()
    if orphan is not None or not periods:
        periods.append(DEFAULT_DAYS_AFTER_LEAVING)
    return max(periods)


@dataclass(frozen=True, slots=True)
class Retired:
    name: str
    month: Month
    rows: int
    archive: Path | None
    sha256: str | None
    presence_rows: int
    region: str | None = None  # a region's rows only (its period is shorter than the longest)


def region_periods(session: Session) -> dict[str, int]:
    """Regions whose own period is shorter than the longest: their schools' rows go first."""
    longest = retention_days(session)
    own = dict(
        session.execute(
            select(RetentionSetting.region_id, RetentionSetting.days_after_leaving)
        ).all()
    )
    return {r: d for r, d in own.items() if d < longest}


def _retire_region_rows(
    engine: Engine,
    now_ms: int,
    months: dict[Month, Partition],
    archive_dir: Path | None,
    dry_run: bool,
) -> list[Retired]:
    """Within the months still kept, the rows of the schools of a region whose period is
    shorter, once it has passed for them: archived (with their own file) and deleted."""
    out: list[Retired] = []
    with Session(engine) as session:
        periods = region_periods(session)
        schools = {
            r: sorted(session.scalars(select(School.id).where(School.region_id == r)))
            for r in periods
        }
    for region, days in sorted(periods.items()):
        if not schools[region]:
            continue
        ids = ", ".join("'" + s.replace("'", "''") + "'" for s in schools[region])
        where = f"school_id IN ({ids})"
        for month in rules.retire_due(months, now_ms, days):
            name = month.name
            with engine.begin() as conn:
                rows = int(
                    conn.execute(text(f"SELECT count(*) FROM {name} WHERE {where}")).scalar_one()
                )
                if not rows or dry_run:
                    if rows:
                        out.append(Retired(name, month, rows, None, None, 0, region))
                    continue
                path = sha = None
                if archive_dir is not None:
                    stem = f"{name}_{region}"
                    path, sha, copied = _archive(conn, name, stem, archive_dir, where)
                    if copied != rows:
                        raise PartitionError(f"{stem}: archived {copied} rows of {rows}")
                conn.execute(text(f"DELETE FROM {name} WHERE {where}"))
                first = dt.datetime.fromtimestamp(month.start_ms / 1000, dt.UTC).date()
                last = dt.datetime.fromtimestamp(month.end_ms / 1000 - 1, dt.UTC).date()
                gone = conn.execute(
                    delete(RollupPresence).where(
                        RollupPresence.day.between(first, last),
                        RollupPresence.school_id.in_(schools[region]),
                    )
                ).rowcount
                from server.audit.service import audit

                with Session(bind=conn) as s:
                    audit(
                        s,
                        None,
                        "erase",
                        "events_month",
                        summary=(
                            f"events of {month.label} of region {region} retired after {days} "
                            f"day(s): {rows} row(s) "
                            + (f"archived to {path.name} sha256 {sha}" if path else "deleted")
                        ),
                    )
                    s.flush()
            out.append(Retired(name, month, rows, path, sha, int(gone or 0), region))
    return out


def _archive(
    conn: Connection, table: str, stem: str, directory: Path, where: str = "TRUE"
) -> tuple[Path, str, int]:
    """COPY the rows of ``table`` (a detached partition, or a month's rows of a region's schools:
    ``where``) to ``directory/STEM.csv.gz`` (CSV with a header, the columns of ``events``),
    fsync'd; the SHA-256 goes beside it in ``sha256sum`` format."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.csv.gz"
    part = directory / f".{stem}.csv.gz.part"
    raw = conn.connection.driver_connection
    assert raw is not None
    digest = hashlib.sha256()
    with open(part, "wb") as f:

        class _Hashing:
            def write(self, b: bytes) -> int:
                digest.update(b)
                return f.write(b)

            def flush(self) -> None:
                f.flush()

        hashing: Any = _Hashing()
        with (
            gzip.GzipFile(filename=stem + ".csv", mode="wb", fileobj=hashing, mtime=0) as gz,
            raw.cursor() as cur,
        ):
            with cur.copy(
                f"COPY (SELECT {ALL} FROM {table} WHERE {where} ORDER BY device_pk, seq) "
                "TO STDOUT WITH (FORMAT csv, HEADER)"
            ) as copy:
                for chunk in copy:
                    gz.write(bytes(chunk))
            copied = cur.rowcount
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    sha = digest.hexdigest()
    (directory / f"{stem}.csv.gz.sha256").write_text(f"{sha}  {path.name}\n")
    return path, sha, copied


def retire(
    engine: Engine,
    now_ms: int,
    *,
    archive_dir: Path | None,
    days: int | None = None,
    dry_run: bool = False,
) -> list[Retired]:
    """Detach and archive (``archive_dir``) or drop (None) every month past the period, one
    month per transaction: the partition comes back if anything fails before the commit.
    The daily roll-ups' counts stay; their presence rows of those months go with the events."""
    if not supported(engine):
        return []
    with Session(engine) as session:
        period = days if days is not None else retention_days(session)
    with engine.connect() as conn:
        found = {p.month: p for p in partitions(conn) if p.month is not None}
    out: list[Retired] = []
    for month in rules.retire_due(found, now_ms, period):
        name = month.name
        if dry_run:
            with engine.connect() as conn:
                rows = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            out.append(Retired(name, month, rows, None, None, 0))
            continue
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE events DETACH PARTITION {name}"))
            rows = int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
            path = sha = None
            if archive_dir is not None:
                path, sha, lines = _archive(conn, name, name, archive_dir)
                if lines != rows:
                    raise PartitionError(f"{name}: archived {lines} rows of {rows}")
            conn.execute(text(f"DROP TABLE {name}"))
            first = dt.datetime.fromtimestamp(month.start_ms / 1000, dt.UTC).date()
            last = dt.datetime.fromtimestamp(month.end_ms / 1000 - 1, dt.UTC).date()
            gone = conn.execute(
                delete(RollupPresence).where(RollupPresence.day.between(first, last))
            ).rowcount
            from server.audit.service import audit

            with Session(bind=conn) as s:
                audit(
                    s,
                    None,
                    "erase",
                    "events_month",
                    summary=(
                        f"events of {month.label} retired after {period} day(s): {rows} row(s) "
                        + (f"archived to {path.name} sha256 {sha}" if path else "dropped")
                    ),
                )
                s.flush()
        out.append(Retired(name, month, rows, path, sha, int(gone or 0)))
    retired = {r.month for r in out}
    kept = {m: p for m, p in found.items() if m not in retired}
    return out + _retire_region_rows(engine, now_ms, kept, archive_dir, dry_run)
