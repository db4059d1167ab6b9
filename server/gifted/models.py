"""The gifted-children registry (decree No. 997): nominations, the registry built from the
individual roadmaps (abilities, goals, planned activities, support), a school's rural / urban
status, and the reminders sent of what is due.

A child is in the registry (``GiftedEntry``) only with the parent's consent of kind ``gifted``;
withdrawing it deletes the entry, its roadmap and the child's nominations.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class Locality(enum.StrEnum):
    RURAL = "rural"
    URBAN = "urban"


class NominationBasis(enum.StrEnum):
    TEACHER = "teacher"  # a teacher's nomination
    OLYMPIAD = "olympiad"  # an olympiad place
    CONTEST = "contest"  # a contest (competition, science project) result
    TEST = "test"  # a test (diagnostic) score


class Level(enum.StrEnum):
    SCHOOL = "school"
    DISTRICT = "district"
    REGION = "region"
    NATIONAL = "national"
    INTERNATIONAL = "international"


class ActivityKind(enum.StrEnum):
    OLYMPIAD = "olympiad"
    TECHNOPARK = "technopark"
    SUMMER_SCHOOL = "summer_school"
    CAMP = "camp"
    CONTEST = "contest"
    TUTORING = "tutoring"  # a tutoring course: its results come from the tutoring module


class ActivityStatus(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    MISSED = "missed"
    CANCELLED = "cancelled"


class SupportKind(enum.StrEnum):
    STIPEND = "stipend"
    GRANT = "grant"
    TRIP = "trip"


class GiftedSchool(Base):
    """A school's locality for the decree's target groups (rural or urban); no row: unknown."""

    __tablename__ = "gifted_schools"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    locality: Mapped[str] = mapped_column(String(8))
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class Nomination(Base):
    """A child proposed for the registry: by a teacher, or by a result (place, score)."""

    __tablename__ = "gifted_nominations"
    __table_args__ = (Index("ix_gifted_nominations_school", "school_id", "nominated_on"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    basis: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(String(200), default="")  # the olympiad, contest, test
    level: Mapped[str | None] = mapped_column(String(16), default=None)
    place: Mapped[int | None] = mapped_column(Integer, default=None)  # 1..3: a prize
    score: Mapped[int | None] = mapped_column(Integer, default=None)  # a test, 0..100
    # The teacher who prepared the child (awards for teachers of prize-winners).
    teacher_pk: Mapped[int | None] = mapped_column(ForeignKey("staff_members.pk"), default=None)
    nominated_on: Mapped[dt.date] = mapped_column(Date)
    nominated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)


class GiftedEntry(Base):
    """A child in the registry with the head of their individual roadmap."""

    __tablename__ = "gifted_entries"
    __table_args__ = (Index("ix_gifted_entries_school", "school_id"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), unique=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    entered_on: Mapped[dt.date] = mapped_column(Date)
    abilities: Mapped[str] = mapped_column(String(500), default="")
    goals: Mapped[str] = mapped_column(String(500), default="")
    coordinator_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class Activity(Base):
    """A planned activity of a roadmap (olympiad, technopark, summer school, camp, tutoring
    course) with its dates, and its fact: status, the day done, the result and a prize place."""

    __tablename__ = "gifted_activities"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("gifted_entries.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(100), default="")
    level: Mapped[str | None] = mapped_column(String(16), default=None)
    planned_from: Mapped[dt.date] = mapped_column(Date)
    planned_to: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default=ActivityStatus.PLANNED.value)
    done_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    result: Mapped[str] = mapped_column(String(200), default="")
    place: Mapped[int | None] = mapped_column(Integer, default=None)
    teacher_pk: Mapped[int | None] = mapped_column(ForeignKey("staff_members.pk"), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Support(Base):
    """Support of a roadmap (stipend, grant, trip): planned amount and day, and what was paid."""

    __tablename__ = "gifted_support"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("gifted_entries.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    planned_on: Mapped[dt.date] = mapped_column(Date)
    planned_tiyn: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    paid_tiyn: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Reminder(Base):
    """One reminder of one due item to one recipient for one due day: never two, whatever reruns.
    ``recipient`` is ``coordinator`` or ``guardian:<pk>``; a guardian's goes through the
    notification outbox (``outbox_id``)."""

    __tablename__ = "gifted_reminders"
    __table_args__ = (
        UniqueConstraint(
            "item", "item_pk", "due_on", "recipient", name="uq_gifted_reminders_item_recipient"
        ),
        Index("ix_gifted_reminders_school", "school_id", "due_on"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item: Mapped[str] = mapped_column(String(12))  # activity | support
    item_pk: Mapped[int] = mapped_column(BigInteger)
    due_on: Mapped[dt.date] = mapped_column(Date)
    recipient: Mapped[str] = mapped_column(String(32))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    school_id: Mapped[str] = mapped_column(String(64))
    outbox_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
