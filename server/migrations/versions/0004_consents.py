"""consents, cards, policy: student categories, cards, meal policies and their publication

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "student_categories",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("student_pk", PK, nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("document", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("recorded_by", PK, nullable=True),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["recorded_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        "ix_student_categories_student_pk", "student_categories", ["student_pk"], unique=False
    )
    op.create_index(
        "ix_student_categories_school_to",
        "student_categories",
        ["school_id", "valid_to"],
        unique=False,
    )
    op.create_table(
        "cards",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("credential", sa.String(length=128), nullable=False),
        sa.Column("student_pk", PK, nullable=True),
        sa.Column("staff_pk", PK, nullable=True),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_reason", sa.String(length=16), nullable=True),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("issued_by", PK, nullable=True),
        sa.Column("fee_tiyn", sa.BigInteger(), nullable=False),
        sa.Column("replaces_card_pk", PK, nullable=True),
        sa.Column("blocked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("unbound_at_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("(student_pk IS NULL) <> (staff_pk IS NULL)", name="ck_cards_one_owner"),
        sa.ForeignKeyConstraint(["student_pk"], ["students.pk"]),
        sa.ForeignKeyConstraint(["staff_pk"], ["staff_members.pk"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["issued_by"], ["users.pk"]),
        sa.ForeignKeyConstraint(["replaces_card_pk"], ["cards.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_cards_student_pk", "cards", ["student_pk"], unique=False)
    op.create_index("ix_cards_staff_pk", "cards", ["staff_pk"], unique=False)
    op.create_index(
        "uq_cards_bound_credential",
        "cards",
        ["school_id", "credential"],
        unique=True,
        postgresql_where=sa.text("status <> 'unbound'"),
        sqlite_where=sa.text("status <> 'unbound'"),
    )
    op.create_table(
        "meal_policies",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=True),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("doc", JSON, nullable=False),
        sa.Column("created_by", PK, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "(region_id IS NULL) <> (school_id IS NULL)", name="ck_meal_policies_one_scope"
        ),
        sa.ForeignKeyConstraint(["region_id"], ["regions.id"]),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.pk"]),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index("ix_meal_policies_region_id", "meal_policies", ["region_id"], unique=False)
    op.create_index("ix_meal_policies_school_id", "meal_policies", ["school_id"], unique=False)
    op.create_table(
        "policy_publications",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("policy_pk", PK, nullable=False),
        sa.Column("published_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.ForeignKeyConstraint(["policy_pk"], ["meal_policies.pk"]),
        sa.PrimaryKeyConstraint("school_id"),
    )


def downgrade() -> None:
    op.drop_table("policy_publications")
    op.drop_index("ix_meal_policies_school_id", table_name="meal_policies")
    op.drop_index("ix_meal_policies_region_id", table_name="meal_policies")
    op.drop_table("meal_policies")
    op.drop_index("uq_cards_bound_credential", table_name="cards")
    op.drop_index("ix_cards_staff_pk", table_name="cards")
    op.drop_index("ix_cards_student_pk", table_name="cards")
    op.drop_table("cards")
    op.drop_index("ix_student_categories_school_to", table_name="student_categories")
    op.drop_index("ix_student_categories_student_pk", table_name="student_categories")
    op.drop_table("student_categories")
