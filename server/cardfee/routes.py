"""Card price and card fees (/cardfees): the school's price within 50-200 tenge, the fees of
replacement cards waiting to be paid, booked as paid in cash or from the balance."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import audit
from server.cardfee import rules
from server.cardfee.service import book_fee, fees_by_day, price_of, set_price, unpaid_cards
from server.cards.models import Card
from server.clock import ClockDep
from server.console.params import SchoolId, parse_id
from server.console.scope import pick_school, school_in_scope, schools_in_scope, visible_schools
from server.console.web import Db, nav_item, redirect_done, render, require
from server.models import School

router = APIRouter()
nav_item("cardfee.manage", "/cardfees", "Card fees", 47)


def _page(
    request: Request,
    db: Db,
    who: Principal,
    school: School,
    today: dt.date,
    *,
    error: rules.CardFeeError | None = None,
    status: int = 200,
) -> Response:
    unpaid = unpaid_cards(db, school.id)
    audit(
        db,
        who,
        "view",
        "card_fee",
        school_id=school.id,
        summary=f"card fees: {len(unpaid)} unpaid listed",
    )
    db.commit()
    month_start = today.replace(day=1)
    days = fees_by_day(db, school, month_start, today)
    return render(
        request,
        "cardfee/index.html",
        {
            "school": school,
            "schools": schools_in_scope(db, who, "cardfee.manage"),
            "price": price_of(db, school.id),
            "unpaid": unpaid,
            "days": days,
            "cash": sum(d.cash_tiyn for d in days),
            "from_balance": sum(d.balance_tiyn for d in days),
            "month": month_start,
            "error": error,
        },
        status,
    )


@router.get("/cardfees")
def cardfees_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("cardfee.manage")],
    schools: Annotated[list[School], visible_schools("cardfee.manage")],
    school: SchoolId | None = None,
) -> Response:
    chosen = pick_school(schools, school)
    return _page(request, db, who, chosen, clock.school_today(chosen))


@router.post("/schools/{school}/cardfees/price")
def cardfees_price(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("cardfee.manage")],
    school: SchoolId,
    price: Annotated[str, Form(max_length=12)],
) -> Response:
    found = school_in_scope(db, who, "cardfee.manage", school)
    try:
        set_price(db, who, found, rules.parse_price(price), clock.now_ms())
    except rules.CardFeeError as err:
        db.rollback()
        return _page(request, db, who, found, clock.school_today(found), error=err, status=400)
    db.commit()
    return redirect_done(request, f"/cardfees?school={found.id}", rules.N_("Saved."))


@router.post("/schools/{school}/cardfees/paid")
def cardfees_paid(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("cardfee.manage")],
    school: SchoolId,
    card: Annotated[str, Form(max_length=12)],
    paid_by: Annotated[str, Form(max_length=8)],
) -> Response:
    found = school_in_scope(db, who, "cardfee.manage", school)
    pk = parse_id(card)
    row = db.get(Card, pk) if pk is not None else None
    try:
        if row is None or row.school_id != found.id:
            raise rules.CardFeeError("card", rules.N_("No such card at this school."))
        book_fee(db, who, row, paid_by, clock.now_ms())
    except rules.CardFeeError as err:
        db.rollback()
        return _page(request, db, who, found, clock.school_today(found), error=err, status=400)
    db.commit()
    return redirect_done(request, f"/cardfees?school={found.id}", rules.N_("The fee is booked."))
