"""duty roster and alarms to the person on duty, retention and erasure, card prices and fees,
parents' concerns

Revision ID: 0011
Revises: 0013 (0008 in the brief; chained after sd-pass's 0009, merged here for the staff page)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "retention_settings",
        sa.Column("region_id", sa.String(64), sa.ForeignKey("regions.id"), primary_key=True),
        sa.Column("days_after_leaving", sa.Integer(), nullable=False),
        sa.Column("basis", sa.String(300), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
    )
    op.create_table(
        "retention_inactive",
        sa.Column("student_pk", BigId, sa.ForeignKey("students.pk"), primary_key=True),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "retention_erasures",
        sa.Column("student_pk", BigId, sa.ForeignKey("students.pk"), primary_key=True),
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("erased_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("counts", sa.String(500), nullable=False),
    )
    op.create_index("ix_retention_erasures_school_id", "retention_erasures", ["school_id"])
    op.create_table(
        "duty_shifts",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("shift", sa.Integer(), nullable=False),
        sa.Column("starts", sa.String(5), nullable=False),
        sa.Column("ends", sa.String(5), nullable=False),
        sa.Column("user_pk", BigId, sa.ForeignKey("users.pk"), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.UniqueConstraint("school_id", "day", "shift", name="uq_duty_shifts_slot"),
    )
    op.create_index("ix_duty_shifts_school_id", "duty_shifts", ["school_id"])
    op.create_table(
        "duty_cursors",
        sa.Column("device_pk", BigId, sa.ForeignKey("devices.pk"), primary_key=True),
        sa.Column("through", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "duty_alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("user_pk", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.Column("routed_to", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("body", sa.String(500), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(300), nullable=False),
        sa.UniqueConstraint("source", "user_pk", "channel", name="uq_duty_alerts_source"),
    )
    op.create_index("ix_duty_alerts_school", "duty_alerts", ["school_id", "created_at_ms"])
    op.create_index("ix_duty_alerts_due", "duty_alerts", ["status"])
    op.create_table(
        "card_prices",
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), primary_key=True),
        sa.Column("price_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.CheckConstraint("price_tiyn BETWEEN 5000 AND 20000", name="ck_card_prices_range"),
    )
    op.create_table(
        "card_fee_payments",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("student_pk", BigId, sa.ForeignKey("students.pk"), nullable=False),
        sa.Column("card_pk", sa.BigInteger(), nullable=True, unique=True),
        sa.Column("amount_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("paid_by", sa.String(8), nullable=False),
        sa.Column("ledger_entry_id", BigId, sa.ForeignKey("canteen_entries.id"), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("booked_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.CheckConstraint("amount_tiyn > 0", name="ck_card_fee_payments_positive"),
        sa.CheckConstraint("paid_by IN ('cash', 'balance')", name="ck_card_fee_payments_paid_by"),
    )
    op.create_index("ix_card_fee_payments_school_at", "card_fee_payments", ["school_id", "at_ms"])
    op.create_index("ix_card_fee_payments_student_pk", "card_fee_payments", ["student_pk"])
    op.create_table(
        "parent_concerns",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column("raised_on", sa.Date(), nullable=False),
        sa.Column("topic", sa.String(16), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("answer", sa.String(1000), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=True),
        sa.Column("recorded_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("answered_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
    )
    op.create_index("ix_parent_concerns_school", "parent_concerns", ["school_id", "raised_on"])


def downgrade() -> None:
    for table in (
        "parent_concerns",
        "card_fee_payments",
        "card_prices",
        "duty_alerts",
        "duty_cursors",
        "duty_shifts",
        "retention_erasures",
        "retention_inactive",
        "retention_settings",
    ):
        op.drop_table(table)
