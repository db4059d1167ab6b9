"""A PostgreSQL cluster of a test's own, on a port of its own, that the test may kill
(``pg_ctl stop -m immediate``: no checkpoint, crash recovery at the next start) and start again.

The machine's PostgreSQL (5432) is shared by everyone's tests and must never be stopped; this one
lives in a directory under /tmp, is made with ``initdb`` (trust authentication, loopback only) and
run as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from server.migrate import upgrade
from tests.support.markers import GUARD
from tests.support.services import listens
from tests.support.wait import wait_until

PG_BIN = Path(os.environ.get("QAQPA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
FAULT_PG_PORT = int(os.environ.get("QAQPA_TEST_FAULT_PG_PORT", "25433"))


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@dataclass
class PgCluster:
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=3"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / args[0]), *args[1:]]),
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def init(self) -> None:
        GUARD.require("postgres")
        self.kill_leftover()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.directory, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        GUARD.require("postgres")
        # fsync off: the test kills PostgreSQL's processes, not the machine, so what a commit
        # wrote to the kernel survives either way (losing unsynced writes is the power-cut
        # test's business); synchronous_commit stays on, or a commit could be answered before
        # its WAL left PostgreSQL's memory, and the kill would lose it.
        opts = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.directory} -c max_connections=60 "
            "-c shared_buffers=16MB -c fsync=off -c synchronous_commit=on"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "log"),
            "-o",
            opts,
        )
        wait_until(lambda: listens(self.port), 30, f"the test cluster listens on {self.port}")

    def stop_immediate(self) -> None:
        """The database dies: every backend is killed at once, nothing is checkpointed."""
        self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data))

    def kill_leftover(self) -> None:
        """A cluster an interrupted earlier run left in this directory."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))

    def create_database(self) -> str:
        """A new database with the server's schema (copied from a template migrated once per
        cluster); its SQLAlchemy URL."""
        template = "qaqpa_fault_template"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{template}"')
                upgrade(self.url(template))
            name = f"qaqpa_fault_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)


@contextlib.contextmanager
def own_cluster(port: int = FAULT_PG_PORT) -> Iterator[PgCluster]:
    cluster = PgCluster(Path(f"/tmp/qaqpa-pg-{port}"), port)
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)
