"""Tables of a school's people. The console is their single administration system; what an edge
needs of them (StudentRecord, StaffRecord, CardBinding) reaches it through the downlink."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class SchoolClass(Base):
    """A class ("3А", "10Б") with its grade and shift; class teachers are granted a class."""

    __tablename__ = "school_classes"
    __table_args__ = (UniqueConstraint("school_id", "name", name="uq_school_classes_name"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    name: Mapped[str] = mapped_column(String(16))
    grade: Mapped[int] = mapped_column(Integer)
    shift: Mapped[int] = mapped_column(Integer, default=1)


class Student(Base):
    """A student. ``ref`` is the id on the wire and at the edge (never a name or an IIN)."""

    __tablename__ = "students"
    __table_args__ = (Index("ix_students_school_class", "school_id", "class_pk"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    class_pk: Mapped[int] = mapped_column(ForeignKey("school_classes.pk"))
    surname: Mapped[str] = mapped_column(String(100))
    given_name: Mapped[str] = mapped_column(String(100))
    patronymic: Mapped[str] = mapped_column(String(100), default="")
    birth_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.surname, self.given_name, self.patronymic) if p)


class Guardian(Base):
    """A parent or legal representative; ``user_pk`` is their console account, if any."""

    __tablename__ = "guardians"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    full_name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None, index=True)


class StudentGuardian(Base):
    __tablename__ = "student_guardians"

    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), primary_key=True)
    guardian_pk: Mapped[int] = mapped_column(ForeignKey("guardians.pk"), primary_key=True)
    relation: Mapped[str] = mapped_column(String(32), default="parent")


class StaffMember(Base):
    """A school's staff member as the edge knows them (manual passes, PINs, staff cards)."""

    __tablename__ = "staff_members"
    __table_args__ = (UniqueConstraint("school_id", "ref", name="uq_staff_members_ref"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    ref: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200))
    position: Mapped[str] = mapped_column(String(100), default="")
    # Roles at the edge (e.g. class_teacher may authorise a manual pass).
    edge_roles: Mapped[str] = mapped_column(String(200), default="")
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Consent(Base):
    """One consent decision (given or withdrawn) as written on a document; history is kept.

    The current state of a (student, kind) is its newest row (highest ``pk``).
    """

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_student_kind", "student_pk", "kind"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"))
    kind: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    given_by: Mapped[str] = mapped_column(String(200))
    document: Mapped[str] = mapped_column(String(200))
    # The date the parent signed (or withdrew), as on the document.
    signed_on: Mapped[dt.date] = mapped_column(Date)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)
