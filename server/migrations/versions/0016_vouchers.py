"""vouchers: social-wallet issuers (public keys), vouchers and their uses at the schools

Revision ID: 0016
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "voucher_issuers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "vouchers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("issuer_id", sa.String(64), sa.ForeignKey("voucher_issuers.id"), nullable=False),
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("student_pk", BigId, sa.ForeignKey("students.pk"), nullable=False),
        sa.Column("student_ref", sa.String(64), nullable=False),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("meal_periods", Json, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ledger_entry_id", BigId, sa.ForeignKey("canteen_entries.id"), nullable=True),
        sa.Column("sync_version", sa.BigInteger(), nullable=True),
        sa.Column("token", sa.String(600), nullable=True),
    )
    op.create_index("ix_vouchers_school_student", "vouchers", ["school_id", "student_pk"])
    op.create_table(
        "voucher_uses",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("voucher_id", sa.String(64), nullable=False),
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("device_pk", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("student_ref", sa.String(64), nullable=False),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("meal_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("qr", sa.Boolean(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("device_pk", "seq", "voucher_id", name="uq_voucher_uses_event"),
    )
    op.create_index("ix_voucher_uses_voucher", "voucher_uses", ["voucher_id"])
    op.create_index("ix_voucher_uses_school_date", "voucher_uses", ["school_id", "local_date"])


def downgrade() -> None:
    op.drop_index("ix_voucher_uses_school_date", table_name="voucher_uses")
    op.drop_index("ix_voucher_uses_voucher", table_name="voucher_uses")
    op.drop_table("voucher_uses")
    op.drop_index("ix_vouchers_school_student", table_name="vouchers")
    op.drop_table("vouchers")
    op.drop_table("voucher_issuers")
