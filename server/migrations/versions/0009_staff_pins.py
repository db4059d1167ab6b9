"""staff PINs: edges' box keys, PIN versions, sealed PINs awaiting receipt (no PIN, no hash)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "edge_box_keys",
        sa.Column(
            "device_pk", BigId, sa.ForeignKey("devices.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("announced_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("device_pk"),
    )
    op.create_table(
        "staff_pin_versions",
        sa.Column(
            "staff_pk", BigId, sa.ForeignKey("staff_members.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("set_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("set_by_user_pk", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.PrimaryKeyConstraint("staff_pk"),
    )
    op.create_table(
        "staff_pin_deliveries",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("school_id", sa.String(64), sa.ForeignKey("schools.id"), nullable=False),
        sa.Column(
            "device_pk", BigId, sa.ForeignKey("devices.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "staff_pk", BigId, sa.ForeignKey("staff_members.pk", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("staff_ref", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("enc", sa.String(44), nullable=True),
        sa.Column("ct", sa.String(128), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("acked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("opened", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("device_pk", "staff_pk", name="uq_staff_pin_delivery"),
    )
    op.create_index(
        "ix_staff_pin_deliveries_school_id", "staff_pin_deliveries", ["school_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_staff_pin_deliveries_school_id", table_name="staff_pin_deliveries")
    op.drop_table("staff_pin_deliveries")
    op.drop_table("staff_pin_versions")
    op.drop_table("edge_box_keys")
