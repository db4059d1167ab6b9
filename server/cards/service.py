"""Issue, block, replace and unbind students' cards; every change reaches the school's edges in
the same transaction (card_bind / card_block / card_unbind in the change log)."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.messages import (
    CardBind,
    CardBinding,
    CardBlock,
    CardUnbind,
    Change,
    ConsentKind,
    OwnerKind,
)
from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import BlockReason, Card, CardStatus
from server.clock import now_ms
from server.consents.service import edge_presence
from server.models import School
from server.people.models import StaffMember, Student
from server.people.service import has_consent
from server.sync.changelog import append_changes, load_state
from server.sync.state import ChangeRejected

N_ = str

_CREDENTIAL = re.compile(r"^[A-Z0-9]+:[A-Z0-9:]+$")


class CardError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def normalise_credential(text: str) -> str:
    """The reader's format: type prefix, a colon, the number ("em: 0012 345678" gives
    "EM:0012345678"). Raises CardError with the reason. Pure."""
    value = "".join(text.split()).upper()
    if not value:
        raise CardError("credential", N_("Write the card number."))
    if ":" not in value:
        raise CardError(
            "credential",
            N_("Write the card type before the number, e.g. EM:0012345678."),
        )
    if len(value) < 3 or len(value) > 128:
        raise CardError("credential", N_("The card number must be 3 to 128 characters."))
    if not _CREDENTIAL.match(value):
        raise CardError(
            "credential",
            N_("Only Latin letters, digits and colons, e.g. EM:0012345678."),
        )
    return value


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
        raise CardError(
            "credential", N_("The school's terminals refused this card binding.")
        ) from err


def issue_card(
    session: Session,
    who: Principal,
    student: Student,
    credential: str,
    *,
    replaces: Card | None = None,
) -> Card:
    """Bind a new card to the student (invariant 6: only with a current data consent)."""
    cred = normalise_credential(credential)
    if not student.active:
        raise CardError("credential", N_("The student is not active."))
    if not has_consent(session, student.pk, ConsentKind.DATA):
        raise CardError(
            "credential",
            N_("No data consent is recorded for this student: record the parent's consent first."),
        )
    active = (
        session.execute(
            select(Card).where(
                Card.student_pk == student.pk, Card.status == CardStatus.ACTIVE.value
            )
        )
        .scalars()
        .first()
    )
    if active is not None:
        raise CardError(
            "credential",
            N_("The student already has an active card: block or replace it first."),
        )
    _refuse_taken(session, student.school_id, cred)
    card = Card(
        credential=cred,
        student_pk=student.pk,
        school_id=student.school_id,
        status=CardStatus.ACTIVE.value,
        issued_at_ms=now_ms(),
        issued_by=who.user_pk,
        fee_tiyn=next_fee(session, student),
        replaces_card_pk=replaces.pk if replaces is not None else None,
    )
    _add(session, card)
    state = load_state(session, student.school_id)
    changes: list[Change] = [
        *edge_presence(session, student, state),
        CardBind(
            card=CardBinding(credential=cred, owner_kind=OwnerKind.STUDENT, owner_id=student.ref)
        ),
    ]
    _publish(session, student.school_id, changes)
    audit(
        session,
        who,
        "change",
        "card",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"card #{card.pk} issued and bound (card_bind); fee {card.fee_tiyn} tiyn"
        + (f"; replaces card #{replaces.pk}" if replaces is not None else ""),
    )
    return card


def staff_cards(session: Session, staff_pk: int) -> list[Card]:
    return list(
        session.execute(
            select(Card).where(Card.staff_pk == staff_pk).order_by(Card.pk.desc())
        ).scalars()
    )


def issue_staff_card(
    session: Session, who: Principal, member: StaffMember, credential: str
) -> Card:
    """A staff member's card (manual passes, staff entry): no fee; adults consent to their own
    data at hiring, so no parent's consent applies."""
    from server.roster.service import staff_change  # the roster owns what the edge knows of staff

    cred = normalise_credential(credential)
    if not member.active:
        raise CardError("credential", N_("The staff member is not active."))
    active = (
        session.execute(
            select(Card).where(Card.staff_pk == member.pk, Card.status == CardStatus.ACTIVE.value)
        )
        .scalars()
        .first()
    )
    if active is not None:
        raise CardError(
            "credential",
            N_("The staff member already has an active card: block or unbind it first."),
        )
    _refuse_taken(session, member.school_id, cred)
    card = Card(
        credential=cred,
        staff_pk=member.pk,
        school_id=member.school_id,
        status=CardStatus.ACTIVE.value,
        issued_at_ms=now_ms(),
        issued_by=who.user_pk,
        fee_tiyn=0,
    )
    _add(session, card)
    state = load_state(session, member.school_id)
    changes: list[Change] = [] if member.ref in state.staff else [staff_change(session, member)]
    changes.append(
        CardBind(card=CardBinding(credential=cred, owner_kind=OwnerKind.STAFF, owner_id=member.ref))
    )
    _publish(session, member.school_id, changes)
    audit(
        session,
        who,
        "change",
        "card",
        school_id=member.school_id,
        summary=f"staff card #{card.pk} issued and bound (card_bind) to staff {member.ref}",
    )
    return card


def _refuse_taken(session: Session, school_id: str, cred: str) -> None:
    taken = (
        session.execute(
            select(Card).where(
                Card.school_id == school_id,
                Card.credential == cred,
                Card.status != CardStatus.UNBOUND.value,
            )
        )
        .scalars()
        .first()
    )
    if taken is not None:
        raise CardError(
            "credential",
            N_("This card is already bound at the school (another card record): unbind it first."),
        )


def _add(session: Session, card: Card) -> None:
    session.add(card)
    try:
        session.flush()
    except IntegrityError as err:  # the same number bound at this moment by another user
        raise CardError(
            "credential",
            N_("This card is already bound at the school (another card record): unbind it first."),
        ) from err


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
    _publish(session, card.school_id, [CardBlock(credential=card.credential, reason=reason.value)])
    audit(
        session,
        who,
        "change",
        "card",
        student_pk=card.student_pk,
        school_id=card.school_id,
        summary=f"card #{card.pk} blocked (card_block): {reason.value}",
    )


def replace_card(
    session: Session,
    who: Principal,
    student: Student,
    card: Card,
    reason: BlockReason,
    credential: str,
) -> Card:
    """Block the old card (if still active) and issue the new one; the fee is recorded on it."""
    normalise_credential(credential)  # refuse a bad number before blocking anything
    if card.status == CardStatus.UNBOUND.value:
        raise CardError("credential", N_("This card is unbound: issue a new card instead."))
    if card.status == CardStatus.ACTIVE.value:
        block_card(session, who, card, reason)
    return issue_card(session, who, student, credential, replaces=card)


def unbind_card(session: Session, who: Principal, card: Card) -> None:
    if card.status == CardStatus.UNBOUND.value:
        raise CardError("credential", N_("This card is already unbound."))
    card.status = CardStatus.UNBOUND.value
    card.unbound_at_ms = now_ms()
    session.flush()
    _publish(session, card.school_id, [CardUnbind(credential=card.credential)])
    audit(
        session,
        who,
        "change",
        "card",
        student_pk=card.student_pk,
        school_id=card.school_id,
        summary=f"card #{card.pk} unbound (card_unbind)",
    )
