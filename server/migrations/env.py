"""Alembic environment: the URL comes from the caller's config (server.migrate) or settings."""

from __future__ import annotations

from typing import Any

from alembic import context

from server.db import make_engine
from server.partitions.rules import is_partition
from server.schema import Base
from server.settings import ServerSettings

config = context.config
target_metadata = Base.metadata


def _include_name(name: str | None, kind: str, parent: Any) -> bool:
    """Autogenerate leaves the monthly partitions of events alone (server.partitions)."""
    if kind == "table":
        return not is_partition(name)
    return not is_partition(parent.get("table_name"))


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    return url if url else ServerSettings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=_include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
