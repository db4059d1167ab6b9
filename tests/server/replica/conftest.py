"""A primary and its streaming hot standby of our own (ports 25441 and 25442), made once per
session; each test gets a fresh database on the primary, which replicates to the standby, and
server settings that read reports from the standby."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from server.settings import ServerSettings
from tests.support.centre import centre_key_file
from tests.support.pg_pair import PgPair, fresh_database

PRIMARY_PORT = 25441
STANDBY_PORT = 25442


@pytest.fixture(scope="session")
def pg_pair() -> Iterator[PgPair]:
    pair = PgPair.on(PRIMARY_PORT, STANDBY_PORT)
    pair.ensure()
    yield pair
    pair.close()


@pytest.fixture
def pg_db_name(pg_pair: PgPair) -> Iterator[str]:
    pg_pair.ensure()  # a test before may have stopped the standby
    with fresh_database(pg_pair.primary) as name:
        yield name


@pytest.fixture
def pg_console_url(pg_pair: PgPair, pg_db_name: str) -> str:
    return pg_pair.primary.url(pg_db_name)


@pytest.fixture
def settings(pg_console_url: str, pg_pair: PgPair, pg_db_name: str) -> ServerSettings:
    return ServerSettings(
        database_url=pg_console_url,
        database_replica_url=pg_pair.standby.url(pg_db_name),
        topic_prefix=f"qaqpa-test/{uuid.uuid4().hex[:10]}/v1",
        centre_key_file=centre_key_file(),
    )
