"""Real services for tests: a fresh PostgreSQL database per test, free ports, private Mosquitto
brokers a test may stop and start."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import getpass
import hashlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from server.migrate import MIGRATIONS, upgrade
from tests.support.markers import GUARD
from tests.support.wait import NotInTime, wait_until

PG_ADMIN = os.environ.get("QAQPA_TEST_PG_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("QAQPA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
SYSTEM_BROKER = ("127.0.0.1", 1883)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_port(port: int, timeout: float = 10.0) -> None:
    wait_until(lambda: listens(port), timeout, f"something listens on port {port}")


# A migrated database that each test's database copies: ``CREATE DATABASE ... TEMPLATE`` takes
# about 0.2 s where running the migrations takes 3-4 s (times several hundred tests). Its name
# carries a digest of the migrations and the day (the partitions migration makes the months
# around "now"), so a changed migration or a new day makes a new one; it is marked a template
# only once fully migrated, under an advisory lock that the suite's parallel workers share.
TEMPLATE_PREFIX = "qaqpa_tpl_"
_TEMPLATE_LOCK = 0x51A9_7E57  # pg_advisory_lock key
_template: str | None = None


@functools.cache
def _migrations_digest() -> str:
    """Read once per process (the migrations do not change under a running suite)."""
    h = hashlib.sha256()
    for path in sorted(MIGRATIONS.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(MIGRATIONS).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:10]


def pg_template() -> str:
    """The name of the migrated template database for today's run (made if missing)."""
    global _template
    day = dt.datetime.fromtimestamp(time.time(), dt.UTC).strftime("%Y%m%d")
    name = f"{TEMPLATE_PREFIX}{_migrations_digest()}_{day}"
    if _template == name:
        return name
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_TEMPLATE_LOCK,))
        try:
            ready = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (name,)
            ).fetchone()
            if ready is None:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # half made
                conn.execute(f'CREATE DATABASE "{name}"')
                upgrade(f"{PG_URL_BASE}/{name}")
                conn.execute(
                    f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'
                )
                _drop_old_templates(conn, day)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_TEMPLATE_LOCK,))
    _template = name
    return name


def _drop_old_templates(conn: psycopg.Connection[Any], day: str) -> None:
    """Templates of days before yesterday (another run of today may still copy today's)."""
    keep_from = (dt.datetime.strptime(day, "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", (TEMPLATE_PREFIX + "%",)
    ).fetchall()
    for (old,) in rows:
        if old.rsplit("_", 1)[-1] < keep_from:
            conn.execute(f'ALTER DATABASE "{old}" WITH IS_TEMPLATE false')
            conn.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new database at the latest schema (a copy of ``pg_template``), dropped afterwards."""
    GUARD.require("postgres")
    name = f"qaqpa_test_{uuid.uuid4().hex[:12]}"
    template = pg_template()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    url = f"{PG_URL_BASE}/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class PrivateBroker:
    """A Mosquitto of our own, on a free port, that a test may stop and start."""

    directory: Path
    port: int
    extra_conf: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    pid_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "mosquitto.log"
        self.pid_file = self.directory / "mosquitto.pid"

    def start(self) -> None:
        GUARD.require("mosquitto")
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"pid_file {self.pid_file}\n"
            "persistence false\n"
            f"user {getpass.getuser()}\n"  # as root, Mosquitto would switch to 'mosquitto'
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + ("" if "allow_anonymous" in self.extra_conf else "allow_anonymous true\n")
            + f"{self.extra_conf}\n"
        )
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)])
        try:
            wait_port(self.port)
        except NotInTime as err:
            raise RuntimeError(
                f"mosquitto did not start: {self.log_path.read_text()[-500:]}"
            ) from err

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
