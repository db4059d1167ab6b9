"""canteen: double-entry ledger (entries, postings), menus, parents' limits, low balances

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "canteen_entries",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("student_pk", BigId, nullable=True),
        sa.Column("student_ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=True),
        sa.Column("external_ref", sa.String(length=200), nullable=False),
        sa.Column("device_pk", sa.BigInteger(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("created_by", BigId, nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=True),
        sa.Column("wallet_confirmed_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("amount_tiyn > 0", name="ck_canteen_entries_positive"),
        sa.ForeignKeyConstraint(["created_by"], ["users.pk"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_pk", "seq", name="uq_canteen_entries_event"),
        sa.UniqueConstraint("external_ref"),
    )
    op.create_index("ix_canteen_entries_school_at", "canteen_entries", ["school_id", "at_ms"])
    op.create_index("ix_canteen_entries_student", "canteen_entries", ["student_pk", "at_ms"])
    op.create_table(
        "canteen_postings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=24), nullable=False),
        sa.Column("student_pk", BigId, nullable=True),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["entry_id"], ["canteen_entries.id"]),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_canteen_postings_entry_id", "canteen_postings", ["entry_id"])
    op.create_index("ix_canteen_postings_account", "canteen_postings", ["account", "student_pk"])
    op.create_table(
        "canteen_menus",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("items", Json, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, nullable=True),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["updated_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("school_id", "local_date"),
    )
    op.create_table(
        "canteen_limits",
        sa.Column("student_pk", BigId, nullable=False),
        sa.Column("allergen_blocks", Json, nullable=False),
        sa.Column("daily_cap_tiyn", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, nullable=True),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["updated_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("student_pk"),
    )
    op.create_table(
        "canteen_low_balance",
        sa.Column("entry_id", BigId, nullable=False),
        sa.Column("student_pk", BigId, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("balance_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("threshold_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("notified_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["entry_id"], ["canteen_entries.id"]),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index("ix_canteen_low_balance_student_pk", "canteen_low_balance", ["student_pk"])


def downgrade() -> None:
    op.drop_table("canteen_low_balance")
    op.drop_table("canteen_limits")
    op.drop_table("canteen_menus")
    op.drop_index("ix_canteen_postings_account", table_name="canteen_postings")
    op.drop_index("ix_canteen_postings_entry_id", table_name="canteen_postings")
    op.drop_table("canteen_postings")
    op.drop_index("ix_canteen_entries_student", table_name="canteen_entries")
    op.drop_index("ix_canteen_entries_school_at", table_name="canteen_entries")
    op.drop_table("canteen_entries")
