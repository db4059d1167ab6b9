"""The ingest worker while its database is away, without services: the broker's PUBACK and the
edge's signed ack go out only after the transaction committed; a lost connection is tried again
(not acked, not dropped); an error of the work itself is given up after a few tries. The real
thing (PostgreSQL killed under a running worker) is tests/integration/sync/test_database_dies.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from protocol.messages import EventAck
from server.db import is_unreachable
from server.ingest.core import IngestOutcome
from server.ingest.worker import IngestWorker, _Message
from server.settings import ServerSettings
from tests.support.centre import centre_key_file


def lost_connection() -> OperationalError:
    return OperationalError(
        "COPY events", {}, psycopg.OperationalError("server closed the connection unexpectedly")
    )


class FakeClient:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.log.append(f"signed-ack {topic.split('/device/')[1].split('/')[0]}")

    def ack(self, mid: int, qos: int) -> None:
        self.log.append(f"puback {mid}")

    def disconnect(self) -> None: ...

    def loop_stop(self) -> None: ...


class FakeStore:
    """Fails with the given errors in turn, then stores (one signed ack for S1/d1)."""

    def __init__(self, log: list[str], errors: list[Exception]) -> None:
        self.log = log
        self.errors = errors
        self.calls = 0

    def ingest(self, messages: Sequence[tuple[str, bytes]]) -> IngestOutcome:
        self.calls += 1
        if self.errors:
            self.log.append("transaction failed")
            raise self.errors.pop(0)
        self.log.append("committed")
        return IngestOutcome(
            acks=[EventAck(school="S1", device="d1", committed_through=2, missing=[])],
            events_inserted=2,
        )

    def close(self) -> None: ...


def worker_with(errors: list[Exception]) -> tuple[IngestWorker, list[str], FakeStore]:
    settings = ServerSettings(database_url="sqlite://", centre_key_file=centre_key_file())
    worker = IngestWorker(settings)
    log: list[str] = []
    store = FakeStore(log, errors)
    worker._client = FakeClient(log)  # type: ignore[assignment]
    worker._store = store  # type: ignore[assignment]
    return worker, log, store


def messages(link: int = 0) -> list[_Message]:
    t = "qaqpa/v1/school/S1/device/d1/events"
    return [_Message(t, b"a", 11, 1, link), _Message(t, b"b", 12, 1, link)]


def test_acks_wait_for_the_commit_while_the_database_is_away() -> None:
    worker, log, store = worker_with([lost_connection(), psycopg.errors.AdminShutdown("bye")])
    worker._process(messages())
    assert store.calls == 3  # tried again, with the same messages, until it committed
    assert log == [
        "transaction failed",
        "transaction failed",
        "committed",
        "signed-ack d1",
        "puback 11",
        "puback 12",
    ]
    assert worker.database_outages == 1 and not worker.database_down


def test_stopping_while_the_database_is_away_acks_nothing() -> None:
    worker, log, store = worker_with([lost_connection()] * 100)
    worker._stopping.set()
    worker._process(messages())
    assert store.calls == 1
    assert log == ["transaction failed"]  # no PUBACK, no signed ack: the edge sends again


def test_an_error_of_the_work_itself_is_given_up_without_a_signed_ack() -> None:
    bad = IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))
    worker, log, store = worker_with([bad] * 8)
    worker._process(messages())
    # the transaction of both once, then each alone (so one bad message holds back no other),
    # three times
    assert store.calls == 1 + 3 + 3
    # the broker may forget them (they would hold its window for ever); the edge, without a
    # signed ack, sends the events again after its timeout
    assert [line for line in log if line.startswith("puback")] == ["puback 11", "puback 12"]
    assert log[-1] == "puback 12"
    assert not any(line.startswith("signed-ack") for line in log)


def test_no_puback_on_a_newer_connection() -> None:
    worker, log, _ = worker_with([])
    worker._link = 2  # the broker connection dropped and came back meanwhile
    worker._process(messages(link=1))
    assert log == ["committed", "signed-ack d1"]  # message ids of link 1 mean nothing on link 2


@pytest.mark.parametrize(
    ("error", "unreachable"),
    [
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),  # pg_ctl stop
        (psycopg.errors.CannotConnectNow("the database system is starting up"), True),
        (psycopg.errors.ConnectionFailure("lost"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (lost_connection(), True),
        (psycopg.errors.DeadlockDetected("deadlock"), False),
        (psycopg.errors.QueryCanceled("statement timeout"), False),
        (IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("dup")), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_unreachable(error: Exception, unreachable: bool) -> None:
    assert is_unreachable(error) is unreachable


def test_a_connection_sqlalchemy_invalidated_counts_as_unreachable() -> None:
    err: Any = OperationalError("SELECT 1", {}, psycopg.errors.DeadlockDetected("x"))
    err.connection_invalidated = True
    assert is_unreachable(err)


def test_a_background_loop_says_once_that_the_database_went_and_once_that_it_came_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from server.service import DatabasePacing

    pacing = DatabasePacing("notify worker", logging.getLogger("test.pacing"), cap_s=5.0)
    with caplog.at_level(logging.INFO, "test.pacing"):
        pauses = [pacing.failed(lost_connection()) for _ in range(10)]
        assert pacing.database_down
        pacing.succeeded()
        pacing.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "the database is unreachable" in lines[0] and "answers again" in lines[1]
    assert not any(r.exc_info for r in caplog.records)  # no traceback for an outage
    assert pauses[0] < pauses[3] and max(pauses) <= 5.0  # growing, capped
    assert pacing.outages == 1 and not pacing.database_down
