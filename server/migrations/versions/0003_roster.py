"""roster tables: import previews awaiting confirmation, the classes a staff member teaches

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "roster_import_previews",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("user_pk", BigId, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("plan_digest", sa.String(length=64), nullable=False),
        sa.Column("error_count", sa.BigInteger(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["user_pk"], ["users.pk"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("roster_import_previews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_roster_import_previews_user_pk"), ["user_pk"], unique=False
        )
    op.create_table(
        "roster_staff_classes",
        sa.Column("staff_pk", BigId, nullable=False),
        sa.Column("class_pk", BigId, nullable=False),
        sa.ForeignKeyConstraint(["staff_pk"], ["staff_members.pk"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["class_pk"], ["school_classes.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("staff_pk", "class_pk"),
    )


def downgrade() -> None:
    op.drop_table("roster_staff_classes")
    with op.batch_alter_table("roster_import_previews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_roster_import_previews_user_pk"))
    op.drop_table("roster_import_previews")
