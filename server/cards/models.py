"""Card records: what the centre knows of a card of a student or staff member (owner, status,
fee, dates), addressed by ``card_ref``. The number is bound at the school and kept only there
(DESIGN invariant 5); ``credential`` holds it only for cards the console bound before the move
of the school's cards (``CardMove``), and is erased when that move is done."""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from server.models import Base, BigId


class CardStatus(enum.StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"  # still bound at the edge, refused there (lost, damaged)
    UNBOUND = "unbound"  # gone from the edge; the credential may be bound again


class BlockReason(enum.StrEnum):
    LOST = "lost"
    DAMAGED = "damaged"


class Card(Base):
    """A card of a student or (without fee or consent rules) of a staff member."""

    __tablename__ = "cards"
    __table_args__ = (
        CheckConstraint("(student_pk IS NULL) <> (staff_pk IS NULL)", name="ck_cards_one_owner"),
        # One bound (active or blocked) card per credential at a school: the edge's binding key.
        Index(
            "uq_cards_bound_credential",
            "school_id",
            "credential",
            unique=True,
            postgresql_where=text("status <> 'unbound'"),
            sqlite_where=text("status <> 'unbound'"),
        ),
        Index("uq_cards_school_ref", "school_id", "card_ref", unique=True),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # the record's id on the wire: made at the school ("k-...") or, for a card the console bound
    # before the move, "c-<pk>"
    card_ref: Mapped[str] = mapped_column(String(64))
    # the number: only for a card bound by the console before the move; None once it is done
    credential: Mapped[str | None] = mapped_column(String(128), default=None)
    student_pk: Mapped[int | None] = mapped_column(
        ForeignKey("students.pk"), default=None, index=True
    )
    staff_pk: Mapped[int | None] = mapped_column(
        ForeignKey("staff_members.pk"), default=None, index=True
    )
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"))
    status: Mapped[str] = mapped_column(String(16), default=CardStatus.ACTIVE.value)
    block_reason: Mapped[str | None] = mapped_column(String(16), default=None)
    issued_at_ms: Mapped[int] = mapped_column(BigInteger)
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.pk"), default=None)
    # The first card of a student is free; later ones cost the school's card price.
    fee_tiyn: Mapped[int] = mapped_column(BigInteger, default=0)
    replaces_card_pk: Mapped[int | None] = mapped_column(ForeignKey("cards.pk"), default=None)
    blocked_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    unbound_at_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
