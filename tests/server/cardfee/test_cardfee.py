"""The card price and the card fee end to end on PostgreSQL: the school admin sets the price
(50-200 tenge), the first card is free, a replacement carries the price, its fee is booked as
paid in cash or from the balance (a canteen ledger debit), and the canteen report shows it."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.canteen.models import LedgerEntry, Posting
from server.cardfee import rules
from server.cardfee.models import CardFeePayment, CardPrice
from server.cards.models import Card
from server.cards.service import record_desk_events
from server.models import School
from tests.server.cards.test_cards import changed, issued
from tests.support.consents import give
from tests.support.console import World


def test_price_fee_booking_and_the_canteen_report(make_browser, db: Session, world: World) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = admin.get("/cardfees?school=S1")
    assert r.status_code == 200 and 'id="price"' in r.text
    for bad in ("250", "49", "abc", "100,555"):
        r = admin.post("/schools/S1/cardfees/price", {"price": bad})
        assert r.status_code == 400 and 'data-field="price"' in r.text, bad
    assert db.scalar(select(func.count()).select_from(CardPrice)) == 0
    r = admin.post("/schools/S1/cardfees/price", {"price": "150"})
    assert r.status_code == 303 and r.headers["location"] == "/cardfees?school=S1"
    db.expire_all()
    assert db.get_one(CardPrice, "S1").price_tiyn == 15_000
    assert db.get_one(School, "S1").card_price_tiyn == 15_000

    # first card free; its replacement costs the price (the cards module records it)
    pk = world.students["s1-3a-1"]
    assert give(admin, pk).status_code == 200
    # the cards are issued at the school's desk; the centre learns their records (no number)
    assert record_desk_events(db, "S1", [issued("k-fee1", "s1-3a-1")]) == 1
    db.commit()
    lost = [changed("k-fee1", "blocked", "lost"), issued("k-fee2", "s1-3a-1", replaces="k-fee1")]
    assert record_desk_events(db, "S1", lost) == 2
    db.commit()
    first = db.execute(select(Card).where(Card.card_ref == "k-fee1")).scalar_one()
    db.expire_all()
    cards = db.scalars(select(Card).where(Card.student_pk == pk).order_by(Card.pk)).all()
    assert [c.fee_tiyn for c in cards] == [0, 15_000]
    second = cards[1]
    r = admin.get("/cardfees?school=S1")
    assert f'id="card-{second.pk}"' in r.text and f'id="card-{first.pk}"' not in r.text

    # booked from the balance: a canteen ledger debit whose postings sum to zero
    r = admin.post("/schools/S1/cardfees/paid", {"card": str(second.pk), "paid_by": "balance"})
    assert r.status_code == 303, r.text
    r = admin.get(r.headers["location"])
    assert 'id="flash"' in r.text and f'id="card-{second.pk}"' not in r.text
    pay = db.scalars(select(CardFeePayment)).one()
    assert (pay.amount_tiyn, pay.paid_by) == (15_000, "balance")
    entry = db.get_one(LedgerEntry, pay.ledger_entry_id)
    posts = db.scalars(select(Posting).where(Posting.entry_id == entry.id)).all()
    assert sum(p.amount_tiyn for p in posts) == 0
    assert {(p.account, p.amount_tiyn) for p in posts} == {
        ("student_balance", -15_000),
        ("corrections", 15_000),
    }
    # once only; a card of another school or no card is refused, nothing changes
    n = db.scalar(select(func.count()).select_from(CardFeePayment))
    for form in (
        {"card": str(second.pk), "paid_by": "cash"},
        {"card": str(first.pk), "paid_by": "cash"},  # free card: no fee
        {"card": "999999", "paid_by": "cash"},
        {"card": str(second.pk), "paid_by": "gold"},
    ):
        r = admin.post("/schools/S1/cardfees/paid", form)
        assert r.status_code == 400, form
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(CardFeePayment)) == n

    # the canteen's report shows the fee beside the meals (page and XLSX)
    canteen = make_browser("canteen1")
    r = canteen.get("/canteen/reports?school=S1")
    assert r.status_code == 200 and 'id="card-fees"' in r.text
    assert "150,00" in r.text.split('id="card-fees-balance"')[1][:40]
    r = canteen.get("/canteen/reports?school=S1&format=xlsx")
    ws = load_workbook(io.BytesIO(r.content))["card fees"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[1][1:] == (1, 0, 150)
    # the canteen manager may not set the price
    assert canteen.post("/schools/S1/cardfees/price", {"price": "60"}).status_code == 403


def test_card_fee_rule() -> None:
    assert rules.card_fee(0, 15_000) == 0
    assert rules.card_fee(1, 15_000) == 15_000 == rules.card_fee(3, 15_000)
    with pytest.raises(rules.CardFeeError):
        rules.card_fee(1, 25_000)
    with pytest.raises(ValueError):
        rules.card_fee(-1, 10_000)
    assert rules.parse_price("50") == 5_000 and rules.parse_price("199,5") == 19_950
    assert rules.parse_price("200") == 20_000
    for bad in ("200,01", "49,99", "", "1e2", "-100"):
        with pytest.raises(rules.CardFeeError):
            rules.parse_price(bad)
