"""Badge module tables: the "Elbasy Medal" youth award, from application to a verifiable medal.

Participants (14-29) are mostly on no school roster, so they are people of their own here, not
students. Staff (mentors, experts, coordinators, centre heads) are console users with a row in
``badge_staff`` saying where they work. Entries carry the participant's idempotency key, unique
per participant, so an offline entry uploaded twice is stored once; an award is unique per
(participant, level), so no one is awarded the same level twice, whatever the form does.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class Level(enum.StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class Direction(enum.StrEnum):
    SPORT = "sport"
    TALENTS = "talents"
    VOLUNTEERING = "volunteering"
    READING = "reading"
    HERITAGE = "heritage"
    TRIP = "trip"
    WORK = "work"


class Section(enum.StrEnum):
    KAZAKH = "kazakh"
    WORLD = "world"
    GROWTH = "growth"


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    EXTRA_TASK = "extra_task"  # pending again: the mentor asked for more


class StaffKind(enum.StrEnum):
    MENTOR = "mentor"
    EXPERT = "expert"
    COORDINATOR = "coordinator"
    CENTRE_HEAD = "centre_head"


class CentreStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"  # waiting for the centre's agreement (10 working days)
    REGISTERED = "registered"
    LAPSED = "lapsed"  # did not sign in time: lost its registration


class ParticipantStatus(enum.StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"  # agreements and schedule next
    ACTIVE = "active"  # activated by the mentor after the schedule was agreed
    REJECTED = "rejected"


class Centre(Base):
    __tablename__ = "badge_centres"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    place: Mapped[str] = mapped_column(String(200), default="")  # town / district it serves
    status: Mapped[str] = mapped_column(String(16), default=CentreStatus.APPLIED.value)
    approved_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    sign_due_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    agreement_signed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Partner(Base):
    """An organisation the centre registers for volunteering, trips or work experience."""

    __tablename__ = "badge_partners"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    centre_pk: Mapped[int] = mapped_column(ForeignKey("badge_centres.pk"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # volunteering | trip | work
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Staff(Base):
    """A mentor, expert, coordinator or centre head: a console user and where they work."""

    __tablename__ = "badge_staff"
    __table_args__ = (UniqueConstraint("user_pk", "kind", name="uq_badge_staff_user_kind"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    centre_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_centres.pk"), default=None)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    place: Mapped[str] = mapped_column(String(200), default="")
    # a mentor's overseeing expert
    expert_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_staff.pk"), default=None)
    absent: Mapped[bool] = mapped_column(Boolean, default=False)


class Participant(Base):
    """A participant's personal card (the least the programme needs) and current level."""

    __tablename__ = "badge_participants"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), unique=True, default=None)
    representative_user_pk: Mapped[int | None] = mapped_column(
        ForeignKey("users.pk"), index=True, default=None
    )
    representative_name: Mapped[str] = mapped_column(String(200), default="")
    full_name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    residence: Mapped[str] = mapped_column(String(200), default="")
    study_place: Mapped[str] = mapped_column(String(200), default="")
    about: Mapped[str] = mapped_column(String(2000), default="")
    hobbies: Mapped[str] = mapped_column(String(500), default="")
    photo: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    level: Mapped[str] = mapped_column(String(8))
    directions: Mapped[str] = mapped_column(String(200))  # comma-separated Direction values
    plan_long: Mapped[str | None] = mapped_column(String(16), default=None)
    heritage_mode: Mapped[str] = mapped_column(String(8), default="weeks")
    heritage_months: Mapped[int | None] = mapped_column(Integer, default=3)
    centre_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_centres.pk"), default=None)
    mentor_pk: Mapped[int | None] = mapped_column(
        ForeignKey("badge_staff.pk"), index=True, default=None
    )
    status: Mapped[str] = mapped_column(String(16), default=ParticipantStatus.APPLIED.value)
    start: Mapped[dt.date | None] = mapped_column(Date, default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class Application(Base):
    """An application to a level: decided within 14 working days of submission."""

    __tablename__ = "badge_applications"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"), index=True)
    level: Mapped[str] = mapped_column(String(8))
    directions: Mapped[str] = mapped_column(String(200))
    proposed_centre_pk: Mapped[int | None] = mapped_column(
        ForeignKey("badge_centres.pk"), default=None
    )
    proposed_mentor_pk: Mapped[int | None] = mapped_column(
        ForeignKey("badge_staff.pk"), default=None
    )
    submitted_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    reason: Mapped[str] = mapped_column(String(500), default="")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    decided_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Agreement(Base):
    """An electronic voluntary-participation agreement signature, recorded like a consent:
    who signed (participant, legal representative, or a centre), when, which text version."""

    __tablename__ = "badge_agreements"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int | None] = mapped_column(
        ForeignKey("badge_participants.pk"), index=True, default=None
    )
    centre_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_centres.pk"), default=None)
    signer_role: Mapped[str] = mapped_column(String(16))  # participant|representative|centre
    signer_user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    signer_name: Mapped[str] = mapped_column(String(200))
    text_version: Mapped[str] = mapped_column(String(32))
    signed_at_ms: Mapped[int] = mapped_column(BigInteger)


class Schedule(Base):
    """The individual schedule of one direction, agreed by the mentor and the participant."""

    __tablename__ = "badge_schedules"
    __table_args__ = (
        UniqueConstraint("participant_pk", "direction", name="uq_badge_schedules_direction"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"))
    direction: Mapped[str] = mapped_column(String(16))
    plan: Mapped[str] = mapped_column(String(1000))
    hours_per_week: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(1))
    mentor_agreed_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    participant_agreed_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Entry(Base):
    """One journal entry. ``written_at_ms`` is when the participant wrote it (perhaps offline);
    ``received_at_ms`` when the server got it. ``idem_key`` is the client's key of the entry."""

    __tablename__ = "badge_entries"
    __table_args__ = (
        UniqueConstraint("participant_pk", "idem_key", name="uq_badge_entries_idem"),
        Index("ix_badge_entries_participant_date", "participant_pk", "entry_date"),
        CheckConstraint("hours IS NULL OR hours >= 0", name="ck_badge_entries_hours"),
        CheckConstraint("days IS NULL OR days >= 0", name="ck_badge_entries_days"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"))
    idem_key: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    entry_date: Mapped[dt.date] = mapped_column(Date)
    written_at_ms: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    hours: Mapped[Decimal | None] = mapped_column(Numeric(6, 2), default=None)
    days: Mapped[int | None] = mapped_column(Integer, default=None)
    book_title: Mapped[str | None] = mapped_column(String(300), default=None)
    book_section: Mapped[str | None] = mapped_column(String(8), default=None)
    book_listed: Mapped[bool] = mapped_column(Boolean, default=True)
    partner_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_partners.pk"), default=None)
    text: Mapped[str] = mapped_column(Text, default="")  # report or essay
    employer_confirmation: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default=EntryStatus.PENDING.value)
    reason: Mapped[str] = mapped_column(String(500), default="")
    extra_task: Mapped[str] = mapped_column(String(500), default="")
    integrity_note: Mapped[str] = mapped_column(String(300), default="")
    # the essay's MinHash signature (integrity.essay_signature), to compare later essays with
    essay_signature: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    decided_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Media(Base):
    """A photo or short video of an entry (bounded in size), with its perceptual hash."""

    __tablename__ = "badge_media"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("badge_entries.pk"), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    phash: Mapped[str | None] = mapped_column(String(32), default=None)


class Decision(Base):
    """Every decision on an entry: the mentor's, and an expert's overturn (the audit trail)."""

    __tablename__ = "badge_decisions"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_pk: Mapped[int] = mapped_column(ForeignKey("badge_entries.pk"), index=True)
    actor_user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    actor_kind: Mapped[str] = mapped_column(String(16))
    old_status: Mapped[str] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(500), default="")
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Reassignment(Base):
    """A participant handed to another supervisor (mentor absent: expert or coordinator)."""

    __tablename__ = "badge_reassignments"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"), index=True)
    from_staff_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_staff.pk"), default=None)
    to_staff_pk: Mapped[int] = mapped_column(ForeignKey("badge_staff.pk"))
    by_user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    reason: Mapped[str] = mapped_column(String(300))
    at_ms: Mapped[int] = mapped_column(BigInteger)


class Book(Base):
    """A book on a list the operator approved, per section."""

    __tablename__ = "badge_books"
    __table_args__ = (UniqueConstraint("section", "title_key", name="uq_badge_books_title"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    section: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300))
    title_key: Mapped[str] = mapped_column(String(300))  # NFC, trimmed, case-folded
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    approved_at_ms: Mapped[int] = mapped_column(BigInteger)


class Requirement(Base):
    """Individual requirements of a participant with a disability, recorded by the operator
    with its basis; the evaluator uses them instead of the level's numbers."""

    __tablename__ = "badge_requirements"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"), unique=True)
    requirements: Mapped[str] = mapped_column(String(2000))  # JSON: direction -> number
    basis: Mapped[str] = mapped_column(String(300))
    recorded_by: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    recorded_at_ms: Mapped[int] = mapped_column(BigInteger)


class MentorRating(Base):
    """An anonymous rating: no participant is stored with the score."""

    __tablename__ = "badge_mentor_ratings"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="ck_badge_rating_score"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    mentor_pk: Mapped[int] = mapped_column(ForeignKey("badge_staff.pk"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    day: Mapped[dt.date] = mapped_column(Date)


class RatingGiven(Base):
    """That a participant has rated a mentor (one rating each), kept apart from the score."""

    __tablename__ = "badge_ratings_given"
    __table_args__ = (
        UniqueConstraint("participant_pk", "mentor_pk", name="uq_badge_ratings_given"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"))
    mentor_pk: Mapped[int] = mapped_column(ForeignKey("badge_staff.pk"))


class Proposal(Base):
    """The centre head's proposal of a candidate whose level is complete, and the commission's
    interview slot and decision."""

    __tablename__ = "badge_proposals"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"), index=True)
    level: Mapped[str] = mapped_column(String(8))
    proposed_by: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    proposed_at_ms: Mapped[int] = mapped_column(BigInteger)
    interview_at: Mapped[str] = mapped_column(String(32), default="")  # "YYYY-MM-DD HH:MM"
    interview_link: Mapped[str] = mapped_column(String(300), default="")
    decision: Mapped[str | None] = mapped_column(String(8), default=None)  # award | decline
    decided_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class CommissionMember(Base):
    __tablename__ = "badge_commission_members"
    __table_args__ = (
        UniqueConstraint("proposal_pk", "user_pk", name="uq_badge_commission_member"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    proposal_pk: Mapped[int] = mapped_column(ForeignKey("badge_proposals.pk"))
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"))
    vote: Mapped[str | None] = mapped_column(String(8), default=None)  # for | against
    voted_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Award(Base):
    __tablename__ = "badge_awards"
    __table_args__ = (UniqueConstraint("participant_pk", "level", name="uq_badge_awards_level"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    participant_pk: Mapped[int] = mapped_column(ForeignKey("badge_participants.pk"))
    level: Mapped[str] = mapped_column(String(8))
    proposal_pk: Mapped[int | None] = mapped_column(ForeignKey("badge_proposals.pk"), default=None)
    awarded_on: Mapped[dt.date] = mapped_column(Date)


class IssuedCredential(Base):
    """An Open Badges 3.0 credential issued for an award, with its place in the status list."""

    __tablename__ = "badge_credentials"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)  # urn:uuid:...
    award_pk: Mapped[int] = mapped_column(ForeignKey("badge_awards.pk"), unique=True)
    status_index: Mapped[int] = mapped_column(Integer, unique=True)
    document: Mapped[str] = mapped_column(Text)  # the signed credential (compact JWS or JSON)
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    revoked_reason: Mapped[str] = mapped_column(String(300), default="")
