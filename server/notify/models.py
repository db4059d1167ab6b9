"""Notification tables: a parent's preferences per child, the planner's cursor per device, and
the outbox of messages with their delivery status."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class NotifyPreference(Base):
    """What one guardian wants to hear about one child, by kind and channel, and when not.

    No row: the defaults (``rules.default_preferences``). ``subscriptions`` is a list of
    ``[kind, channel]`` pairs read into ``rules.Preferences``; quiet hours are minutes of the
    school's local day (both None: none).
    """

    __tablename__ = "notify_preferences"

    guardian_pk: Mapped[int] = mapped_column(ForeignKey("guardians.pk"), primary_key=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), primary_key=True)
    subscriptions: Mapped[list[list[str]]] = mapped_column(Json, default=list)
    quiet_start_min: Mapped[int | None] = mapped_column(Integer, default=None)
    quiet_end_min: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class NotifyCursor(Base):
    """Per device: every event with seq <= ``planned_through`` has been planned. Advanced in the
    same transaction as the outbox rows it planned."""

    __tablename__ = "notify_cursors"

    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"), primary_key=True)
    planned_through: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger, default=0)


class OutboxMessage(Base):
    """One message to one guardian on one channel about one event: never two for the same
    (event, guardian, channel), whatever crashes and reruns."""

    __tablename__ = "notify_outbox"
    __table_args__ = (
        UniqueConstraint(
            "device_pk", "seq", "guardian_pk", "channel", name="uq_notify_outbox_event_guardian"
        ),
        Index("ix_notify_outbox_due", "status", "due_at_ms"),
        Index("ix_notify_outbox_school", "school_id", "created_at_ms"),
        Index("ix_notify_outbox_student", "student_pk", "created_at_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_pk: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    guardian_pk: Mapped[int] = mapped_column(ForeignKey("guardians.pk"))
    channel: Mapped[str] = mapped_column(String(8))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"))
    school_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(2))
    # The text as the guardian reads it: first name, time, school; nothing else.
    body: Mapped[str] = mapped_column(String(500))
    event_at_ms: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    # Not before this (quiet hours, retry backoff).
    due_at_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The last failure, or why the message was cancelled (no address, no personal values).
    last_error: Mapped[str] = mapped_column(String(300), default="")
