"""The migrations build exactly the tables the models describe (each module wrote its own
migration by hand; a drift would show up here, not in production)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from server.partitions.rules import is_partition
from server.schema import Base


def test_migrations_match_the_models(pg_console_url: str) -> None:
    engine = create_engine(pg_console_url)
    try:
        with engine.connect() as conn:
            # the monthly partitions of events are the partitioned table's, not models
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "include_name": lambda name, kind, parent: (
                        not (
                            is_partition(name)
                            or (kind == "index" and is_partition(parent.get("table_name")))
                        )
                    )
                },
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], "\n".join(str(d) for d in diff)
