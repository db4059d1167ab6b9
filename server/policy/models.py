"""Meal and pass policies as data: versions per region or school, each from an effective date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class MealPolicy(Base):
    """One version of a region's or a school's policy (exactly one of region_id / school_id).

    ``doc`` is a protocol PolicyDoc as JSON (by alias), validated before it is stored.
    """

    __tablename__ = "meal_policies"
    __table_args__ = (
        CheckConstraint(
            "(region_id IS NULL) <> (school_id IS NULL)", name="ck_meal_policies_one_scope"
        ),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_id: Mapped[str | None] = mapped_column(
        ForeignKey("regions.id"), default=None, index=True
    )
    school_id: Mapped[str | None] = mapped_column(
        ForeignKey("schools.id"), default=None, index=True
    )
    valid_from: Mapped[dt.date] = mapped_column(Date)
    doc: Mapped[dict[str, Any]] = mapped_column(Json)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class PolicyPublication(Base):
    """Which policy version a school's edges were last sent (policy_set in the change log)."""

    __tablename__ = "policy_publications"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    policy_pk: Mapped[int] = mapped_column(ForeignKey("meal_policies.pk"))
    published_at_ms: Mapped[int] = mapped_column(BigInteger)
