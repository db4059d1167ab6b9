"""initial sync schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:07:13.395690
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "ingest_rejections",
        sa.Column("school", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("school", "device", "reason"),
    )
    op.create_table(
        "schools",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "server_alarms",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("school", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("server_alarms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_server_alarms_at_ms"), ["at_ms"], unique=False)

    op.create_table(
        "change_log",
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column(
            "changes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("school_id", "version"),
    )
    op.create_table(
        "devices",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=True),
        sa.Column("mqtt_username", sa.String(length=140), nullable=True),
        sa.Column("mqtt_password_hash", sa.String(length=200), nullable=True),
        sa.Column("enrol_token_hash", sa.String(length=64), nullable=True),
        sa.Column("enrol_token_expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("enrol_token_used", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "last_status",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("online_changed_ms", sa.BigInteger(), nullable=True),
        sa.Column("applied_version", sa.BigInteger(), nullable=False),
        sa.Column("applied_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["schools.id"],
        ),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("enrol_token_hash"),
        sa.UniqueConstraint("mqtt_username"),
        sa.UniqueConstraint("school_id", "device_id", name="uq_devices_school_device"),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_school_id"), ["school_id"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "device_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("terminal", sa.String(length=64), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=True),
        sa.Column("staff_id", sa.String(length=64), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.pk"],
        ),
        sa.PrimaryKeyConstraint("device_pk", "seq"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_school_at", ["school_id", "at_ms"], unique=False)

    op.create_table(
        "ingest_progress",
        sa.Column(
            "device_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("committed_through", sa.BigInteger(), nullable=False),
        sa.Column(
            "gaps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_pk"],
            ["devices.pk"],
        ),
        sa.PrimaryKeyConstraint("device_pk"),
    )


def downgrade() -> None:

    op.drop_table("ingest_progress")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_school_at")

    op.drop_table("events")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_school_id"))

    op.drop_table("devices")
    op.drop_table("change_log")
    with op.batch_alter_table("server_alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_server_alarms_at_ms"))

    op.drop_table("server_alarms")
    op.drop_table("schools")
    op.drop_table("ingest_rejections")
