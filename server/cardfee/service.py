"""A school's card price and the card fees booked: paid in cash at the school, or taken from the
student's canteen balance (a debit in the canteen ledger, like a manager's negative correction:
it stays at the centre until the wire carries debits to the school, and the reconciliation
explains it). Fees appear in the canteen report beside the meals."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import column, insert, select, table
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.audit.service import audit
from server.cardfee import rules
from server.cardfee.models import CardFeePayment, CardPrice
from server.cards.models import Card
from server.clock import local_date, zone
from server.models import School
from server.people.models import Student

# The canteen's ledger, named here without importing the canteen module (its report page shows
# the fees, so it imports this one). A fee from the balance is booked as the canteen books a
# manager's negative correction: the student's balance account debited, "corrections" credited.
_entries = table(
    "canteen_entries",
    column("id"),
    column("school_id"),
    column("student_pk"),
    column("student_ref"),
    column("kind"),
    column("amount_tiyn"),
    column("at_ms"),
    column("external_ref"),
    column("created_by"),
    column("reason"),
)
_postings = table(
    "canteen_postings",
    column("entry_id"),
    column("school_id"),
    column("account"),
    column("student_pk"),
    column("amount_tiyn"),
)


def fee_postings(student_pk: int, fee_tiyn: int) -> list[tuple[str, int | None, int]]:
    """(account, student, signed amount) of a fee taken from the balance: they sum to zero."""
    return [("student_balance", student_pk, -fee_tiyn), ("corrections", None, fee_tiyn)]


def price_of(session: Session, school_id: str) -> int:
    row = session.get(CardPrice, school_id)
    return row.price_tiyn if row is not None else rules.DEFAULT_PRICE_TIYN


def set_price(session: Session, who: Principal, school: School, price_tiyn: int, now: int) -> None:
    rules.check_price(price_tiyn)
    row = session.get(CardPrice, school.id)
    if row is None:
        row = CardPrice(school_id=school.id, price_tiyn=price_tiyn, updated_at_ms=now)
        session.add(row)
    row.price_tiyn = price_tiyn
    row.updated_at_ms = now
    row.updated_by = who.user_pk
    # The cards module charges the school's price when it issues a replacement.
    school.card_price_tiyn = price_tiyn
    audit(session, who, "change", "card_price", school_id=school.id, summary=f"{price_tiyn} tiyn")
    session.flush()


def unpaid_cards(session: Session, school_id: str) -> list[tuple[Card, Student]]:
    """Students' cards issued with a fee that has not been booked yet."""
    paid = select(CardFeePayment.card_pk).where(CardFeePayment.card_pk.is_not(None))
    return [
        (c, s)
        for c, s in session.execute(
            select(Card, Student)
            .join(Student, Student.pk == Card.student_pk)
            .where(Card.school_id == school_id, Card.fee_tiyn > 0, Card.pk.not_in(paid))
            .order_by(Card.issued_at_ms, Card.pk)
        )
    ]


def book_fee(
    session: Session, who: Principal, card: Card, paid_by: str, now: int
) -> CardFeePayment:
    """Book the fee recorded on ``card`` as paid (once per card)."""
    rules.check_paid_by(paid_by)
    if card.student_pk is None or card.fee_tiyn <= 0:
        raise rules.CardFeeError("card", rules.N_("This card has no fee to pay."))
    if session.execute(select(CardFeePayment.pk).where(CardFeePayment.card_pk == card.pk)).first():
        raise rules.CardFeeError("card", rules.N_("This card's fee is already booked."))
    student = session.get_one(Student, card.student_pk)
    entry_id = None
    if paid_by == "balance":
        entry_id = session.execute(
            insert(_entries)
            .values(
                school_id=card.school_id,
                student_pk=student.pk,
                student_ref=student.ref,
                kind="correction",
                amount_tiyn=card.fee_tiyn,
                at_ms=now,
                external_ref=f"cardfee:{uuid.uuid4().hex}",
                created_by=who.user_pk,
                reason=f"card fee, card record #{card.pk}",
            )
            .returning(_entries.c.id)
        ).scalar_one()
        session.execute(
            insert(_postings),
            [
                {
                    "entry_id": entry_id,
                    "school_id": card.school_id,
                    "account": account,
                    "student_pk": pk,
                    "amount_tiyn": amount,
                }
                for account, pk, amount in fee_postings(student.pk, card.fee_tiyn)
            ],
        )
    row = CardFeePayment(
        school_id=card.school_id,
        student_pk=student.pk,
        card_pk=card.pk,
        amount_tiyn=card.fee_tiyn,
        paid_by=paid_by,
        ledger_entry_id=entry_id,
        at_ms=now,
        booked_by=who.user_pk,
    )
    session.add(row)
    audit(
        session,
        who,
        "change",
        "card_fee",
        student_pk=student.pk,
        school_id=card.school_id,
        summary=f"card #{card.pk} fee {card.fee_tiyn} tiyn booked, paid by {paid_by}",
    )
    session.flush()
    return row


@dataclass(frozen=True, slots=True)
class FeeDay:
    day: dt.date
    cash_tiyn: int
    balance_tiyn: int
    count: int


def fees_by_day(session: Session, school: School, lo: dt.date, hi: dt.date) -> list[FeeDay]:
    """Card fees booked per local day of the school, ``lo``..``hi`` inclusive."""
    tz = zone(school.timezone)
    start = int(dt.datetime.combine(lo, dt.time(), tz).timestamp() * 1000)
    end = int(dt.datetime.combine(hi + dt.timedelta(days=1), dt.time(), tz).timestamp() * 1000)
    out: dict[dt.date, list[int]] = {}
    for at_ms, amount, paid_by in session.execute(
        select(CardFeePayment.at_ms, CardFeePayment.amount_tiyn, CardFeePayment.paid_by).where(
            CardFeePayment.school_id == school.id,
            CardFeePayment.at_ms >= start,
            CardFeePayment.at_ms < end,
        )
    ):
        d = out.setdefault(local_date(at_ms, tz), [0, 0, 0])
        d[0 if paid_by == "cash" else 1] += amount
        d[2] += 1
    return [FeeDay(day, *v) for day, v in sorted(out.items())]
