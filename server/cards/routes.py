"""Card records of a student (/students/{pk}/cards) and of a staff member: block, replace, unbind
by record; the school's card list (/cards, find a record by its ref) and the card fees list
(/cards/fees). Cards are bound at the school (the edge's desk): the centre never shows, takes or
searches a card number (DESIGN invariant 5); a form that sends one is refused with where to go."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import Select, select

from protocol.messages import ConsentKind
from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import BlockReason, Card, CardStatus
from server.cards.service import (
    AT_THE_SCHOOL,
    CardError,
    block_card,
    next_fee,
    parse_reason,
    replace_card,
    staff_cards,
    student_cards,
    unbind_card,
)
from server.console.params import Id
from server.console.scope import pick_school, visible_schools, visible_student
from server.console.web import Db, ensure, nav_item, redirect_done, render, require
from server.models import School
from server.people.models import SchoolClass, StaffMember, Student
from server.people.service import has_consent

router = APIRouter()
nav_item("cards.block", "/cards", "Cards", 30)

N_ = str
REASON_LABELS = {BlockReason.LOST.value: N_("lost"), BlockReason.DAMAGED.value: N_("damaged")}
STATUS_LABELS = {
    CardStatus.ACTIVE.value: N_("active"),
    CardStatus.BLOCKED.value: N_("blocked"),
    CardStatus.UNBOUND.value: N_("unbound"),
}


def _page(
    request: Request,
    db: Db,
    who: Principal,
    student: Student,
    *,
    error: CardError | None = None,
    status: int = 200,
) -> Response:
    school = db.get_one(School, student.school_id)
    return render(
        request,
        "cards/student.html",
        {
            "student": student,
            "cls": db.get_one(SchoolClass, student.class_pk),
            "cards": student_cards(db, student.pk),
            "next_fee": next_fee(db, student),
            "has_data_consent": has_consent(db, student.pk, ConsentKind.DATA),
            "can_issue": who.can(
                "cards.issue",
                school_id=student.school_id,
                class_pk=student.class_pk,
                student_pk=student.pk,
            ),
            "reasons": REASON_LABELS,
            "statuses": STATUS_LABELS,
            "error": error,
            "zone": school.timezone,
        },
        status,
    )


def _card(db: Db, student: Student, card_pk: int) -> Card:
    card = db.get(Card, card_pk)
    ensure(card is not None and card.student_pk == student.pk)
    assert card is not None
    return card


@router.get("/students/{pk}/cards")
def cards_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.block")],
    student: Annotated[Student, visible_student("cards.block")],
) -> Response:
    audit(
        db,
        who,
        "view",
        "card",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="card records and history",
    )
    db.commit()
    return _page(request, db, who, student)


@router.post("/students/{pk}/cards")
def cards_issue(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.issue")],
    student: Annotated[Student, visible_student("cards.issue")],
    credential: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """An old form that sends a number: refused, nothing changes (the number is not kept)."""
    return _page(request, db, who, student, error=CardError("card", AT_THE_SCHOOL), status=400)


@router.post("/students/{pk}/cards/{card_pk}/block")
def cards_block(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.block")],
    student: Annotated[Student, visible_student("cards.block")],
    card_pk: Id,
    reason: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    card = _card(db, student, card_pk)
    try:
        block_card(db, who, card, parse_reason(reason))
    except CardError as err:
        db.rollback()
        return _page(request, db, who, student, error=err, status=400)
    db.commit()
    return redirect_done(
        request,
        f"/students/{student.pk}/cards",
        N_("The card is blocked at the school's terminals."),
    )


@router.post("/students/{pk}/cards/{card_pk}/replace")
def cards_replace(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.issue")],
    student: Annotated[Student, visible_student("cards.issue")],
    card_pk: Id,
    reason: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    card = _card(db, student, card_pk)
    try:
        replace_card(db, who, card, parse_reason(reason))
    except CardError as err:
        db.rollback()
        return _page(request, db, who, student, error=err, status=400)
    db.commit()
    return redirect_done(
        request,
        f"/students/{student.pk}/cards",
        N_(
            "The card is blocked. Tap the new card at the school's desk (Cards, Replace): its record and fee will show here."
        ),
    )


@router.post("/students/{pk}/cards/{card_pk}/unbind")
def cards_unbind(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.issue")],
    student: Annotated[Student, visible_student("cards.issue")],
    card_pk: Id,
) -> Response:
    card = _card(db, student, card_pk)
    try:
        unbind_card(db, who, card)
    except CardError as err:
        db.rollback()
        return _page(request, db, who, student, error=err, status=400)
    db.commit()
    return redirect_done(request, f"/students/{student.pk}/cards", N_("The card is unbound."))


def _scoped_cards(who: Principal, perm: str, school: School) -> Select[Card, Student, SchoolClass]:
    q = (
        select(Card, Student, SchoolClass)
        .join(Student, Student.pk == Card.student_pk)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Card.school_id == school.id)
    )
    classes = who.classes(perm, school.id)
    if classes is not None:
        q = q.where(Student.class_pk.in_(classes))
    return q


@router.get("/cards")
def cards_list(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.block")],
    schools: Annotated[list[School], visible_schools("cards.block")],
    school: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    chosen = pick_school(schools, school)
    query = _scoped_cards(who, "cards.block", chosen)
    error: CardError | None = None
    if q.strip():
        query = query.where(Card.card_ref == q.strip())
    rows = db.execute(query.order_by(Card.pk.desc()).limit(500)).all() if error is None else []
    audit(
        db,
        who,
        "view",
        "card",
        school_id=chosen.id,
        summary=f"card list{' (search by record)' if q.strip() else ''}: {len(rows)} row(s)",
    )
    db.commit()
    return render(
        request,
        "cards/list.html",
        {
            "schools": schools,
            "school": chosen,
            "rows": rows,
            "q": q,
            "error": error,
            "statuses": STATUS_LABELS,
            "reasons": REASON_LABELS,
        },
    )


@router.get("/cards/fees")
def cards_fees(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("cards.issue")],
    schools: Annotated[list[School], visible_schools("cards.issue")],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    chosen = pick_school(schools, school)
    rows = db.execute(
        _scoped_cards(who, "cards.issue", chosen)
        .where(Card.fee_tiyn > 0)
        .order_by(Card.issued_at_ms.desc())
    ).all()
    audit(db, who, "view", "card", school_id=chosen.id, summary=f"card fees: {len(rows)} row(s)")
    db.commit()
    return render(
        request,
        "cards/fees.html",
        {
            "schools": schools,
            "school": chosen,
            "rows": rows,
            "total": sum(c.fee_tiyn for c, _s, _k in rows),
        },
    )


# ---------------------------------------------------------------------------- staff cards


def _staff(db: Db, who: Principal, pk: int) -> StaffMember:
    member = db.get(StaffMember, pk)
    ensure(member is not None and who.can("staff.edit", school_id=member.school_id))
    assert member is not None
    return member


def _staff_page(
    request: Request,
    db: Db,
    member: StaffMember,
    *,
    error: CardError | None = None,
    status: int = 200,
) -> Response:
    school = db.get_one(School, member.school_id)
    return render(
        request,
        "cards/staff.html",
        {
            "member": member,
            "cards": staff_cards(db, member.pk),
            "reasons": REASON_LABELS,
            "statuses": STATUS_LABELS,
            "error": error,
            "zone": school.timezone,
        },
        status,
    )


def _staff_card(db: Db, member: StaffMember, card_pk: int) -> Card:
    card = db.get(Card, card_pk)
    ensure(card is not None and card.staff_pk == member.pk)
    assert card is not None
    return card


@router.get("/staff/{pk}/cards")
def staff_cards_page(
    request: Request, db: Db, who: Annotated[Principal, require("staff.edit")], pk: Id
) -> Response:
    return _staff_page(request, db, _staff(db, who, pk))


@router.post("/staff/{pk}/cards")
def staff_cards_issue(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    pk: Id,
    credential: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """An old form that sends a number: refused, nothing changes (the number is not kept)."""
    member = _staff(db, who, pk)
    return _staff_page(request, db, member, error=CardError("card", AT_THE_SCHOOL), status=400)


@router.post("/staff/{pk}/cards/{card_pk}/block")
def staff_cards_block(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    pk: Id,
    card_pk: Id,
    reason: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    member = _staff(db, who, pk)
    card = _staff_card(db, member, card_pk)
    try:
        block_card(db, who, card, parse_reason(reason))
    except CardError as err:
        db.rollback()
        return _staff_page(request, db, member, error=err, status=400)
    db.commit()
    return redirect_done(
        request, f"/staff/{member.pk}/cards", N_("The card is blocked at the school's terminals.")
    )


@router.post("/staff/{pk}/cards/{card_pk}/unbind")
def staff_cards_unbind(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    pk: Id,
    card_pk: Id,
) -> Response:
    member = _staff(db, who, pk)
    card = _staff_card(db, member, card_pk)
    try:
        unbind_card(db, who, card)
    except CardError as err:
        db.rollback()
        return _staff_page(request, db, member, error=err, status=400)
    db.commit()
    return redirect_done(request, f"/staff/{member.pk}/cards", N_("The card is unbound."))
