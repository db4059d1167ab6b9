"""Social categories of students (free meals); consents themselves live in server.people."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class CategoryCode(enum.StrEnum):
    """The usual categories of socially vulnerable students (orders No. 598 / No. 390)."""

    TARGETED_ASSISTANCE = "targeted_assistance"
    BELOW_SUBSISTENCE = "below_subsistence"
    ORPHAN = "orphan"  # orphans and children without parental care
    LARGE_FAMILY = "large_family"
    EMERGENCY = "emergency"
    BOARD_DECISION = "board_decision"  # approved by the school's board of trustees


class StudentCategory(Base):
    """One membership with its document and inclusive validity dates."""

    __tablename__ = "student_categories"
    __table_args__ = (Index("ix_student_categories_school_to", "school_id", "valid_to"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    code: Mapped[str] = mapped_column(String(32))
    document: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)
