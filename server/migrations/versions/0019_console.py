"""equipment: the scan of a signed hand-over act kept with its loan

Revision ID: 0019
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "equipment_loan_acts",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("loan_pk", BigId, sa.ForeignKey("equipment_loans.pk"), nullable=False),
        sa.Column("media_type", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", BigId, sa.ForeignKey("users.pk"), nullable=True),
        sa.UniqueConstraint("loan_pk", name="uq_equipment_loan_acts_loan"),
    )


def downgrade() -> None:
    op.drop_table("equipment_loan_acts")
