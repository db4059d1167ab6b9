"""A PostgreSQL primary and its streaming hot standby of our own, for the standby tests.

The recipe is the bench's (simulators/pg_pair.py); here the clusters live in ``/tmp/qaqpa-pg-<port>``
with a small, quick configuration. A pair already running on the ports is reused (and left
running), a pair this process started is stopped at the end. Tests may stop the standby, promote it
or kill the primary; ``ensure()`` puts the pair back.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import psycopg

from server.migrate import upgrade
from simulators.pg_pair import Cluster, NotReady, Pair
from tests.support.markers import GUARD

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
class PgPair(Pair):
    """The tests' pair; ``started``: this process started something (stopped by ``close()``)."""

    started: bool = False

    PREFIX: ClassVar[str] = "/tmp/qaqpa-pg"
    CONF: ClassVar[str] = PRIMARY_CONF

    def ensure(self) -> None:
        """Both running, the standby streaming from the primary: made, started or remade."""
        GUARD.require("postgres")
        p, s = self.primary, self.standby
        if not (p.data / "PG_VERSION").exists() or (p.running() and not p.accepts()):
            p.wipe()
            s.wipe()  # a standby of another primary cannot follow a new one
            self.make_primary()
        if not p.running():
            p.start()
            self.started = True
        if p.in_recovery():  # a leftover of a failed failover test: start again from scratch
            p.wipe()
            s.wipe()
            self.make_primary()
        if (s.data / "standby.signal").exists() and not s.running():
            with contextlib.suppress(subprocess.CalledProcessError, NotReady):
                s.start()  # stopped by a test: started again, not made again
                self.started = True
                self.wait_streaming(15)
        if s.running() and s.accepts() and s.in_recovery() and self.streaming():
            return
        s.wipe()
        self.make_standby()
        s.start()
        self.started = True
        self.wait_streaming(30)

    def make_primary(self) -> None:
        _templated.discard(self.primary.port)  # a new cluster has no template yet
        super().make_primary()
        self.started = True

    def wait_replayed(self, timeout: float = 30) -> float:
        return super().wait_replayed(timeout)

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
