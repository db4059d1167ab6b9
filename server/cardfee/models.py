"""Card fee tables: the school's card price (50-200 tenge, seed 002) and the fees booked."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class CardPrice(Base):
    """A school's price of a replacement card (no row: the product default, 100 tenge)."""

    __tablename__ = "card_prices"
    __table_args__ = (
        CheckConstraint("price_tiyn BETWEEN 5000 AND 20000", name="ck_card_prices_range"),
    )

    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), primary_key=True)
    price_tiyn: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class CardFeePayment(Base):
    """A card fee booked: paid in cash at the school, or taken from the student's balance."""

    __tablename__ = "card_fee_payments"
    __table_args__ = (
        CheckConstraint("amount_tiyn > 0", name="ck_card_fee_payments_positive"),
        CheckConstraint("paid_by IN ('cash', 'balance')", name="ck_card_fee_payments_paid_by"),
        Index("ix_card_fee_payments_school_at", "school_id", "at_ms"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"), index=True)
    # The card record it pays for (sd-cards' records), unique: a card's fee is booked once.
    card_pk: Mapped[int | None] = mapped_column(BigInteger, default=None, unique=True)
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    paid_by: Mapped[str] = mapped_column(String(8))
    # The canteen ledger entry of a fee taken from the balance.
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("canteen_entries.id"), default=None
    )
    at_ms: Mapped[int] = mapped_column(BigInteger)
    booked_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
