"""Canteen tables: the double-entry ledger (entries and their postings), the day's menus, the
parents' limits and the low-balance conditions. Balances are never stored: they are sums of
postings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class LedgerEntry(Base):
    """One booking: its postings sum to zero. ``external_ref`` names where it came from and
    makes it idempotent (``provider:<txid>``, ``meal:<device_pk>:<seq>``, ``qr:<nonce>``,
    ``wallet:<month>:<student>``, ``manual:<uuid>``); a meal from the school is also unique on
    its event's (device_pk, seq)."""

    __tablename__ = "canteen_entries"
    __table_args__ = (
        UniqueConstraint("device_pk", "seq", name="uq_canteen_entries_event"),
        CheckConstraint("amount_tiyn > 0", name="ck_canteen_entries_positive"),
        Index("ix_canteen_entries_school_at", "school_id", "at_ms"),
        Index("ix_canteen_entries_student", "student_pk", "at_ms"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    student_pk: Mapped[int | None] = mapped_column(ForeignKey("students.pk"), default=None)
    # The student's wire id as the source named it (kept for a sale the server could not match).
    student_ref: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)  # > 0; the postings carry the signs
    at_ms: Mapped[int] = mapped_column(BigInteger)
    local_date: Mapped[dt.date | None] = mapped_column(Date, default=None)
    external_ref: Mapped[str] = mapped_column(String(200), unique=True)
    device_pk: Mapped[int | None] = mapped_column(BigInteger, default=None)
    seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    reason: Mapped[str] = mapped_column(String(300), default="")
    # The change-log version that carried this credit to the school (BalanceCredit), if any.
    sync_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # When the social wallet confirmed this voucher meal's redemption.
    wallet_confirmed_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Posting(Base):
    __tablename__ = "canteen_postings"
    __table_args__ = (Index("ix_canteen_postings_account", "account", "student_pk"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("canteen_entries.id"), index=True)
    school_id: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(24))
    student_pk: Mapped[int | None] = mapped_column(ForeignKey("students.pk"), default=None)
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)  # + credit, − debit


class Menu(Base):
    """The day's menu of a school as last published (MenuSet)."""

    __tablename__ = "canteen_menus"

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    local_date: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    sync_version: Mapped[int] = mapped_column(BigInteger)


class ParentLimits(Base):
    """A child's canteen limits as last published (ParentLimitsSet)."""

    __tablename__ = "canteen_limits"

    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), primary_key=True)
    allergen_blocks: Mapped[list[str]] = mapped_column(Json, default=list)
    daily_cap_tiyn: Mapped[int | None] = mapped_column(BigInteger, default=None)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    sync_version: Mapped[int] = mapped_column(BigInteger)


class LowBalance(Base):
    """A booking that took a student's balance below the threshold: one row per booking,
    whatever reruns. ``notified_ms``: handed to the notification outbox."""

    __tablename__ = "canteen_low_balance"

    entry_id: Mapped[int] = mapped_column(ForeignKey("canteen_entries.id"), primary_key=True)
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    school_id: Mapped[str] = mapped_column(String(64))
    balance_tiyn: Mapped[int] = mapped_column(BigInteger)
    threshold_tiyn: Mapped[int] = mapped_column(BigInteger)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    notified_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
