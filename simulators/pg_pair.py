"""A PostgreSQL primary and its streaming hot standby: the recipe shared by the benches
(``qaqpa bench fleet``) and the standby tests (tests/support/pg_pair.py).

Debian's ``initdb`` makes the primary and ``pg_basebackup -R`` the standby; the server programs
run as ``postgres`` when we are root (PostgreSQL refuses to run as root). ``Pair`` holds how a pair
is made, watched and waited on; ``BenchPair`` is the bench's: a production-like configuration
(fsync on, shared buffers for tens of millions of rows), no service guard (the bench runs outside
pytest), a pair already running on the ports reused and left running, a pair made here stopped and
removed by ``close()``. The tests' pair subclasses ``Pair`` with a small configuration and its own
repairs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import psycopg


def pg_bin() -> Path:
    """The newest PostgreSQL server programs Debian installed (``postgresql-NN``)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise RuntimeError("no /usr/lib/postgresql/*/bin/pg_ctl: install Debian's postgresql")
    return found[-1].parent


def as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def run_pg(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(as_owner(argv), capture_output=True, text=True, check=check, timeout=300)


class NotReady(RuntimeError):
    """A cluster or the pair did not reach the awaited state before the deadline."""


def _poll(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise NotReady(f"not in {timeout} s: {what}")


@dataclass
class Cluster:
    """One PostgreSQL cluster of ours in ``<prefix>-<port>`` (the bench's and the tests' apart)."""

    port: int
    prefix: str = "/tmp/qaqpa-bench-pg"
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = Path(f"{self.prefix}-{self.port}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=3"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        status = run_pg([str(pg_bin() / "pg_ctl"), "status", "-D", str(self.data)], check=False)
        return status.returncode == 0

    def accepts(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def in_recovery(self) -> bool:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row and row[0])

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> None:
        log = self.data / "server.log"
        run_pg(
            [
                str(pg_bin() / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data),
                "-l",
                str(log),
            ]
        )
        _poll(self.accepts, 30, f"PostgreSQL on port {self.port} accepts connections")

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            run_pg([str(pg_bin() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data)])

    def wipe(self) -> None:
        """Stopped at once (its data is going) and removed."""
        self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)

    def append_conf(self, text: str) -> None:
        # as the owner: the file is postgres's
        subprocess.run(
            as_owner(["sh", "-c", f"cat >> {self.data}/postgresql.auto.conf"]),
            input=text,
            text=True,
            check=True,
        )


# Production-like: fsync and full-page writes on (the figures must not flatter the disk).
PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{data}'
shared_buffers = 1GB
work_mem = 32MB
maintenance_work_mem = 512MB
max_connections = 100
max_wal_size = 8GB
checkpoint_timeout = 15min
wal_level = replica
max_wal_senders = 5
wal_keep_size = 2GB
hot_standby = on
hot_standby_feedback = on
log_min_messages = warning
"""


@dataclass
class Pair:
    """``primary`` streams to ``standby``: how a pair is made, watched and waited on. What to do
    with a pair found on the ports (reuse, repair) and at the end is the subclass's."""

    primary: Cluster
    standby: Cluster

    PREFIX: ClassVar[str] = "/tmp/qaqpa-bench-pg"
    CONF: ClassVar[str] = PRIMARY_CONF  # the primary's settings

    @classmethod
    def on(cls, primary_port: int, standby_port: int) -> Self:
        return cls(Cluster(primary_port, cls.PREFIX), Cluster(standby_port, cls.PREFIX))

    def make_primary(self) -> None:
        """A new primary cluster (its directory gone or empty), configured and started."""
        p = self.primary
        run_pg(
            [
                str(pg_bin() / "initdb"),
                "-D",
                str(p.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        p.append_conf(self.CONF.format(port=p.port, data=p.data))
        p.start()

    def make_standby(self) -> None:
        """A new standby (its directory gone) copied from the running primary, not started."""
        p, s = self.primary, self.standby
        run_pg(
            [
                str(pg_bin() / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(p.port),
                "-U",
                "postgres",
                "-D",
                str(s.data),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ]
        )
        s.append_conf(f"port = {s.port}\nunix_socket_directories = '{s.data}'\n")

    def streaming(self) -> bool:
        try:
            with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

    def wait_streaming(self, timeout: float) -> None:
        _poll(self.streaming, timeout, "the standby streams from the primary")

    def wait_replayed(self, timeout: float = 600) -> float:
        """Until the standby has replayed what the primary has written so far; the seconds."""
        t0 = time.monotonic()
        with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        lsn = row[0]

        def replayed() -> bool:
            with psycopg.connect(self.standby.dsn(), autocommit=True) as c:
                r = c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
                return bool(r and r[0])

        _poll(replayed, timeout, f"the standby replays up to {lsn}")
        return time.monotonic() - t0


@dataclass
class BenchPair(Pair):
    """The bench's pair; ``made``: this process made (and will remove) it."""

    made: bool = False

    def ensure(self) -> None:
        if self.primary.accepts() and self.standby.accepts() and self.streaming():
            return  # someone's pair: reused, left running
        self.primary.wipe()
        self.standby.wipe()
        self.made = True
        self.make_primary()
        self.make_standby()
        self.standby.start()
        self.wait_streaming(60)

    def close(self) -> None:
        if self.made:
            self.standby.wipe()
            self.primary.wipe()
