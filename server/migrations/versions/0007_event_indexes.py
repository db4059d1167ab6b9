"""events: indexes for reports by kind and for a child's own events

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_school_kind_at", "events", ["school_id", "kind", "at_ms"])
    op.create_index("ix_events_student_at", "events", ["student_id", "at_ms"])


def downgrade() -> None:
    op.drop_index("ix_events_student_at", table_name="events")
    op.drop_index("ix_events_school_kind_at", table_name="events")
