"""A PostgreSQL primary and its streaming hot standby for the benches (``qaqpa bench fleet``);
``pg_bin``, ``as_owner`` and ``run_pg`` are shared with the tests' pair.

The same recipe as the tests' pair (tests/support/pg_pair.py: Debian's ``initdb``, then
``pg_basebackup -R`` for the standby, the server programs run as ``postgres`` when we are root),
but with a production-like configuration (fsync on, shared buffers for tens of millions of rows)
and without the tests' service guard, so that the bench runs outside pytest. A pair already
running on the ports is reused and left running; a pair made here is stopped and removed by
``close()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

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


def _poll(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.2)
    raise RuntimeError(f"not in {timeout} s: {what}")


@dataclass
class BenchCluster:
    port: int
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = Path(f"/tmp/qaqpa-bench-pg-{self.port}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=3"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def accepts(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

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

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            run_pg(
                [str(pg_bin() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data)],
                check=False,
            )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)

    def append_conf(self, text: str) -> None:
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
class BenchPair:
    """``primary`` streams to ``standby``; ``made``: this process made (and will remove) them."""

    primary: BenchCluster
    standby: BenchCluster
    made: bool = False

    @classmethod
    def on(cls, primary_port: int, standby_port: int) -> BenchPair:
        return cls(BenchCluster(primary_port), BenchCluster(standby_port))

    def ensure(self) -> None:
        p, s = self.primary, self.standby
        if p.accepts() and s.accepts() and self.streaming():
            return  # someone's pair: reused, left running
        p.remove()
        s.remove()
        self.made = True
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
        p.append_conf(PRIMARY_CONF.format(port=p.port, data=p.data))
        p.start()
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
        s.start()
        _poll(self.streaming, 60, "the standby streams from the primary")

    def streaming(self) -> bool:
        try:
            with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

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

    def close(self) -> None:
        if self.made:
            self.standby.remove()
            self.primary.remove()
