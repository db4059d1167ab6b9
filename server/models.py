"""Server tables (SQLAlchemy 2 typed models). Schema changes only through Alembic migrations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.clock import DEFAULT_ZONE

# BIGINT on PostgreSQL; INTEGER on SQLite so that an integer primary key is the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class Region(Base):
    """A region (oblys) or a city of republican significance: regional operators are scoped to it."""

    __tablename__ = "regions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class School(Base):
    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Head of the school's downlink change log (0: nothing published yet).
    sync_version: Mapped[int] = mapped_column(BigInteger, default=0)
    region_id: Mapped[str | None] = mapped_column(
        ForeignKey("regions.id"), default=None, index=True
    )
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ZONE)
    # A replacement card's price (the first card is free); 50-200 tenge in the seed.
    card_price_tiyn: Mapped[int] = mapped_column(BigInteger, default=10_000)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("school_id", "device_id", name="uq_devices_school_device"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    mqtt_username: Mapped[str | None] = mapped_column(String(140), unique=True, default=None)
    # Mosquitto-compatible hash ($7$ PBKDF2-SHA512), never the password.
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    enrol_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    enrol_token_expires_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    enrol_token_used: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_status: Mapped[dict[str, Any] | None] = mapped_column(Json, default=None)
    last_seen_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the device last went online (online=True) or offline (online=False).
    online_changed_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    applied_version: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # When the device pinned the centre's key (enrolled by an edge that verifies the downlink);
    # None: an edge enrolled before signed downlink, to be enrolled again (README).
    centre_key_pinned_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # When an operator revoked it (stolen, retired): no key, no MQTT login, no downlink.
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The downlink features the edge announced at its last connection (EdgeFeatures; None: an
    # edge of a release before them, sent what that release reads). Cleared at enrolment.
    downlink_features: Mapped[list[str] | None] = mapped_column(Json, default=None)


class IngestProgress(Base):
    """Per device: every seq <= committed_through is stored; ``gaps`` are missing ranges above."""

    __tablename__ = "ingest_progress"

    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"), primary_key=True)
    committed_through: Mapped[int] = mapped_column(BigInteger, default=0)
    gaps: Mapped[list[list[int]]] = mapped_column(Json, default=list)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class StoredEvent(Base):
    """One uplink event, stored exactly once on (device, seq).

    On PostgreSQL the table is partitioned by month of ``at_ms`` (``server.partitions``), so the
    primary key carries ``at_ms`` too; ingest keeps (device, seq) unique across partitions (it
    stores a seq only when no copy of it is stored, under the device's progress lock). SQLite
    keeps the (device_pk, seq) key of the unpartitioned table.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_school_at", "school_id", "at_ms"),
        # reports by kind (meals, library, alarms) and a child's own events (the parent page)
        Index("ix_events_school_kind_at", "school_id", "kind", "at_ms"),
        Index("ix_events_student_at", "student_id", "at_ms"),
    )

    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the partition key
    kind: Mapped[str] = mapped_column(String(32))
    terminal: Mapped[str] = mapped_column(String(64))
    student_id: Mapped[str | None] = mapped_column(String(64), default=None)
    staff_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The whole event as sent (typed fields above are copies for queries).
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)


class ParkedEvent(Base):
    """A stored event this release could not read when it came (a kind, or a field of a known
    kind, of a newer edge release: README, Wire protocol): kept so that ``qaqpa server parked
    replay`` on a release that knows it applies it, once (``replayed_at_ms``)."""

    __tablename__ = "parked_events"
    __table_args__ = (Index("ix_parked_events_school", "school_id", "replayed_at_ms"),)

    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)  # the event's (its partition in ``events``)
    school_id: Mapped[str] = mapped_column(String(64))
    parked_at_ms: Mapped[int] = mapped_column(BigInteger)
    replayed_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class IngestRejection(Base):
    """Counters of refused uplink messages, by the (unverified) topic they came on and the reason."""

    __tablename__ = "ingest_rejections"

    school: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    first_at_ms: Mapped[int] = mapped_column(BigInteger)
    last_at_ms: Mapped[int] = mapped_column(BigInteger)


class ServerAlarm(Base):
    __tablename__ = "server_alarms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    school: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")


class ChangeLogEntry(Base):
    """Downlink change log: version N of a school is the list of changes from N-1 to N."""

    __tablename__ = "change_log"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(Json)


class ChangeLogCheckpoint(Base):
    """A school's downlink state at ``version`` as its compacted list of changes
    (``server.sync.state.compacted``): the state is this folded with the log after it, so a
    snapshot reads the roster, not every change since the beginning. Rewritten every
    ``server.sync.changelog.CHECKPOINT_EVERY`` versions; scrubbed like the log."""

    __tablename__ = "change_log_checkpoints"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(Json)
