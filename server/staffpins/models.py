"""Edges' box keys, each member's PIN version, and sealed PINs awaiting their edge's receipt."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class EdgeBoxKey(Base):
    """An edge's X25519 public key, announced signed with its device key (``EdgeBoxKey``)."""

    __tablename__ = "edge_box_keys"

    device_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.pk", ondelete="CASCADE"), primary_key=True
    )
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    announced_at_ms: Mapped[int] = mapped_column(BigInteger)


class StaffPinVersion(Base):
    """How many times a member's PIN was set (the edge keeps only a newer version): who set it
    last and when. Never the PIN, never a hash."""

    __tablename__ = "staff_pin_versions"

    staff_pk: Mapped[int] = mapped_column(
        ForeignKey("staff_members.pk", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer)
    set_at_ms: Mapped[int] = mapped_column(BigInteger)
    set_by_user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)


class SealedPinDelivery(Base):
    """A member's newest PIN sealed to one edge; the ciphertext goes once the edge's receipt
    arrives (the row stays as the delivery's record)."""

    __tablename__ = "staff_pin_deliveries"
    __table_args__ = (UniqueConstraint("device_pk", "staff_pk", name="uq_staff_pin_delivery"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk", ondelete="CASCADE"))
    staff_pk: Mapped[int] = mapped_column(ForeignKey("staff_members.pk", ondelete="CASCADE"))
    staff_ref: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    enc: Mapped[str | None] = mapped_column(String(44), default=None)
    ct: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    sent_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    acked_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    opened: Mapped[bool | None] = mapped_column(Boolean, default=None)
