"""Real services for tests: a fresh PostgreSQL database per test, free ports, private Mosquitto
brokers a test may stop and start."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from server.migrate import upgrade
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


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    GUARD.require("postgres")
    name = f"qaqpa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL_BASE}/{name}"
    try:
        upgrade(url)
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
