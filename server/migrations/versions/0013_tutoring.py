"""tutoring: projects, directions, subjects, volunteers, assignments, participants, groups,
sessions, attendance, tests, the needs survey, the expert council, awards

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tutoring_projects",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column(
            "plan",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_id"],
            ["regions.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "tutoring_council_members",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_council_members_project_pk"),
        "tutoring_council_members",
        ["project_pk"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tutoring_council_members_user_pk"),
        "tutoring_council_members",
        ["user_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_criteria",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("max_score", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project_pk", "kind", "code", name="uq_tutoring_criteria"),
    )
    op.create_index(
        op.f("ix_tutoring_criteria_project_pk"), "tutoring_criteria", ["project_pk"], unique=False
    )
    op.create_table(
        "tutoring_decisions",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column(
            "ranking",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "recorded_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_decisions_project_pk"), "tutoring_decisions", ["project_pk"], unique=False
    )
    op.create_table(
        "tutoring_directions",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("hours > 0 AND hours <= 1000", name="ck_tutoring_directions_hours"),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project_pk", "code", name="uq_tutoring_directions_code"),
    )
    op.create_index(
        op.f("ix_tutoring_directions_project_pk"),
        "tutoring_directions",
        ["project_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_surveys",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column(
            "times",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_surveys_project_pk"), "tutoring_surveys", ["project_pk"], unique=False
    )
    op.create_table(
        "tutoring_volunteers",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("district", sa.String(length=100), nullable=False),
        sa.Column("languages", sa.String(length=32), nullable=False),
        sa.Column(
            "slots",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("training_pre_centi", sa.Integer(), nullable=True),
        sa.Column("training_post_centi", sa.Integer(), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project_pk", "code", name="uq_tutoring_volunteers_code"),
    )
    op.create_index(
        op.f("ix_tutoring_volunteers_project_pk"),
        "tutoring_volunteers",
        ["project_pk"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tutoring_volunteers_user_pk"), "tutoring_volunteers", ["user_pk"], unique=False
    )
    op.create_table(
        "tutoring_awards",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "volunteer_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score_milli", sa.Integer(), nullable=False),
        sa.Column("awarded_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_pk"],
            ["tutoring_volunteers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project_pk", "volunteer_pk", name="uq_tutoring_awards"),
    )
    op.create_index(
        op.f("ix_tutoring_awards_project_pk"), "tutoring_awards", ["project_pk"], unique=False
    )
    op.create_table(
        "tutoring_conflicts",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "volunteer_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "member_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_pk"],
            ["tutoring_council_members.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_pk"],
            ["tutoring_volunteers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("volunteer_pk", "member_pk", name="uq_tutoring_conflicts"),
    )
    op.create_index(
        op.f("ix_tutoring_conflicts_volunteer_pk"),
        "tutoring_conflicts",
        ["volunteer_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_council_scores",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "volunteer_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "member_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "criterion_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["criterion_pk"],
            ["tutoring_criteria.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["member_pk"],
            ["tutoring_council_members.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_pk"],
            ["tutoring_volunteers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("volunteer_pk", "member_pk", "criterion_pk", name="uq_tutoring_scores"),
    )
    op.create_index(
        op.f("ix_tutoring_council_scores_volunteer_pk"),
        "tutoring_council_scores",
        ["volunteer_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_subjects",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "direction_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["direction_pk"],
            ["tutoring_directions.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("direction_pk", "name", name="uq_tutoring_subjects_name"),
    )
    op.create_index(
        op.f("ix_tutoring_subjects_direction_pk"),
        "tutoring_subjects",
        ["direction_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_survey_answers",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "survey_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("district", sa.String(length=100), nullable=False),
        sa.Column("school", sa.String(length=200), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column(
            "directions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "subjects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "times",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_pk"],
            ["tutoring_surveys.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_survey_answers_survey_pk"),
        "tutoring_survey_answers",
        ["survey_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_survey_links",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "survey_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("district", sa.String(length=100), nullable=False),
        sa.Column("school", sa.String(length=200), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["survey_pk"],
            ["tutoring_surveys.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index(
        op.f("ix_tutoring_survey_links_survey_pk"),
        "tutoring_survey_links",
        ["survey_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_assignments",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "volunteer_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "direction_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "subject_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["direction_pk"],
            ["tutoring_directions.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["subject_pk"],
            ["tutoring_subjects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_pk"],
            ["tutoring_volunteers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint(
            "volunteer_pk", "direction_pk", "subject_pk", name="uq_tutoring_assignments"
        ),
    )
    op.create_index(
        op.f("ix_tutoring_assignments_direction_pk"),
        "tutoring_assignments",
        ["direction_pk"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tutoring_assignments_volunteer_pk"),
        "tutoring_assignments",
        ["volunteer_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_groups",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "direction_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "subject_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "volunteer_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("slot", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["direction_pk"],
            ["tutoring_directions.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["subject_pk"],
            ["tutoring_subjects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["volunteer_pk"],
            ["tutoring_volunteers.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_groups_direction_pk"), "tutoring_groups", ["direction_pk"], unique=False
    )
    op.create_index(
        op.f("ix_tutoring_groups_volunteer_pk"), "tutoring_groups", ["volunteer_pk"], unique=False
    )
    op.create_table(
        "tutoring_participants",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "project_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column(
            "student_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("district", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "directions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "slots",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("grade", sa.Integer(), nullable=True),
        sa.Column("low_income", sa.Boolean(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_pk"],
            ["tutoring_projects.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["student_pk"],
            ["students.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("project_pk", "code", name="uq_tutoring_participants_code"),
        sa.UniqueConstraint("project_pk", "student_pk", name="uq_tutoring_participants_student"),
    )
    op.create_index(
        op.f("ix_tutoring_participants_project_pk"),
        "tutoring_participants",
        ["project_pk"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tutoring_participants_student_pk"),
        "tutoring_participants",
        ["student_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_group_members",
        sa.Column("group_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "participant_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["tutoring_groups.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["tutoring_participants.pk"],
        ),
        sa.PrimaryKeyConstraint("group_pk", "participant_pk"),
    )
    op.create_index(
        op.f("ix_tutoring_group_members_participant_pk"),
        "tutoring_group_members",
        ["participant_pk"],
        unique=False,
    )
    op.create_table(
        "tutoring_sessions",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("group_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["tutoring_groups.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
    )
    op.create_index(
        op.f("ix_tutoring_sessions_group_pk"), "tutoring_sessions", ["group_pk"], unique=False
    )
    op.create_table(
        "tutoring_tests",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "participant_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "direction_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("score_centi", sa.Integer(), nullable=False),
        sa.CheckConstraint("score_centi >= 0 AND score_centi <= 10000", name="ck_tutoring_tests"),
        sa.ForeignKeyConstraint(
            ["direction_pk"],
            ["tutoring_directions.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["tutoring_participants.pk"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("participant_pk", "direction_pk", "phase", name="uq_tutoring_tests"),
    )
    op.create_index(
        op.f("ix_tutoring_tests_direction_pk"), "tutoring_tests", ["direction_pk"], unique=False
    )
    op.create_index(
        op.f("ix_tutoring_tests_participant_pk"), "tutoring_tests", ["participant_pk"], unique=False
    )
    op.create_table(
        "tutoring_attendance",
        sa.Column(
            "session_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "participant_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column("marked_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("marked_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["marked_by"],
            ["users.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["participant_pk"],
            ["tutoring_participants.pk"],
        ),
        sa.ForeignKeyConstraint(
            ["session_pk"],
            ["tutoring_sessions.pk"],
        ),
        sa.PrimaryKeyConstraint("session_pk", "participant_pk"),
    )
    op.create_index(
        op.f("ix_tutoring_attendance_participant_pk"),
        "tutoring_attendance",
        ["participant_pk"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tutoring_attendance_participant_pk"), table_name="tutoring_attendance")
    op.drop_table("tutoring_attendance")
    op.drop_index(op.f("ix_tutoring_tests_participant_pk"), table_name="tutoring_tests")
    op.drop_index(op.f("ix_tutoring_tests_direction_pk"), table_name="tutoring_tests")
    op.drop_table("tutoring_tests")
    op.drop_index(op.f("ix_tutoring_sessions_group_pk"), table_name="tutoring_sessions")
    op.drop_table("tutoring_sessions")
    op.drop_index(
        op.f("ix_tutoring_group_members_participant_pk"), table_name="tutoring_group_members"
    )
    op.drop_table("tutoring_group_members")
    op.drop_index(op.f("ix_tutoring_participants_student_pk"), table_name="tutoring_participants")
    op.drop_index(op.f("ix_tutoring_participants_project_pk"), table_name="tutoring_participants")
    op.drop_table("tutoring_participants")
    op.drop_index(op.f("ix_tutoring_groups_volunteer_pk"), table_name="tutoring_groups")
    op.drop_index(op.f("ix_tutoring_groups_direction_pk"), table_name="tutoring_groups")
    op.drop_table("tutoring_groups")
    op.drop_index(op.f("ix_tutoring_assignments_volunteer_pk"), table_name="tutoring_assignments")
    op.drop_index(op.f("ix_tutoring_assignments_direction_pk"), table_name="tutoring_assignments")
    op.drop_table("tutoring_assignments")
    op.drop_index(op.f("ix_tutoring_survey_links_survey_pk"), table_name="tutoring_survey_links")
    op.drop_table("tutoring_survey_links")
    op.drop_index(
        op.f("ix_tutoring_survey_answers_survey_pk"), table_name="tutoring_survey_answers"
    )
    op.drop_table("tutoring_survey_answers")
    op.drop_index(op.f("ix_tutoring_subjects_direction_pk"), table_name="tutoring_subjects")
    op.drop_table("tutoring_subjects")
    op.drop_index(
        op.f("ix_tutoring_council_scores_volunteer_pk"), table_name="tutoring_council_scores"
    )
    op.drop_table("tutoring_council_scores")
    op.drop_index(op.f("ix_tutoring_conflicts_volunteer_pk"), table_name="tutoring_conflicts")
    op.drop_table("tutoring_conflicts")
    op.drop_index(op.f("ix_tutoring_awards_project_pk"), table_name="tutoring_awards")
    op.drop_table("tutoring_awards")
    op.drop_index(op.f("ix_tutoring_volunteers_user_pk"), table_name="tutoring_volunteers")
    op.drop_index(op.f("ix_tutoring_volunteers_project_pk"), table_name="tutoring_volunteers")
    op.drop_table("tutoring_volunteers")
    op.drop_index(op.f("ix_tutoring_surveys_project_pk"), table_name="tutoring_surveys")
    op.drop_table("tutoring_surveys")
    op.drop_index(op.f("ix_tutoring_directions_project_pk"), table_name="tutoring_directions")
    op.drop_table("tutoring_directions")
    op.drop_index(op.f("ix_tutoring_decisions_project_pk"), table_name="tutoring_decisions")
    op.drop_table("tutoring_decisions")
    op.drop_index(op.f("ix_tutoring_criteria_project_pk"), table_name="tutoring_criteria")
    op.drop_table("tutoring_criteria")
    op.drop_index(
        op.f("ix_tutoring_council_members_user_pk"), table_name="tutoring_council_members"
    )
    op.drop_index(
        op.f("ix_tutoring_council_members_project_pk"), table_name="tutoring_council_members"
    )
    op.drop_table("tutoring_council_members")
    op.drop_table("tutoring_projects")
