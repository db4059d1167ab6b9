"""Console pages of the social-wallet vouchers: a child's vouchers (the social pedagogue issues
card vouchers there; the parent sees them and shows a QR voucher from there) and a school's
settlement against the meals served."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from server.accounts.access import Principal
from server.canteen.ledger import MoneyError, parse_tenge
from server.clock import ClockDep
from server.console.params import SchoolId
from server.console.scope import pick_school, visible_schools, visible_student
from server.console.web import Db, any_user, nav_item, redirect, render, require, tr
from server.models import School
from server.people.models import Student
from server.vouchers import service
from server.vouchers.models import VoucherIssuer, VoucherUse
from server.vouchers.rules import IssueForm, VoucherError

router = APIRouter()
nav_item("canteen.view", "/vouchers", "Vouchers", 62)

View = Annotated[Principal, require("canteen.view")]
Anyone = Annotated[Principal, any_user()]
Issue = Annotated[Principal, require("vouchers.issue")]
ViewSchools = Annotated[list[School], visible_schools("canteen.view")]
IssueSchools = Annotated[list[School], visible_schools("vouchers.issue")]
Seen = Annotated[
    Student, visible_student("vouchers.issue", "canteen.view", "parent.view", session=True)
]
Issuable = Annotated[Student, visible_student("vouchers.issue")]
DayText = Annotated[str, Form(max_length=10)]


def _student_page(request: Request, who: Principal, db: Any, st: Student, **extra: Any) -> Response:
    vouchers = service.student_vouchers(db, [st.pk])
    spent: dict[str, int] = {}
    for vid, amount in db.execute(
        select(VoucherUse.voucher_id, VoucherUse.amount_tiyn).where(
            VoucherUse.voucher_id.in_([v.id for v in vouchers])
        )
    ):
        spent[vid] = spent.get(vid, 0) + int(amount)
    qr = {
        v.id: service.qr_svg(v.token) for v in vouchers if v.token is not None and v.id not in spent
    }
    ctx = {
        "st": st,
        "vouchers": vouchers,
        "spent": spent,
        "qr": qr,
        "can_issue": who.can("vouchers.issue", school_id=st.school_id),
        "issuers": list(
            db.scalars(select(VoucherIssuer).where(VoucherIssuer.revoked_at_ms.is_(None)))
        ),
        "error": None,
        "form": {},
        **extra,
    }
    return render(request, "vouchers/student.html", ctx, 422 if ctx["error"] else 200)


@router.get("/vouchers/student/{pk}")
def student_page(request: Request, who: Anyone, db: Db, st: Seen) -> Response:
    return _student_page(request, who, db, st)


@router.post("/vouchers/student/{pk}/issue")
def issue(
    request: Request,
    who: Issue,
    db: Db,
    clock: ClockDep,
    st: Issuable,
    issuer: Annotated[str, Form(max_length=64)],
    amount: Annotated[str, Form(max_length=20)],
    valid_from: DayText,
    valid_to: DayText,
    periods: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    form_back = {
        "issuer": issuer,
        "amount": amount,
        "valid_from": valid_from,
        "valid_to": valid_to,
        "periods": periods,
    }
    try:
        form = IssueForm(
            amount_tiyn=parse_tenge(amount),
            valid_from=dt.date.fromisoformat(valid_from),
            valid_to=dt.date.fromisoformat(valid_to),
            meal_periods=tuple(periods.replace(";", ",").split(",")),
        )
        service.issue(
            db,
            issuer_id=issuer,
            school_id=st.school_id,
            student_ref=st.ref,
            form=form,
            today=clock.school_today(db.get(School, st.school_id)),
            who=who,
        )
    except (VoucherError, MoneyError) as err:
        db.rollback()
        return _student_page(request, who, db, st, error=tr(request, str(err)), form=form_back)
    except ValueError:
        db.rollback()
        return _student_page(
            request, who, db, st, error=tr(request, "A date is written YYYY-MM-DD."), form=form_back
        )
    db.commit()
    return redirect(f"/vouchers/student/{st.pk}")


@router.get("/vouchers")
def settlement_page(
    request: Request,
    who: View,
    db: Db,
    schools: ViewSchools,
    school: Annotated[SchoolId | None, Query()] = None,
) -> Response:
    sch = pick_school(schools, school)
    result, meals = service.settlement(db, sch.id, collect=False)
    return render(
        request,
        "vouchers/settlement.html",
        {"schools": schools, "school": sch, "result": result, "meals": meals},
    )


@router.post("/vouchers/collect")
def collect(
    who: View,
    db: Db,
    schools: ViewSchools,
    school: Annotated[SchoolId, Form()],
) -> Response:
    sch = pick_school(schools, school)
    service.collect_all(db)
    db.commit()
    return redirect(f"/vouchers?school={sch.id}")
