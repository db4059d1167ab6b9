"""The concerns log: parents' concerns raised with the school and the answers given (seed 002:
the board "takes the concerns parents raised into account")."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class ParentConcern(Base):
    """One concern, without the parent's name: a topic, the text and the answer."""

    __tablename__ = "parent_concerns"
    __table_args__ = (Index("ix_parent_concerns_school", "school_id", "raised_on"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    raised_on: Mapped[dt.date] = mapped_column(Date)
    topic: Mapped[str] = mapped_column(String(16))  # biometrics | data | cards | meals | other
    text: Mapped[str] = mapped_column(String(1000))
    answer: Mapped[str] = mapped_column(String(1000), default="")
    answered_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
