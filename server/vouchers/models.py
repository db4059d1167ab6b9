"""Social-wallet vouchers at the centre: the issuers (their PUBLIC keys only), the vouchers
issued to children (spent by card at the school, or shown as a single-use QR code), and every
use of one the schools reported (for the settlement and to catch a QR redeemed twice)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId, Json


class VoucherIssuer(Base):
    """Who issues vouchers (the social wallet). The centre keeps the public key; the private key
    stays with the issuer (a key file the issuer's signing command reads), never in a table."""

    __tablename__ = "voucher_issuers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(64))  # raw Ed25519, standard base64
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)


class Voucher(Base):
    """One voucher: ``card`` vouchers travel to the school by the downlink (VoucherGrant);
    ``qr`` vouchers travel only in the parent's QR code (single use)."""

    __tablename__ = "vouchers"
    __table_args__ = (Index("ix_vouchers_school_student", "school_id", "student_pk"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # card | qr
    issuer_id: Mapped[str] = mapped_column(ForeignKey("voucher_issuers.id"))
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    student_pk: Mapped[int] = mapped_column(ForeignKey("students.pk"))
    student_ref: Mapped[str] = mapped_column(String(64))
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date] = mapped_column(Date)
    meal_periods: Mapped[list[str]] = mapped_column(Json, default=list)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    source: Mapped[str] = mapped_column(String(16), default="console")  # console | import | cli
    ledger_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("canteen_entries.id"), default=None
    )
    sync_version: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # a QR voucher's signed text, shown to the child's parent on their page as the QR code
    token: Mapped[str | None] = mapped_column(String(600), default=None)


class VoucherUse(Base):
    """A voucher's part of a meal the school served (from its ``meal_served`` event), once per
    (device, seq, voucher). ``qr``: the voucher was a QR code redeemed with this meal."""

    __tablename__ = "voucher_uses"
    __table_args__ = (
        UniqueConstraint("device_pk", "seq", "voucher_id", name="uq_voucher_uses_event"),
        Index("ix_voucher_uses_voucher", "voucher_id"),
        Index("ix_voucher_uses_school_date", "school_id", "local_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    voucher_id: Mapped[str] = mapped_column(String(64))  # not a key: a forged id is kept, shown
    school_id: Mapped[str] = mapped_column(String(64))
    device_pk: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    student_ref: Mapped[str] = mapped_column(String(64))
    amount_tiyn: Mapped[int] = mapped_column(BigInteger)
    meal_tiyn: Mapped[int] = mapped_column(BigInteger)  # the whole meal's price
    local_date: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[str] = mapped_column(String(64))
    qr: Mapped[bool] = mapped_column(default=False)
    at_ms: Mapped[int] = mapped_column(BigInteger)
