"""badges: the Elbasy Medal youth award (centres, staff, participants, applications, agreements,
schedules, journal entries with an idempotency key, decisions, books, awards unique per level,
credentials)

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "badge_books",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("section", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("title_key", sa.String(length=300), nullable=False),
        sa.Column("approved_by", BigId, nullable=True),
        sa.Column("approved_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["approved_by"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("section", "title_key", name="uq_badge_books_title"),
    )
    op.create_table(
        "badge_centres",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.Column("sign_due_on", sa.Date(), nullable=True),
        sa.Column("agreement_signed_on", sa.Date(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_centres_region_id"), "badge_centres", ["region_id"], unique=False
    )
    op.create_table(
        "badge_partners",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("centre_pk", BigId, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_pk"],
            ["badge_centres.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_partners_centre_pk"), "badge_partners", ["centre_pk"], unique=False
    )
    op.create_table(
        "badge_staff",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("user_pk", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("centre_pk", BigId, nullable=True),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("place", sa.String(length=200), nullable=False),
        sa.Column("expert_pk", BigId, nullable=True),
        sa.Column("absent", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_pk"],
            ["badge_centres.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["expert_pk"],
            ["badge_staff.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("user_pk", "kind", name="uq_badge_staff_user_kind"),
    )
    op.create_index(op.f("ix_badge_staff_region_id"), "badge_staff", ["region_id"], unique=False)
    op.create_index(op.f("ix_badge_staff_user_pk"), "badge_staff", ["user_pk"], unique=False)
    op.create_table(
        "badge_mentor_ratings",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("mentor_pk", BigId, nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_badge_rating_score"),
        sa.ForeignKeyConstraint(
            ["mentor_pk"],
            ["badge_staff.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_mentor_ratings_mentor_pk"),
        "badge_mentor_ratings",
        ["mentor_pk"],
        unique=False,
    )
    op.create_table(
        "badge_participants",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("user_pk", BigId, nullable=True),
        sa.Column("representative_user_pk", BigId, nullable=True),
        sa.Column("representative_name", sa.String(length=200), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("residence", sa.String(length=200), nullable=False),
        sa.Column("study_place", sa.String(length=200), nullable=False),
        sa.Column("about", sa.String(length=2000), nullable=False),
        sa.Column("hobbies", sa.String(length=500), nullable=False),
        sa.Column("photo", sa.LargeBinary(), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("directions", sa.String(length=200), nullable=False),
        sa.Column("plan_long", sa.String(length=16), nullable=True),
        sa.Column("heritage_mode", sa.String(length=8), nullable=False),
        sa.Column("heritage_months", sa.Integer(), nullable=True),
        sa.Column("centre_pk", BigId, nullable=True),
        sa.Column("mentor_pk", BigId, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start", sa.Date(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_pk"],
            ["badge_centres.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["mentor_pk"],
            ["badge_staff.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["representative_user_pk"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("user_pk"),
    )
    op.create_index(
        op.f("ix_badge_participants_mentor_pk"), "badge_participants", ["mentor_pk"], unique=False
    )
    op.create_index(
        op.f("ix_badge_participants_region_id"), "badge_participants", ["region_id"], unique=False
    )
    op.create_index(
        op.f("ix_badge_participants_representative_user_pk"),
        "badge_participants",
        ["representative_user_pk"],
        unique=False,
    )
    op.create_table(
        "badge_agreements",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=True),
        sa.Column("centre_pk", BigId, nullable=True),
        sa.Column("signer_role", sa.String(length=16), nullable=False),
        sa.Column("signer_user_pk", BigId, nullable=True),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("text_version", sa.String(length=32), nullable=False),
        sa.Column("signed_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_pk"],
            ["badge_centres.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["signer_user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_agreements_participant_pk"),
        "badge_agreements",
        ["participant_pk"],
        unique=False,
    )
    op.create_table(
        "badge_applications",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("directions", sa.String(length=200), nullable=False),
        sa.Column("proposed_centre_pk", BigId, nullable=True),
        sa.Column("proposed_mentor_pk", BigId, nullable=True),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("decided_by", BigId, nullable=True),
        sa.Column("decided_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["proposed_centre_pk"],
            ["badge_centres.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["proposed_mentor_pk"],
            ["badge_staff.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_applications_participant_pk"),
        "badge_applications",
        ["participant_pk"],
        unique=False,
    )
    op.create_table(
        "badge_entries",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("idem_key", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("written_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("hours", sa.Numeric(precision=6, scale=2), nullable=True),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("book_title", sa.String(length=300), nullable=True),
        sa.Column("book_section", sa.String(length=8), nullable=True),
        sa.Column("book_listed", sa.Boolean(), nullable=False),
        sa.Column("partner_pk", BigId, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("employer_confirmation", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("extra_task", sa.String(length=500), nullable=False),
        sa.Column("integrity_note", sa.String(length=300), nullable=False),
        sa.Column("essay_signature", sa.LargeBinary(), nullable=True),
        sa.Column("decided_by", BigId, nullable=True),
        sa.Column("decided_at_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("days IS NULL OR days >= 0", name="ck_badge_entries_days"),
        sa.CheckConstraint("hours IS NULL OR hours >= 0", name="ck_badge_entries_hours"),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["partner_pk"],
            ["badge_partners.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk", "idem_key", name="uq_badge_entries_idem"),
    )
    op.create_index(
        "ix_badge_entries_participant_date",
        "badge_entries",
        ["participant_pk", "entry_date"],
        unique=False,
    )
    op.create_table(
        "badge_proposals",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("proposed_by", BigId, nullable=False),
        sa.Column("proposed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("interview_at", sa.String(length=32), nullable=False),
        sa.Column("interview_link", sa.String(length=300), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=True),
        sa.Column("decided_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_proposals_participant_pk"),
        "badge_proposals",
        ["participant_pk"],
        unique=False,
    )
    op.create_table(
        "badge_ratings_given",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("mentor_pk", BigId, nullable=False),
        sa.ForeignKeyConstraint(
            ["mentor_pk"],
            ["badge_staff.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk", "mentor_pk", name="uq_badge_ratings_given"),
    )
    op.create_table(
        "badge_reassignments",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("from_staff_pk", BigId, nullable=True),
        sa.Column("to_staff_pk", BigId, nullable=False),
        sa.Column("by_user_pk", BigId, nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["by_user_pk"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["from_staff_pk"],
            ["badge_staff.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["to_staff_pk"],
            ["badge_staff.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_reassignments_participant_pk"),
        "badge_reassignments",
        ["participant_pk"],
        unique=False,
    )
    op.create_table(
        "badge_requirements",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("requirements", sa.String(length=2000), nullable=False),
        sa.Column("basis", sa.String(length=300), nullable=False),
        sa.Column("recorded_by", BigId, nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk"),
    )
    op.create_table(
        "badge_schedules",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.String(length=1000), nullable=False),
        sa.Column("hours_per_week", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("mentor_agreed_ms", sa.BigInteger(), nullable=True),
        sa.Column("participant_agreed_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk", "direction", name="uq_badge_schedules_direction"),
    )
    op.create_table(
        "badge_awards",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("participant_pk", BigId, nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("proposal_pk", BigId, nullable=True),
        sa.Column("awarded_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["badge_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["proposal_pk"],
            ["badge_proposals.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk", "level", name="uq_badge_awards_level"),
    )
    op.create_table(
        "badge_commission_members",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("proposal_pk", BigId, nullable=False),
        sa.Column("user_pk", BigId, nullable=False),
        sa.Column("vote", sa.String(length=8), nullable=True),
        sa.Column("voted_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["proposal_pk"],
            ["badge_proposals.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("proposal_pk", "user_pk", name="uq_badge_commission_member"),
    )
    op.create_table(
        "badge_decisions",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("entry_pk", BigId, nullable=False),
        sa.Column("actor_user_pk", BigId, nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("old_status", sa.String(length=16), nullable=False),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_pk"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["entry_pk"],
            ["badge_entries.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_badge_decisions_entry_pk"), "badge_decisions", ["entry_pk"], unique=False
    )
    op.create_table(
        "badge_media",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("entry_pk", BigId, nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("phash", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["entry_pk"],
            ["badge_entries.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(op.f("ix_badge_media_entry_pk"), "badge_media", ["entry_pk"], unique=False)
    op.create_index(op.f("ix_badge_media_sha256"), "badge_media", ["sha256"], unique=False)
    op.create_table(
        "badge_credentials",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("award_pk", BigId, nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("revoked_reason", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["award_pk"],
            ["badge_awards.pk"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("award_pk"),
        sa.UniqueConstraint("status_index"),
    )


def downgrade() -> None:
    op.drop_table("badge_credentials")
    op.drop_index(op.f("ix_badge_media_sha256"), table_name="badge_media")
    op.drop_index(op.f("ix_badge_media_entry_pk"), table_name="badge_media")
    op.drop_table("badge_media")
    op.drop_index(op.f("ix_badge_decisions_entry_pk"), table_name="badge_decisions")
    op.drop_table("badge_decisions")
    op.drop_table("badge_commission_members")
    op.drop_table("badge_awards")
    op.drop_table("badge_schedules")
    op.drop_table("badge_requirements")
    op.drop_index(op.f("ix_badge_reassignments_participant_pk"), table_name="badge_reassignments")
    op.drop_table("badge_reassignments")
    op.drop_table("badge_ratings_given")
    op.drop_index(op.f("ix_badge_proposals_participant_pk"), table_name="badge_proposals")
    op.drop_table("badge_proposals")
    op.drop_index("ix_badge_entries_participant_date", table_name="badge_entries")
    op.drop_table("badge_entries")
    op.drop_index(op.f("ix_badge_applications_participant_pk"), table_name="badge_applications")
    op.drop_table("badge_applications")
    op.drop_index(op.f("ix_badge_agreements_participant_pk"), table_name="badge_agreements")
    op.drop_table("badge_agreements")
    op.drop_index(
        op.f("ix_badge_participants_representative_user_pk"), table_name="badge_participants"
    )
    op.drop_index(op.f("ix_badge_participants_region_id"), table_name="badge_participants")
    op.drop_index(op.f("ix_badge_participants_mentor_pk"), table_name="badge_participants")
    op.drop_table("badge_participants")
    op.drop_index(op.f("ix_badge_mentor_ratings_mentor_pk"), table_name="badge_mentor_ratings")
    op.drop_table("badge_mentor_ratings")
    op.drop_index(op.f("ix_badge_staff_user_pk"), table_name="badge_staff")
    op.drop_index(op.f("ix_badge_staff_region_id"), table_name="badge_staff")
    op.drop_table("badge_staff")
    op.drop_index(op.f("ix_badge_partners_centre_pk"), table_name="badge_partners")
    op.drop_table("badge_partners")
    op.drop_index(op.f("ix_badge_centres_region_id"), table_name="badge_centres")
    op.drop_table("badge_centres")
    op.drop_table("badge_books")
