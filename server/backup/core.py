"""``pg_dump -Fc`` with a manifest, and the restore check.

The manifest (``<dump>.manifest.json``) holds the row count of every table and a checksum of the
events, read in the very snapshot the dump was taken in (``pg_export_snapshot`` and
``pg_dump --snapshot``), so a dump of a database that kept taking events is still checked
exactly. The check restores the dump with ``pg_restore`` into a new, empty database, counts
again, compares, and drops that database. Nothing personal is printed: table names and numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

MANIFEST_SUFFIX = ".manifest.json"
# Every table (and partitioned table, counted through its partitions) outside the catalogues.
TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
ORDER BY 1, 2
"""
# Order-independent and streaming (a week of national traffic does not fit in one string):
# the sum of the first 60 bits of each row's md5, with the count.
EVENTS_SQL = """
SELECT count(*), coalesce(sum(('x' || substr(md5(e::text), 1, 15))::bit(60)::bigint), 0)::text
FROM events AS e
"""


class BackupError(Exception):
    """A dump or restore that could not be made, with the tool's own message."""


@dataclass
class Contents:
    tables: dict[str, int] = field(default_factory=dict)
    events: int = 0
    events_checksum: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Contents:
        return cls(
            tables={str(k): int(v) for k, v in data["tables"].items()},
            events=int(data["events"]),
            events_checksum=str(data["events_checksum"]),
        )


@dataclass
class CheckReport:
    ok: bool
    tables: int
    rows: int
    events: int
    events_checksum_equal: bool
    differences: list[dict[str, Any]]
    restored_into: str
    compared_with: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """A libpq URI without the password (that goes in PGPASSWORD, not on a command line)."""

    uri: str
    password: str | None
    dbname: str

    @classmethod
    def of(cls, url: str) -> Target:
        u = make_url(url)
        if not u.drivername.startswith("postgresql"):
            raise BackupError("backups are of PostgreSQL databases (database_url is not one)")
        plain = u.set(drivername="postgresql", password=None)
        return cls(plain.render_as_string(hide_password=False), u.password, u.database or "")

    def with_db(self, dbname: str) -> Target:
        u = make_url(self.uri).set(database=dbname)
        return Target(u.render_as_string(hide_password=False), self.password, dbname)

    def connect(self, **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.uri, password=self.password, **kw)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


def tool(name: str) -> str:
    """``pg_dump`` / ``pg_restore``: on PATH (Debian's wrapper), else the newest installed."""
    found = shutil.which(name)
    if found:
        return found
    cands = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not cands:
        raise BackupError(f"{name} not found: install Debian's postgresql-client")
    return str(cands[-1])


def read_contents(conn: psycopg.Connection[Any]) -> Contents:
    out = Contents()
    for schema, table in conn.execute(TABLES_SQL).fetchall():
        q = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(q).fetchone()
        key = table if schema == "public" else f"{schema}.{table}"
        out.tables[key] = int(row[0]) if row else 0
    if "events" in out.tables:
        row = conn.execute(EVENTS_SQL).fetchone()
        if row is not None:
            out.events, out.events_checksum = int(row[0]), str(row[1])
    return out


def _run(argv: list[str], target: Target) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=target.env(), check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")


def dump(database_url: str, out: Path) -> Contents:
    """``pg_dump -Fc`` of the database into ``out`` and its manifest beside it."""
    src = Target.of(database_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    with src.connect(autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        contents = read_contents(conn)
        _run([tool("pg_dump"), "-Fc", f"--snapshot={row[0]}", "-f", str(out), "-d", src.uri], src)
        conn.execute("COMMIT")
    manifest_of(out).write_text(json.dumps(contents.to_json(), indent=1, sort_keys=True))
    return contents


def manifest_of(dump_file: Path) -> Path:
    return dump_file.with_name(dump_file.name + MANIFEST_SUFFIX)


@contextmanager
def restored(dump_file: Path, server_url: str, keep: bool = False) -> Iterator[Target]:
    """The dump restored into a new, empty database on ``server_url``'s server (dropped after)."""
    admin = Target.of(server_url)
    name = f"qaqpa_restore_check_{uuid.uuid4().hex[:10]}"
    with admin.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = admin.with_db(name)
    try:
        _run(
            [
                tool("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-d",
                target.uri,
                str(dump_file),
            ],
            target,
        )
        yield target
    finally:
        if not keep:
            with admin.connect(autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def compare(expected: Contents, got: Contents) -> list[dict[str, Any]]:
    diffs: list[dict[str, Any]] = []
    for table in sorted(set(expected.tables) | set(got.tables)):
        a, b = expected.tables.get(table), got.tables.get(table)
        if a != b:
            diffs.append({"table": table, "expected": a, "restored": b})
    if expected.events_checksum != got.events_checksum:
        diffs.append({"table": "events", "checksum": "differs"})
    return diffs


def check(
    dump_file: Path,
    database_url: str,
    *,
    manifest: Path | None = None,
    server_url: str | None = None,
    keep: bool = False,
) -> CheckReport:
    """Restore ``dump_file`` into an empty database and compare it with its manifest (or, when
    there is none, with the live database at ``database_url``: only exact while nothing writes)."""
    if not dump_file.is_file():
        raise BackupError(f"no dump file at {dump_file}")
    manifest = manifest if manifest is not None else manifest_of(dump_file)
    if manifest.is_file():
        expected = Contents.from_json(json.loads(manifest.read_text()))
        compared_with = f"manifest {manifest.name}"
    else:
        with Target.of(database_url).connect(autocommit=True) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            expected = read_contents(conn)
        compared_with = "the live database"
    with restored(dump_file, server_url or database_url, keep) as target:
        with target.connect(autocommit=True) as conn:
            got = read_contents(conn)
        diffs = compare(expected, got)
        return CheckReport(
            ok=not diffs,
            tables=len(got.tables),
            rows=sum(got.tables.values()),
            events=got.events,
            events_checksum_equal=expected.events_checksum == got.events_checksum,
            differences=diffs,
            restored_into=target.dbname if keep else "(dropped)",
            compared_with=compared_with,
        )
