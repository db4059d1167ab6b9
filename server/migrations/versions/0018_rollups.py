"""rollups: daily meals and attendance per school, class and category, kept at ingest; and
the downlink log's checkpoints (a school's state as its compacted changes)

Revision ID: 0018_rollups
Revises: 0017_partitions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018_rollups"
down_revision: str | None = "0017_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollup_meals",
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("period", sa.String(32), nullable=False),
        sa.Column("meal", sa.String(16), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("categories", sa.String(200), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "day", "period", "meal", "grade", "categories"),
    )
    op.create_table(
        "rollup_presence",
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("student_id", sa.String(64), nullable=False),
        sa.Column("class_pk", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "day", "student_id"),
    )
    op.create_table(
        "rollup_attendance",
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("class_pk", sa.BigInteger(), nullable=False),
        sa.Column("present", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "day", "class_pk"),
    )

    op.create_table(
        "change_log_checkpoints",
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column(
            "changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("school_id"),
    )


def downgrade() -> None:
    op.drop_table("change_log_checkpoints")
    op.drop_table("rollup_attendance")
    op.drop_table("rollup_presence")
    op.drop_table("rollup_meals")
