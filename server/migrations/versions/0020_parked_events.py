"""ingest: the parked events (a newer edge release's kinds or fields), for a later replay

Revision ID: 0020_parked_events
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_parked_events"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "parked_events",
        sa.Column("device_pk", BigId, sa.ForeignKey("devices.pk"), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("parked_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("replayed_at_ms", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_parked_events_school", "parked_events", ["school_id", "replayed_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_parked_events_school", table_name="parked_events")
    op.drop_table("parked_events")
