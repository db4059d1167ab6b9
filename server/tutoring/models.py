"""Tutoring tables. A project has directions (with hours and subjects), volunteers (applicants
scored by the expert council, then assigned to directions), participants (a roster student with
the parent's tutoring consent, or, in a finished project's imported records, a pseudonymous
code on no roster), groups with sessions and an attendance journal, and test results.

Scores are kept in hundredths (``score_centi`` 0-10000) so that means are exact."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class ProjectStatus:
    LIVE = "live"  # enrols roster students, with consent
    FINISHED = "finished"  # historical records (pseudonymous codes allowed)


class Project(Base):
    __tablename__ = "tutoring_projects"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    region_id: Mapped[str | None] = mapped_column(ForeignKey("regions.id"), default=None)
    status: Mapped[str] = mapped_column(String(16), default=ProjectStatus.LIVE)
    starts_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    ends_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    # planned indicators: key -> number (meetings, people_reached, survey_answers, ...)
    plan: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # facts kept by hand (meetings held, people reached, grants won, olympiad places)
    facts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Direction(Base):
    __tablename__ = "tutoring_directions"
    __table_args__ = (
        UniqueConstraint("project_pk", "code", name="uq_tutoring_directions_code"),
        CheckConstraint("hours > 0 AND hours <= 1000", name="ck_tutoring_directions_hours"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    hours: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Subject(Base):
    __tablename__ = "tutoring_subjects"
    __table_args__ = (UniqueConstraint("direction_pk", "name", name="uq_tutoring_subjects_name"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    direction_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_directions.pk"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class VolunteerStatus:
    APPLICANT = "applicant"
    SELECTED = "selected"
    REJECTED = "rejected"


class Volunteer(Base):
    """An applicant, then (selected by the council) a volunteer tutor. ``code`` is the
    project's own id for them (an imported file names volunteers by it)."""

    __tablename__ = "tutoring_volunteers"
    __table_args__ = (UniqueConstraint("project_pk", "code", name="uq_tutoring_volunteers_code"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None, index=True)
    district: Mapped[str] = mapped_column(String(100), default="")
    languages: Mapped[str] = mapped_column(String(32), default="kk")  # "kk,ru"
    slots: Mapped[list[str]] = mapped_column(Json, default=list)  # ["mon-16", "wed-18"]
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    status: Mapped[str] = mapped_column(String(16), default=VolunteerStatus.APPLICANT)
    # the volunteer's own training: pre- and post-test, hundredths of a percent
    training_pre_centi: Mapped[int | None] = mapped_column(Integer, default=None)
    training_post_centi: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Assignment(Base):
    __tablename__ = "tutoring_assignments"
    __table_args__ = (
        UniqueConstraint(
            "volunteer_pk", "direction_pk", "subject_pk", name="uq_tutoring_assignments"
        ),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    volunteer_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_volunteers.pk"), index=True)
    direction_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_directions.pk"), index=True)
    subject_pk: Mapped[int | None] = mapped_column(ForeignKey("tutoring_subjects.pk"), default=None)


class Participant(Base):
    """A student taking part: a roster student (``student_pk``, live projects, with the tutoring
    consent) or a pseudonymous code of imported historical records (``student_pk`` empty)."""

    __tablename__ = "tutoring_participants"
    __table_args__ = (
        UniqueConstraint("project_pk", "code", name="uq_tutoring_participants_code"),
        UniqueConstraint("project_pk", "student_pk", name="uq_tutoring_participants_student"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    student_pk: Mapped[int | None] = mapped_column(
        ForeignKey("students.pk"), default=None, index=True
    )
    district: Mapped[str] = mapped_column(String(100), default="")
    language: Mapped[str] = mapped_column(String(8), default="kk")
    # what the student asked for (direction codes) and when they can (time slots), for matching
    directions: Mapped[list[str]] = mapped_column(Json, default=list)
    slots: Mapped[list[str]] = mapped_column(Json, default=list)
    grade: Mapped[int | None] = mapped_column(Integer, default=None)
    low_income: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Group(Base):
    __tablename__ = "tutoring_groups"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    direction_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_directions.pk"), index=True)
    subject_pk: Mapped[int | None] = mapped_column(ForeignKey("tutoring_subjects.pk"), default=None)
    volunteer_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_volunteers.pk"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    slot: Mapped[str] = mapped_column(String(16), default="")


class GroupMember(Base):
    __tablename__ = "tutoring_group_members"

    group_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_groups.pk"), primary_key=True)
    participant_pk: Mapped[int] = mapped_column(
        ForeignKey("tutoring_participants.pk"), primary_key=True, index=True
    )


class Lesson(Base):
    """One online lesson of a group."""

    __tablename__ = "tutoring_sessions"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    group_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_groups.pk"), index=True)
    held_on: Mapped[dt.date] = mapped_column(Date)
    hours: Mapped[int] = mapped_column(Integer, default=2)
    topic: Mapped[str] = mapped_column(String(200), default="")


class Attendance(Base):
    __tablename__ = "tutoring_attendance"

    session_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_sessions.pk"), primary_key=True)
    participant_pk: Mapped[int] = mapped_column(
        ForeignKey("tutoring_participants.pk"), primary_key=True, index=True
    )
    present: Mapped[bool] = mapped_column(Boolean)
    marked_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    marked_at_ms: Mapped[int] = mapped_column(BigInteger)


class TestResult(Base):
    """One test of a participant in a direction: ``phase`` "pre" or "post"."""

    __tablename__ = "tutoring_tests"
    __test__ = False  # not a pytest class
    __table_args__ = (
        UniqueConstraint("participant_pk", "direction_pk", "phase", name="uq_tutoring_tests"),
        CheckConstraint("score_centi >= 0 AND score_centi <= 10000", name="ck_tutoring_tests"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_participants.pk"), index=True)
    direction_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_directions.pk"), index=True)
    phase: Mapped[str] = mapped_column(String(8))
    score_centi: Mapped[int] = mapped_column(Integer)


class Survey(Base):
    """The needs survey: its questions are the project's directions, subjects and times."""

    __tablename__ = "tutoring_surveys"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    times: Mapped[list[str]] = mapped_column(Json, default=list)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SurveyLink(Base):
    """A one-time link (only its SHA-256 is kept) for one student's answer, with where the
    answer counts (district, school, grade)."""

    __tablename__ = "tutoring_survey_links"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survey_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_surveys.pk"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    district: Mapped[str] = mapped_column(String(100))
    school: Mapped[str] = mapped_column(String(200))
    grade: Mapped[int] = mapped_column(Integer)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    used_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class SurveyAnswer(Base):
    """An anonymous answer: no name, only where it counts and what was chosen."""

    __tablename__ = "tutoring_survey_answers"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survey_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_surveys.pk"), index=True)
    district: Mapped[str] = mapped_column(String(100))
    school: Mapped[str] = mapped_column(String(200))
    grade: Mapped[int] = mapped_column(Integer)
    directions: Mapped[list[str]] = mapped_column(Json, default=list)  # direction codes
    subjects: Mapped[list[str]] = mapped_column(Json, default=list)
    times: Mapped[list[str]] = mapped_column(Json, default=list)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Criterion(Base):
    """A published criterion: ``kind`` "application" (the council's selection) or "award"."""

    __tablename__ = "tutoring_criteria"
    __table_args__ = (UniqueConstraint("project_pk", "kind", "code", name="uq_tutoring_criteria"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    weight: Mapped[int] = mapped_column(Integer, default=1)
    max_score: Mapped[int] = mapped_column(Integer, default=10)


class CouncilMember(Base):
    __tablename__ = "tutoring_council_members"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None, index=True)


class CouncilScore(Base):
    """One member's score of one application on one criterion (each member independently)."""

    __tablename__ = "tutoring_council_scores"
    __table_args__ = (
        UniqueConstraint("volunteer_pk", "member_pk", "criterion_pk", name="uq_tutoring_scores"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    volunteer_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_volunteers.pk"), index=True)
    member_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_council_members.pk"))
    criterion_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_criteria.pk"))
    score: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Conflict(Base):
    """A member's declared conflict of interest with an application: their scores of it are
    excluded from its mean."""

    __tablename__ = "tutoring_conflicts"
    __table_args__ = (UniqueConstraint("volunteer_pk", "member_pk", name="uq_tutoring_conflicts"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    volunteer_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_volunteers.pk"), index=True)
    member_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_council_members.pk"))
    reason: Mapped[str] = mapped_column(String(300))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Decision(Base):
    """The council's decision (selection or awards) as kept: its ranking snapshot."""

    __tablename__ = "tutoring_decisions"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "selection" | "award"
    decided_on: Mapped[dt.date] = mapped_column(Date)
    ranking: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Award(Base):
    __tablename__ = "tutoring_awards"
    __table_args__ = (UniqueConstraint("project_pk", "volunteer_pk", name="uq_tutoring_awards"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    project_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_projects.pk"), index=True)
    volunteer_pk: Mapped[int] = mapped_column(ForeignKey("tutoring_volunteers.pk"))
    rank: Mapped[int] = mapped_column(Integer)
    score_milli: Mapped[int] = mapped_column(Integer)
    awarded_on: Mapped[dt.date] = mapped_column(Date)
