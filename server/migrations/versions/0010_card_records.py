"""cards: card records (card_ref; the number optional), and the move of numbers to the schools

Revision ID: 0010
Revises: 0009 (0008 before sd-pass was merged in)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("card_ref", sa.String(length=64), nullable=True))
        batch.alter_column("credential", existing_type=sa.String(length=128), nullable=True)
    # every card bound by the console so far gets its record id
    op.execute("UPDATE cards SET card_ref = 'c-' || CAST(pk AS VARCHAR(20))")
    with op.batch_alter_table("cards") as batch:
        batch.alter_column("card_ref", existing_type=sa.String(length=64), nullable=False)
    op.create_index("uq_cards_school_ref", "cards", ["school_id", "card_ref"], unique=True)
    op.create_table(
        "card_moves",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("done_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("numbers_erased", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["school_id"], ["schools.id"]),
        sa.PrimaryKeyConstraint("school_id"),
    )


def downgrade() -> None:
    op.drop_table("card_moves")
    op.drop_index("uq_cards_school_ref", table_name="cards")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("card_ref")
        # a card issued at a school has no number here: the downgrade cannot give it one
        batch.alter_column("credential", existing_type=sa.String(length=128), nullable=False)
