"""notify tables: preferences per guardian and child, planner cursors, the outbox

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notify_preferences",
        sa.Column("guardian_pk", BigId, nullable=False),
        sa.Column("student_pk", BigId, nullable=False),
        sa.Column("subscriptions", Json, nullable=False),
        sa.Column("quiet_start_min", sa.Integer(), nullable=True),
        sa.Column("quiet_end_min", sa.Integer(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, nullable=True),
        sa.ForeignKeyConstraint(["guardian_pk"], ["guardians.pk"]),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["updated_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("guardian_pk", "student_pk"),
    )
    op.create_table(
        "notify_cursors",
        sa.Column("device_pk", BigId, nullable=False),
        sa.Column("planned_through", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_pk"], ["devices.pk"]),
        sa.PrimaryKeyConstraint("device_pk"),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("device_pk", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("guardian_pk", BigId, nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("student_pk", BigId, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("body", sa.String(length=500), nullable=False),
        sa.Column("event_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["guardian_pk"], ["guardians.pk"]),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "device_pk", "seq", "guardian_pk", "channel", name="uq_notify_outbox_event_guardian"
        ),
    )
    op.create_index("ix_notify_outbox_due", "notify_outbox", ["status", "due_at_ms"])
    op.create_index("ix_notify_outbox_school", "notify_outbox", ["school_id", "created_at_ms"])
    op.create_index("ix_notify_outbox_student", "notify_outbox", ["student_pk", "created_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_notify_outbox_student", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_school", table_name="notify_outbox")
    op.drop_index("ix_notify_outbox_due", table_name="notify_outbox")
    op.drop_table("notify_outbox")
    op.drop_table("notify_cursors")
    op.drop_table("notify_preferences")
