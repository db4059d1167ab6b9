from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class AuditEntry(Base):
    """One access to or change of personal data. ``summary`` names fields, never their values."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_student", "student_pk", "at_ms"),
        Index("ix_audit_school", "school_id", "at_ms"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    action: Mapped[str] = mapped_column(String(16))  # view | change | export | import | ...
    subject: Mapped[str] = mapped_column(String(32))  # student | consent | card | roster | ...
    student_pk: Mapped[int | None] = mapped_column(ForeignKey("students.pk"), default=None)
    school_id: Mapped[str | None] = mapped_column(String(64), default=None)
    summary: Mapped[str] = mapped_column(String(500), default="")
