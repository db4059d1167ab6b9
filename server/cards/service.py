"""Card records at the centre (DESIGN invariant 5): a card is bound at the school's desk and the
school's edge tells the centre "card record k was issued for student X" (``card_issued``), never
the number. Block, replace and unbind work here by record; every change reaches the school's
edges in the same transaction (``card_record*`` ops in the change log, or, for a school whose
numbers the centre still holds from before the move, the numbered ops its edges know)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import (
    CardBlock,
    CardRecord,
    CardRecordBlock,
    CardRecordSet,
    CardRecordUnbind,
    CardUnbind,
    Change,
    OwnerKind,
)
from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import BlockReason, Card, CardStatus
from server.clock import now_ms
from server.models import School
from server.people.models import StaffMember, Student
from server.sync.cardmove import CardMove
from server.sync.changelog import append_changes
from server.sync.state import ChangeRejected

N_ = str

# What the centre answers to a card number (a roster import, an old form): bind it at the school.
AT_THE_SCHOOL = N_(
    "Card numbers are bound at the school, not here: at the school's edge, tap the card at the desk (staff page, Cards) or import the file there with: qaqpa edge cards import FILE.csv"
)


class CardError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def card_fee(previous_cards: int, price_tiyn: int) -> int:
    """The first card of a student is free; each later one costs the school's price. Pure."""
    return 0 if previous_cards == 0 else max(price_tiyn, 0)


def next_fee(session: Session, student: Student) -> int:
    count = session.execute(
        select(func.count()).select_from(Card).where(Card.student_pk == student.pk)
    ).scalar_one()
    school = session.get_one(School, student.school_id)
    return card_fee(count, school.card_price_tiyn)


def student_cards(session: Session, student_pk: int) -> list[Card]:
    return list(
        session.execute(
            select(Card).where(Card.student_pk == student_pk).order_by(Card.pk.desc())
        ).scalars()
    )


def _publish(session: Session, school: str, changes: list[Change]) -> None:
    try:
        append_changes(session, school, changes)
    except ChangeRejected as err:
        raise CardError("card", N_("The school's terminals refused this card change.")) from err


def staff_cards(session: Session, staff_pk: int) -> list[Card]:
    return list(
        session.execute(
            select(Card).where(Card.staff_pk == staff_pk).order_by(Card.pk.desc())
        ).scalars()
    )


def numbered(session: Session, card: Card) -> bool:
    """Address this card by its number: the centre still holds it and the school's cards have
    not begun their move (its edges may be of the release before card records)."""
    return card.credential is not None and session.get(CardMove, card.school_id) is None


def record_of(card: Card, owner_id: str) -> CardRecord:
    return CardRecord(
        card_ref=card.card_ref,
        owner_kind=OwnerKind.STUDENT if card.student_pk is not None else OwnerKind.STAFF,
        owner_id=owner_id,
        status="blocked" if card.status == CardStatus.BLOCKED.value else "active",
        blocked_reason=card.block_reason if card.status == CardStatus.BLOCKED.value else None,
        fee_tiyn=card.fee_tiyn,
        issued_at_ms=card.issued_at_ms,
    )


def owner_ref(session: Session, card: Card) -> str:
    if card.student_pk is not None:
        return session.get_one(Student, card.student_pk).ref
    assert card.staff_pk is not None
    return session.get_one(StaffMember, card.staff_pk).ref


# ------------------------------------------------------------------ from the school's desk


def _card_by_ref(session: Session, school: str, ref: str) -> Card | None:
    return session.execute(
        select(Card).where(Card.school_id == school, Card.card_ref == ref)
    ).scalar_one_or_none()


def _owner(
    session: Session, school: str, ev: dict[str, Any]
) -> tuple[Student | None, StaffMember | None]:
    if ev.get("student_id"):
        st = session.execute(
            select(Student).where(Student.school_id == school, Student.ref == ev["student_id"])
        ).scalar_one_or_none()
        return st, None
    member = session.execute(
        select(StaffMember).where(
            StaffMember.school_id == school, StaffMember.ref == ev.get("staff_id")
        )
    ).scalar_one_or_none()
    return None, member


def record_desk_events(session: Session, school: str, events: list[dict[str, Any]]) -> int:
    """The card events an edge of ``school`` sent (``card_issued``, ``card_changed``, as stored
    by ingest), in seq order: each makes or changes the record and appends it to the school's
    change log for its other edges. Idempotent (a record is made once per ref). Returns how
    many changed something."""
    changes: list[Change] = []
    done = 0
    for ev in events:
        if ev["kind"] == "cards_blocked":  # the teacher's page: every active card of the child
            changes += _block_lost(session, school, ev)
            done += 1
            continue
        card = _card_by_ref(session, school, ev["card_ref"])
        if ev["kind"] == "card_issued":
            if card is not None:
                continue
            student, member = _owner(session, school, ev)
            if student is None and member is None:
                continue  # removed from the roster meanwhile: its edges dropped the card too
            replaced = (
                _card_by_ref(session, school, ev["replaces_ref"])
                if ev.get("replaces_ref")
                else None
            )
            card = Card(
                card_ref=ev["card_ref"],
                student_pk=student.pk if student is not None else None,
                staff_pk=member.pk if member is not None else None,
                school_id=school,
                status=CardStatus.ACTIVE.value,
                issued_at_ms=int(ev["at_ms"]),
                fee_tiyn=next_fee(session, student) if student is not None else 0,
                replaces_card_pk=replaced.pk if replaced is not None else None,
            )
            session.add(card)
            session.flush()
            owner = student.ref if student is not None else member.ref  # type: ignore[union-attr]
            changes.append(CardRecordSet(record=record_of(card, owner)))
            audit(
                session,
                None,
                "change",
                "card",
                student_pk=card.student_pk,
                school_id=school,
                summary=f"card #{card.pk} ({card.card_ref}) issued at the school's desk; "
                f"fee {card.fee_tiyn} tiyn",
            )
            done += 1
        elif card is not None and card.status != CardStatus.UNBOUND.value:
            if ev.get("change") == "blocked" and card.status == CardStatus.ACTIVE.value:
                card.status = CardStatus.BLOCKED.value
                card.block_reason = ev.get("reason") or BlockReason.LOST.value
                card.blocked_at_ms = int(ev["at_ms"])
                changes.append(CardRecordBlock(card_ref=card.card_ref, reason=card.block_reason))
            elif ev.get("change") == "unbound":
                card.status = CardStatus.UNBOUND.value
                card.unbound_at_ms = int(ev["at_ms"])
                changes.append(CardRecordUnbind(card_ref=card.card_ref))
            else:
                continue
            audit(
                session,
                None,
                "change",
                "card",
                student_pk=card.student_pk,
                school_id=school,
                summary=f"card #{card.pk} ({card.card_ref}) {ev.get('change')} at the school's desk",
            )
            done += 1
    if changes:
        append_changes(session, school, changes)
    return done


def _block_lost(session: Session, school: str, ev: dict[str, Any]) -> list[Change]:
    student, _ = _owner(session, school, ev)
    if student is None:
        return []
    out: list[Change] = []
    for card in session.execute(
        select(Card).where(Card.student_pk == student.pk, Card.status == CardStatus.ACTIVE.value)
    ).scalars():
        card.status = CardStatus.BLOCKED.value
        card.block_reason = ev.get("reason") or BlockReason.LOST.value
        card.blocked_at_ms = int(ev["at_ms"])
        if numbered(session, card):
            assert card.credential is not None
            out.append(CardBlock(credential=card.credential, reason=card.block_reason))
        else:
            out.append(CardRecordBlock(card_ref=card.card_ref, reason=card.block_reason))
        audit(
            session,
            None,
            "change",
            "card",
            student_pk=student.pk,
            school_id=school,
            summary=f"card #{card.pk} ({card.card_ref}) blocked as {card.block_reason} on the "
            f"teacher's page by staff {ev.get('authorised_by')}",
        )
    return out


def parse_reason(reason: str) -> BlockReason:
    try:
        return BlockReason(reason)
    except ValueError as err:
        raise CardError("reason", N_("Choose a reason: lost or damaged.")) from err


def block_card(session: Session, who: Principal | None, card: Card, reason: BlockReason) -> None:
    if card.status != CardStatus.ACTIVE.value:
        raise CardError("reason", N_("Only an active card can be blocked."))
    card.status = CardStatus.BLOCKED.value
    card.block_reason = reason.value
    card.blocked_at_ms = now_ms()
    session.flush()
    change: Change
    if numbered(session, card):
        assert card.credential is not None
        change = CardBlock(credential=card.credential, reason=reason.value)
    else:
        change = CardRecordBlock(card_ref=card.card_ref, reason=reason.value)
    _publish(session, card.school_id, [change])
    audit(
        session,
        who,
        "change",
        "card",
        student_pk=card.student_pk,
        school_id=card.school_id,
        summary=f"card #{card.pk} ({card.card_ref}) blocked: {reason.value}",
    )


def replace_card(session: Session, who: Principal, card: Card, reason: BlockReason) -> None:
    """Block the old card (if still active): the new card is tapped at the school's desk
    ("replace" there names this record), and its record and fee come back from the school."""
    if card.status == CardStatus.UNBOUND.value:
        raise CardError("reason", N_("This card is unbound: issue a new card at the school."))
    if card.status == CardStatus.ACTIVE.value:
        block_card(session, who, card, reason)


def unbind_card(session: Session, who: Principal, card: Card) -> None:
    if card.status == CardStatus.UNBOUND.value:
        raise CardError("card", N_("This card is already unbound."))
    card.status = CardStatus.UNBOUND.value
    card.unbound_at_ms = now_ms()
    session.flush()
    change: Change
    if numbered(session, card):
        assert card.credential is not None
        change = CardUnbind(credential=card.credential)
    else:
        change = CardRecordUnbind(card_ref=card.card_ref)
    _publish(session, card.school_id, [change])
    audit(
        session,
        who,
        "change",
        "card",
        student_pk=card.student_pk,
        school_id=card.school_id,
        summary=f"card #{card.pk} ({card.card_ref}) unbound",
    )


def unbind_change(session: Session, card: Card) -> Change:
    """The change that unbinds ``card`` at the school (by number before the move)."""
    if numbered(session, card):
        assert card.credential is not None
        return CardUnbind(credential=card.credential)
    return CardRecordUnbind(card_ref=card.card_ref)
