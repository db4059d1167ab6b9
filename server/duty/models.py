"""Duty tables: who is the responsible deputy director on which shift of which day, and the
alarm messages sent to the person on duty (or the school admin when nobody is named)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class DutyShift(Base):
    """One shift of one day with its responsible person (a console user of the school)."""

    __tablename__ = "duty_shifts"
    __table_args__ = (UniqueConstraint("school_id", "day", "shift", name="uq_duty_shifts_slot"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    shift: Mapped[int] = mapped_column(Integer)
    # Local clock times "HH:MM" of the school: the person answers for alarms in this window.
    starts: Mapped[str] = mapped_column(String(5))
    ends: Mapped[str] = mapped_column(String(5))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class DutyCursor(Base):
    """Per device: every alarm event with seq <= ``through`` has been routed."""

    __tablename__ = "duty_cursors"

    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"), primary_key=True)
    through: Mapped[int] = mapped_column(BigInteger, default=0)


class DutyAlert(Base):
    """One alarm message to one staff member on one channel; ``source`` makes it unique
    (``ev:<device_pk>:<seq>`` for an edge's alarm, ``offline:<device_pk>:<since_ms>``)."""

    __tablename__ = "duty_alerts"
    __table_args__ = (
        UniqueConstraint("source", "user_pk", "channel", name="uq_duty_alerts_source"),
        Index("ix_duty_alerts_school", "school_id", "created_at_ms"),
        Index("ix_duty_alerts_due", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    school_id: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    # on_duty | school_admin | nobody (no one to tell: shown on the console only)
    routed_to: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(String(500))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default="queued")  # queued|sent|failed|none
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_error: Mapped[str] = mapped_column(String(300), default="")
