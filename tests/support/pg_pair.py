"""A PostgreSQL primary and its streaming hot standby of our own, for the standby tests.

Both clusters live under /tmp (``/tmp/qaqpa-pg-<port>``), made with Debian's ``initdb`` and
``pg_basebackup -R``; a pair already running on the ports is reused (and left running), a pair
this process started is stopped at the end. As root the server programs run as ``postgres``
(PostgreSQL refuses to run as root). Tests may stop the standby, promote it or kill the primary;
``ensure()`` puts the pair back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from server.migrate import upgrade
from simulators.pg_pair import as_owner, pg_bin, run_pg
from tests.support.markers import GUARD
from tests.support.wait import NotInTime, wait_until


@dataclass
class Cluster:
    port: int
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = Path(f"/tmp/qaqpa-pg-{self.port}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=3"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return (
            run_pg(
                [str(pg_bin() / "pg_ctl"), "status", "-D", str(self.data)], check=False
            ).returncode
            == 0
        )

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
        wait_until(self.accepts, 30, f"PostgreSQL on port {self.port} accepts connections")

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            run_pg([str(pg_bin() / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.data)])

    def wipe(self) -> None:
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


# Small and quick: tests only. fsync off is safe here (the machine does not crash under a test;
# an immediate stop of the primary, as in failover, still loses nothing that was committed).
PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{data}'
shared_buffers = 16MB
max_connections = 60
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
wal_keep_size = 256MB
hot_standby = on
hot_standby_feedback = on
log_min_messages = warning
"""


@dataclass
class PgPair:
    """``primary`` streams to ``standby``; ``started``: this process started something."""

    primary: Cluster
    standby: Cluster
    started: bool = False

    @classmethod
    def on(cls, primary_port: int, standby_port: int) -> PgPair:
        return cls(Cluster(primary_port), Cluster(standby_port))

    def ensure(self) -> None:
        """Both running, the standby streaming from the primary: made, started or remade."""
        GUARD.require("postgres")
        p, s = self.primary, self.standby
        if not (p.data / "PG_VERSION").exists() or (p.running() and not p.accepts()):
            p.wipe()
            s.wipe()  # a standby of another primary cannot follow a new one
            self._initdb()
        if not p.running():
            p.start()
            self.started = True
        if p.in_recovery():  # a leftover of a failed failover test: start again from scratch
            p.wipe()
            s.wipe()
            self._initdb()
            p.start()
        if (s.data / "standby.signal").exists() and not s.running():
            with contextlib.suppress(subprocess.CalledProcessError, NotInTime):
                s.start()  # stopped by a test: started again, not made again
                self.started = True
                wait_until(self._streaming, 15, "the standby streams from the primary")
        if s.running() and s.accepts() and s.in_recovery() and self._streaming():
            return
        s.wipe()
        self._basebackup()
        s.start()
        self.started = True
        wait_until(self._streaming, 30, "the standby streams from the primary")

    def _initdb(self) -> None:
        p = self.primary
        _templated.discard(p.port)  # a new cluster has no template yet
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
        self.started = True

    def _basebackup(self) -> None:
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

    def _streaming(self) -> bool:
        try:
            with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
                return bool(row and row[0])
        except psycopg.Error:
            return False

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        lsn = row[0]

        def replayed() -> bool:
            with psycopg.connect(self.standby.dsn(), autocommit=True) as c:
                r = c.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
                return bool(r and r[0])

        wait_until(replayed, timeout, f"the standby replays up to {lsn}")

    def close(self) -> None:
        if self.started and not os.environ.get("QAQPA_TEST_KEEP_PG_PAIR"):
            self.standby.stop()
            self.primary.stop()


TEMPLATE = "qaqpa_test_template"
_templated: set[int] = set()  # ports whose template was made at the latest schema this session


def _template(cluster: Cluster) -> str:
    """A database at the latest schema, made once per session, that new databases copy (far
    quicker than running the migrations for each test)."""
    if cluster.port not in _templated:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        upgrade(cluster.url(TEMPLATE))
        _templated.add(cluster.port)
    return TEMPLATE


@contextlib.contextmanager
def fresh_database(cluster: Cluster) -> Iterator[str]:
    """A new database at the latest schema on ``cluster`` (it reaches the standby by
    replication)."""
    GUARD.require("postgres")
    name = f"qaqpa_test_{uuid.uuid4().hex[:12]}"
    template = _template(cluster)
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield name
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(cluster.dsn(), autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
