"""gifted: the gifted-children registry (decree No. 997): schools' locality, nominations,
registry entries with their roadmaps (activities, support) and reminders

Revision ID: 0014
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gifted_schools",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("locality", sa.String(length=8), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", PK, nullable=True),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("school_id"),
    )
    op.create_table(
        "gifted_nominations",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("student_pk", PK, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("place", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("teacher_pk", PK, nullable=True),
        sa.Column("nominated_on", sa.Date(), nullable=False),
        sa.Column("nominated_by", PK, nullable=True),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["teacher_pk"], ["staff_members.pk"]),
        sa.ForeignKeyConstraint(["nominated_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        "ix_gifted_nominations_student_pk", "gifted_nominations", ["student_pk"], unique=False
    )
    op.create_index(
        "ix_gifted_nominations_school",
        "gifted_nominations",
        ["school_id", "nominated_on"],
        unique=False,
    )
    op.create_table(
        "gifted_entries",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("student_pk", PK, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("entered_on", sa.Date(), nullable=False),
        sa.Column("abilities", sa.String(length=500), nullable=False),
        sa.Column("goals", sa.String(length=500), nullable=False),
        sa.Column("coordinator_pk", PK, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["coordinator_pk"], ["users.pk"]),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("student_pk"),
    )
    op.create_index("ix_gifted_entries_school", "gifted_entries", ["school_id"], unique=False)
    op.create_table(
        "gifted_activities",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("entry_pk", PK, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("planned_from", sa.Date(), nullable=False),
        sa.Column("planned_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("result", sa.String(length=200), nullable=False),
        sa.Column("place", sa.Integer(), nullable=True),
        sa.Column("teacher_pk", PK, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_pk"], ["gifted_entries.pk"]),
        sa.ForeignKeyConstraint(["teacher_pk"], ["staff_members.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        "ix_gifted_activities_entry_pk", "gifted_activities", ["entry_pk"], unique=False
    )
    op.create_table(
        "gifted_support",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("entry_pk", PK, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("planned_on", sa.Date(), nullable=False),
        sa.Column("planned_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("paid_tiyn", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_pk"], ["gifted_entries.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_gifted_support_entry_pk", "gifted_support", ["entry_pk"], unique=False)
    op.create_table(
        "gifted_reminders",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("item", sa.String(length=12), nullable=False),
        sa.Column("item_pk", sa.BigInteger(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("student_pk", PK, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint(
            "item", "item_pk", "due_on", "recipient", name="uq_gifted_reminders_item_recipient"
        ),
    )
    op.create_index(
        "ix_gifted_reminders_student_pk", "gifted_reminders", ["student_pk"], unique=False
    )
    op.create_index(
        "ix_gifted_reminders_school", "gifted_reminders", ["school_id", "due_on"], unique=False
    )


def downgrade() -> None:
    op.drop_table("gifted_reminders")
    op.drop_table("gifted_support")
    op.drop_table("gifted_activities")
    op.drop_table("gifted_entries")
    op.drop_table("gifted_nominations")
    op.drop_table("gifted_schools")
