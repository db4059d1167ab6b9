"""Retention tables: a region's retention period, when the centre first saw a student inactive
(the clock of the period), and the record of each erasure (no personal value in any of them)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base


class RetentionSetting(Base):
    """A region's retention period after a student leaves (no row: the product default)."""

    __tablename__ = "retention_settings"

    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), primary_key=True)
    days_after_leaving: Mapped[int] = mapped_column(Integer)
    basis: Mapped[str] = mapped_column(String(300), default="")  # the region's order, if any
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class InactiveSince(Base):
    """When a retention run first saw the student inactive (left the school, or data consent
    withdrawn). The period counts from here, so it never starts earlier than the centre knew."""

    __tablename__ = "retention_inactive"

    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), primary_key=True)
    since_ms: Mapped[int] = mapped_column(BigInteger)


class Erasure(Base):
    """A student whose personal data was erased; the row left is school, class and categories."""

    __tablename__ = "retention_erasures"

    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), primary_key=True)
    school_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # consent_withdrawn | retention_period
    erased_at_ms: Mapped[int] = mapped_column(BigInteger)
    # What went, as counts by table (no values).
    counts: Mapped[str] = mapped_column(String(500), default="")
