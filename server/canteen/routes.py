"""Canteen pages: balances and ledger per student, refunds and corrections, menus, parents'
limits, reconciliation with the school, reports (XLSX), the social wallet (funding, QR
vouchers, settlement), and the payment provider's callback."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from protocol.allergens import ALLERGENS, allergen_name
from server.accounts.access import Principal
from server.audit.service import audit
from server.canteen import ledger, service
from server.canteen.ledger import EntryKind, MoneyError
from server.canteen.models import Menu, ParentLimits
from server.canteen.provider import CallbackError, ProviderPayment
from server.canteen.service import CanteenError
from server.canteen.wallet import WalletError
from server.canteen.wiring import CanteenDep
from server.canteen.wiring import install as install  # built once at start (install_console)
from server.cardfee.service import FeeDay, fees_by_day
from server.clock import ClockDep
from server.console.params import SchoolId, parse_day
from server.console.scope import may_see_student, pick_school, visible_schools, visible_student
from server.console.web import (
    Db,
    any_user,
    nav_item,
    redirect,
    redirect_done,
    render,
    request_lang,
    require,
    tr,
)
from server.models import School
from server.people.models import SchoolClass, Student
from server.replica import ReadDb

router = APIRouter()
nav_item("canteen.view", "/canteen", "Canteen", 60)
nav_item("parent.view", "/canteen/parent", "Canteen balance", 61)

View = Annotated[Principal, require("canteen.view")]
Manage = Annotated[Principal, require("canteen.manage")]
Anyone = Annotated[Principal, any_user()]
SchoolQ = Annotated[SchoolId | None, Query()]


# ------------------------------------------------------------------------------- plumbing

ViewSchools = Annotated[list[School], visible_schools("canteen.view")]
ManageSchools = Annotated[list[School], visible_schools("canteen.manage")]
# A student's canteen pages: the school's canteen staff, or the child's parent.
Seen = Annotated[Student, visible_student("canteen.view", "parent.view", session=True)]
Limited = Annotated[Student, visible_student("canteen.manage", "parent.view", session=True)]
Booked = Annotated[Student, visible_student("canteen.manage")]
OwnChild = Annotated[Student, visible_student("parent.view")]
# Where the "post waiting meals" form may send the user back to.
BACK = ("/canteen", "/canteen/reconcile", "/canteen/reports", "/canteen/wallet")


def _may_set_limits(who: Principal, st: Student) -> bool:
    return may_see_student(who, st, "canteen.manage", "parent.view")


# ---------------------------------------------------------------------------- balances


@router.get("/canteen")
def index(
    request: Request,
    who: View,
    db: Db,
    canteen: CanteenDep,
    schools: ViewSchools,
    school: SchoolQ = None,
) -> Response:
    sch = pick_school(schools, school)
    students = service.school_students(db, sch.id)
    money = service.balances(db, [s.pk for s, _ in students])
    low = canteen.settings.low_balance_tiyn
    audit(
        db,
        who,
        "canteen.balances",
        f"school:{sch.id}",
        school_id=sch.id,
        summary=f"{len(students)} balances listed",
    )
    db.commit()
    return render(
        request,
        "canteen/index.html",
        {
            "schools": schools,
            "school": sch,
            "rows": [(s, c, *money[s.pk]) for s, c in students],
            "low": low,
            "can_manage": who.can("canteen.manage", school_id=sch.id),
            "waiting": service.waiting_meals(db, sch.id),
            "synced_ms": service.school_synced_ms(db, sch.id),
        },
    )


@router.post("/canteen/post-meals")
def post_waiting_meals(
    who: View,
    db: Db,
    canteen: CanteenDep,
    schools: ViewSchools,
    school: Annotated[SchoolId, Form()],
    back: Annotated[str, Form(max_length=40)] = "/canteen",
) -> Response:
    """Post the school's waiting meals now (the poster service does it in the background)."""
    sch = pick_school(schools, school)
    service.post_waiting_meals(db, canteen.settings, sch.id)
    return redirect(f"{back if back in BACK else '/canteen'}?school={sch.id}")


def _synced(db: Session, kids: list[Student]) -> dict[str, int | None]:
    """School id -> when the school last synced (the balances are the server's as of then)."""
    return {k.school_id: service.school_synced_ms(db, k.school_id) for k in kids}


@router.get("/canteen/parent")
def canteen_parent_home(
    request: Request, who: Annotated[Principal, require("parent.view")], db: Db, canteen: CanteenDep
) -> Response:
    kids = service.students_by_pk(db, [c[0] for c in who.children])
    money = service.balances(db, [k.pk for k in kids])
    for k in kids:
        audit(
            db,
            who,
            "canteen.view",
            f"student:{k.pk}",
            student_pk=k.pk,
            school_id=k.school_id,
            summary="balance",
        )
    db.commit()
    s = canteen.settings
    can_pay = s.provider_secret is not None and s.provider_checkout_url is not None
    return render(
        request,
        "canteen/parent.html",
        {
            "rows": [(k, *money[k.pk]) for k in kids],
            "can_pay": can_pay,
            "error": None,
            "synced": _synced(db, kids),
        },
    )


@router.post("/canteen/student/{pk}/topup")
def topup_start(
    request: Request,
    who: Annotated[Principal, require("parent.view")],
    db: Db,
    canteen: CanteenDep,
    st: OwnChild,
    amount: Annotated[str, Form(max_length=32)],
) -> Response:
    """A parent starts a top-up: off to the provider's payment page; the money is booked only
    when the provider's signed callback arrives."""
    provider = canteen.provider
    try:
        tiyn = ledger.parse_tenge(amount)
        if provider is None:
            raise CallbackError(503, "no_checkout", "No payment page is configured.")
        url = provider.checkout_url(
            st.ref, tiyn, f"{str(request.base_url).rstrip('/')}/canteen/parent?paid=1"
        )
    except (MoneyError, CallbackError) as err:
        kids = service.students_by_pk(db, [c[0] for c in who.children])
        money = service.balances(db, [k.pk for k in kids])
        ctx = {
            "rows": [(k, *money[k.pk]) for k in kids],
            "can_pay": True,
            "error": tr(request, str(err)),
            "synced": _synced(db, kids),
        }
        return render(
            request, "canteen/parent.html", ctx, 422 if isinstance(err, MoneyError) else err.status
        )
    return Response(status_code=303, headers={"location": url})


def _student_page(
    request: Request,
    who: Principal,
    db: Db,
    st: Student,
    *,
    error: str | None = None,
    ok: str | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    entries = service.student_entries(db, st.pk)
    bal, voucher = service.balances(db, [st.pk])[st.pk]
    limits = db.get(ParentLimits, st.pk)
    cls = db.get(SchoolClass, st.class_pk)
    audit(
        db,
        who,
        "canteen.view",
        f"student:{st.pk}",
        student_pk=st.pk,
        school_id=st.school_id,
        summary=f"ledger ({len(entries)} entries)",
    )
    db.commit()
    return render(
        request,
        "canteen/student.html",
        {
            "st": st,
            "cls": cls,
            "entries": [(e, service.entry_delta(e), service.ledger_id(e)) for e in entries],
            "balance": bal,
            "voucher": voucher,
            "synced_ms": service.school_synced_ms(db, st.school_id),
            "limits": limits,
            "can_manage": who.can("canteen.manage", school_id=st.school_id),
            "can_limits": _may_set_limits(who, st),
            "is_staff": who.can("canteen.view", school_id=st.school_id),
            "error": error,
            "ok": ok,
            "form": form or {},
        },
        status,
    )


@router.get("/canteen/student/{pk}")
def student_page(request: Request, who: Anyone, db: Db, st: Seen) -> Response:
    return _student_page(request, who, db, st)


@router.post("/canteen/student/{pk}/book")
def book(
    request: Request,
    who: Manage,
    db: Db,
    canteen: CanteenDep,
    st: Booked,
    kind: Annotated[str, Form(max_length=16)],
    amount: Annotated[str, Form(max_length=32)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    form = {"kind": kind, "amount": amount, "reason": reason}
    try:
        entry_kind = EntryKind(kind)
        tiyn = ledger.parse_tenge(amount, allow_negative=entry_kind == EntryKind.CORRECTION)
        service.book_manual(db, canteen.settings, who, st, entry_kind, tiyn, reason)
    except ValueError as err:  # MoneyError, CanteenError, a bad kind
        db.rollback()
        message = (
            str(err)
            if isinstance(err, MoneyError | CanteenError)
            else "Choose a refund or a correction."
        )
        return _student_page(
            request, who, db, st, error=tr(request, message), status=422, form=form
        )
    db.commit()
    return redirect(f"/canteen/student/{st.pk}?booked=1")


@router.get("/canteen/student/{pk}/limits")
def limits_page(request: Request, who: Anyone, db: Db, st: Limited) -> Response:
    return _limits_page(request, who, db, st)


def _limits_page(
    request: Request,
    who: Principal,
    db: Db,
    st: Student,
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, Any] | None = None,
) -> Response:
    limits = db.get(ParentLimits, st.pk)
    audit(
        db,
        who,
        "canteen.view",
        f"student:{st.pk}",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="canteen limits",
    )
    db.commit()
    if form is None:
        blocks = list(limits.allergen_blocks) if limits else []
        form = {
            "known": [a for a in blocks if a in ALLERGENS],
            # codes of the school's own menu, beyond the list
            "allergens": ", ".join(a for a in blocks if a not in ALLERGENS),
            "cap": (
                ledger_tenge(limits.daily_cap_tiyn)
                if limits and limits.daily_cap_tiyn is not None
                else ""
            ),
        }
    return render(
        request,
        "canteen/limits.html",
        {"st": st, "limits": limits, "form": form, "error": error, "allergen_list": ALLERGENS},
        status,
    )


def ledger_tenge(tiyn: int) -> str:
    return f"{tiyn // 100}" + (f",{tiyn % 100:02d}" if tiyn % 100 else "")


@router.post("/canteen/student/{pk}/limits")
def limits_save(
    request: Request,
    who: Anyone,
    db: Db,
    st: Limited,
    allergens: Annotated[str, Form(max_length=1000)] = "",
    cap: Annotated[str, Form(max_length=32)] = "",
    allergen: Annotated[list[str] | None, Form(max_length=len(ALLERGENS))] = None,
) -> Response:
    known = [a for a in (allergen or []) if a in ALLERGENS]
    form: dict[str, Any] = {"allergens": allergens, "cap": cap, "known": known}
    try:
        blocks = ledger.parse_allergens(", ".join([*known, allergens]))
        cap_tiyn: int | None = None
        if cap.strip():
            try:
                cap_tiyn = ledger.parse_tenge(cap)
            except MoneyError as err:
                if err.code != "zero":
                    raise
                cap_tiyn = 0
        service.set_limits(db, who, st, blocks, cap_tiyn)
    except ValueError as err:
        db.rollback()
        return _limits_page(
            request, who, db, st, error=tr(request, str(err)), status=422, form=form
        )
    db.commit()
    return redirect(f"/canteen/student/{st.pk}/limits?saved=1")


# --------------------------------------------------------------------------------- menus


@router.get("/canteen/menu")
def menu_page(
    request: Request,
    who: Manage,
    db: Db,
    clock: ClockDep,
    schools: ManageSchools,
    school: SchoolQ = None,
    date: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    sch = pick_school(schools, school)
    day = parse_day(date) or clock.school_today(sch)
    row = db.get(Menu, (sch.id, day))
    dishes = [_dish_of(it) for it in (row.items if row is not None else [])]
    return _menu_render(request, schools, sch, day, [*dishes, _BLANK], row, [], 200)


MAX_DISHES = 60
N_ = str
_BLANK: dict[str, Any] = {"id": "", "name": "", "price": "", "allergens": (), "other": ""}


def _dish_of(item: Any) -> dict[str, Any]:
    price = int(item["price_tiyn"])
    tenge = f"{price // 100}" + (f",{price % 100:02d}" if price % 100 else "")
    codes = [str(a) for a in item.get("allergens") or []]
    return {
        "id": str(item["id"]),
        "name": str(item["name"]),
        "price": tenge,
        "allergens": tuple(c for c in codes if c in ALLERGENS),
        "other": ", ".join(c for c in codes if c not in ALLERGENS),
    }


def _menu_render(
    request: Request,
    schools: list[School],
    sch: School,
    day: dt.date,
    dishes: list[dict[str, Any]],
    row: Menu | None,
    errors: list[ledger.FormError],
    status: int,
) -> Response:
    lang = request_lang(request)
    by_row: dict[int, list[ledger.FormError]] = {}
    for e in errors:
        by_row.setdefault(e.line, []).append(e)
    return render(
        request,
        "canteen/menu.html",
        {
            "schools": schools,
            "school": sch,
            "day": day,
            "dishes": dishes,
            "row": row,
            "errors": errors,
            "row_errors": by_row,
            "allergen_choices": [(code, allergen_name(code, lang)) for code in ALLERGENS],
        },
        status,
    )


def _dishes_of_form(
    dish_id: list[str], name: list[str], price: list[str], allergen: list[str], other: list[str]
) -> list[dict[str, Any]]:
    """The form's rows as typed; a checkbox's value is ``row:code``."""
    count = min(max(len(name), len(price), len(dish_id)), MAX_DISHES)
    ticked: dict[int, list[str]] = {}
    for value in allergen:
        i, _, code = value.partition(":")
        if i.isdigit():
            ticked.setdefault(int(i), []).append(code)

    def at(values: list[str], i: int) -> str:
        return values[i] if i < len(values) else ""

    return [
        {
            "id": at(dish_id, i).strip(),
            "name": at(name, i),
            "price": at(price, i),
            "allergens": tuple(c for c in ticked.get(i, []) if c in ALLERGENS),
            "other": at(other, i),
        }
        for i in range(count)
    ]


def _free_id(taken: set[str]) -> str:
    n = 1
    while f"dish-{n}" in taken:
        n += 1
    taken.add(f"dish-{n}")
    return f"dish-{n}"


@router.post("/canteen/menu")
def menu_save(
    request: Request,
    who: Manage,
    db: Db,
    clock: ClockDep,
    schools: ManageSchools,
    school: Annotated[SchoolId, Form()],
    date: Annotated[str, Form(max_length=10)],
    menu: Annotated[str, Form(max_length=20_000)] = "",
    dish_id: Annotated[list[str], Form(max_length=64)] = [],  # noqa: B006 - FastAPI copies it
    name: Annotated[list[str], Form(max_length=300)] = [],  # noqa: B006
    price: Annotated[list[str], Form(max_length=30)] = [],  # noqa: B006
    allergen: Annotated[list[str], Form(max_length=40)] = [],  # noqa: B006
    other: Annotated[list[str], Form(max_length=300)] = [],  # noqa: B006
    op: Annotated[str, Form(max_length=16)] = "save",
) -> Response:
    """Save the day's menu from the form's rows (one a dish), or add or remove a row first
    (buttons, no script needed). ``menu`` (one dish a line: id; name; price; allergens) is
    what scripts may send instead."""
    sch = pick_school(schools, school)
    day_or_none = parse_day(date)
    dishes = _dishes_of_form(dish_id, name, price, allergen, other)
    if op == "add" or op.startswith("remove:"):
        if op == "add":
            dishes.append(dict(_BLANK))
        elif op.removeprefix("remove:").isdigit():
            gone = int(op.removeprefix("remove:"))
            dishes = [d for i, d in enumerate(dishes) if i != gone] or [dict(_BLANK)]
        row = db.get(Menu, (sch.id, day_or_none)) if day_or_none else None
        return _menu_render(
            request, schools, sch, day_or_none or clock.school_today(sch), dishes, row, [], 200
        )
    if day_or_none is None:
        errors = [ledger.FormError(0, "date", "A date is written YYYY-MM-DD.")]
        return _menu_render(
            request, schools, sch, clock.school_today(sch), dishes, None, errors, 422
        )
    day = day_or_none
    if menu.strip() and not any(d["name"] or d["price"] for d in dishes):
        items, errors = ledger.parse_menu(menu)  # a script's text
        dishes = [_dish_of(_as_item(i)) for i in items] or [dict(_BLANK)]
    else:
        taken = {d["id"] for d in dishes if d["id"]}
        rows = []
        for n, d in enumerate(dishes, start=1):
            if not (d["name"].strip() or d["price"].strip()):
                continue  # an empty row (the one left for a new dish)
            extra = tuple(a.strip().lower() for a in d["other"].split(",") if a.strip())
            rows.append(
                ledger.DishInput(
                    n, d["id"] or _free_id(taken), d["name"], d["price"], d["allergens"] + extra
                )
            )
        items, errors = ledger.parse_dishes(rows)
    if errors:
        return _menu_render(
            request, schools, sch, day, dishes, db.get(Menu, (sch.id, day)), errors, 422
        )
    service.set_menu(db, who, sch.id, day, items)
    db.commit()
    return redirect_done(
        request,
        f"/canteen/menu?school={sch.id}&date={day.isoformat()}",
        N_("Saved. The school terminals receive it at the next sync."),
    )


def _as_item(line: ledger.MenuLine) -> dict[str, Any]:
    return {
        "id": line.id,
        "name": line.name,
        "price_tiyn": line.price_tiyn,
        "allergens": list(line.allergens),
    }


# ------------------------------------------------------------------------ reconciliation


@router.get("/canteen/reconcile")
def reconcile_page(
    request: Request, who: View, db: Db, schools: ViewSchools, school: SchoolQ = None
) -> Response:
    sch = pick_school(schools, school)
    rows = service.reconciliation(db, sch.id)
    audit(
        db, who, "canteen.recon", f"school:{sch.id}", school_id=sch.id, summary=f"{len(rows)} rows"
    )
    db.commit()
    return render(
        request,
        "canteen/reconcile.html",
        {
            "schools": schools,
            "school": sch,
            "rows": rows,
            "ack": service.school_ack_version(db, sch.id),
            "head": sch.sync_version,
            "unexplained": sum(1 for r in rows if not r.recon.agrees),
            "waiting": service.waiting_meals(db, sch.id),
        },
    )


# ------------------------------------------------------------------------------- reports


def _period(
    today: dt.date, start: str | None, end: str | None
) -> tuple[dt.date, dt.date, str | None]:
    lo = parse_day(start) if start else today.replace(day=1)
    hi = parse_day(end) if end else today
    if lo is None or hi is None:
        return today.replace(day=1), today, "A date is written YYYY-MM-DD."
    if hi < lo:
        return lo, lo, "The end is before the start."
    if (hi - lo).days > 366:
        return lo, lo + dt.timedelta(days=366), "A report covers at most a year."
    return lo, hi, None


@router.get("/canteen/reports")
def reports_page(
    request: Request,
    who: View,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    schools: ViewSchools,
    school: SchoolQ = None,
    start: Annotated[str | None, Query(max_length=10)] = None,
    end: Annotated[str | None, Query(max_length=10)] = None,
    format: Annotated[str, Query(max_length=8)] = "html",
) -> Response:
    sch = pick_school(schools, school)
    lo, hi, error = _period(clock.school_today(sch), start, end)
    rows = service.meal_report(rdb, sch.id, lo, hi)
    recon = service.reconciliation(rdb, sch.id)
    problems = [r for r in recon if r.recon.differences]
    card_fees = fees_by_day(rdb, sch, lo, hi)
    if format == "xlsx" and error is None:
        audit(db, who, "export", "canteen", school_id=sch.id, summary=f"XLSX {lo}..{hi}")
        db.commit()
        return _xlsx(request, sch, lo, hi, rows, problems, card_fees)
    return render(
        request,
        "canteen/reports.html",
        {
            "schools": schools,
            "school": sch,
            "start": lo,
            "end": hi,
            "rows": rows,
            "problems": problems,
            "error": tr(request, error) if error else None,
            "total": _totals(rows),
            "card_fees": card_fees,
        },
        422 if error else 200,
    )


def _totals(rows: list[service.DayRow]) -> dict[str, int]:
    keys = ("free", "paid", "voucher", "paid_tiyn", "voucher_tiyn", "refunds_tiyn", "revenue_tiyn")
    return {k: sum(getattr(r, k) for r in rows) for k in keys}


def _xlsx(
    request: Request,
    sch: School,
    lo: dt.date,
    hi: dt.date,
    rows: list[service.DayRow],
    problems: list[service.ReconRow],
    card_fees: list[FeeDay],
) -> Response:
    from openpyxl import Workbook

    from server.spreadsheets import neutralise_workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "meals"

    def t(message: str) -> str:
        return tr(request, message)

    ws.append(
        [
            t("Day"),
            t("Free"),
            t("Paid"),
            t("Voucher"),
            t("Paid, ₸"),
            t("Voucher, ₸"),
            t("Refunds, ₸"),
            t("Revenue, ₸"),
        ]
    )
    for r in rows:
        ws.append(
            [
                r.day,
                r.free,
                r.paid,
                r.voucher,
                r.paid_tiyn / 100,
                r.voucher_tiyn / 100,
                r.refunds_tiyn / 100,
                r.revenue_tiyn / 100,
            ]
        )
    tot = _totals(rows)
    ws.append(
        [
            t("Total"),
            tot["free"],
            tot["paid"],
            tot["voucher"],
            tot["paid_tiyn"] / 100,
            tot["voucher_tiyn"] / 100,
            tot["refunds_tiyn"] / 100,
            tot["revenue_tiyn"] / 100,
        ]
    )
    ws3 = wb.create_sheet("card fees")
    ws3.append([t("Day"), t("Cards"), t("In cash, ₸"), t("From the balance, ₸")])
    for f in card_fees:
        ws3.append([f.day, f.count, f.cash_tiyn / 100, f.balance_tiyn / 100])
    ws2 = wb.create_sheet("reconciliation")
    ws2.append([t("Student id"), t("Ledger, ₸"), t("School, ₸"), t("Difference"), t("Amount, ₸")])
    for p in problems:
        for d in p.recon.differences:
            ws2.append(
                [
                    p.student_ref,
                    p.recon.ledger_tiyn / 100,
                    None if p.recon.school_tiyn is None else p.recon.school_tiyn / 100,
                    t(d.label),
                    d.amount_tiyn / 100,
                ]
            )
    buf = io.BytesIO()
    neutralise_workbook(wb).save(buf)
    name = f"canteen-{sch.id}-{lo}-{hi}.xlsx"
    return Response(
        buf.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


# -------------------------------------------------------------------------- social wallet


@router.get("/canteen/wallet")
def wallet_page(
    request: Request,
    who: View,
    db: Db,
    clock: ClockDep,
    canteen: CanteenDep,
    schools: ViewSchools,
    school: SchoolQ = None,
    month: Annotated[str | None, Query(max_length=7)] = None,
) -> Response:
    sch = pick_school(schools, school)
    month = month or clock.school_today(sch).strftime("%Y-%m")
    wallet = canteen.wallet
    ctx: dict[str, Any] = {
        "schools": schools,
        "school": sch,
        "month": month,
        "settle": None,
        "error": None,
        "can_manage": wallet is not None and who.can("canteen.manage", school_id=sch.id),
        "result": request.query_params.get("funded"),
    }
    status = 200
    try:
        ledger.month_bounds(month)
        if wallet is None:
            ctx["error"] = tr(request, "The social wallet is not configured.")
        else:
            ctx["settle"] = service.settlement(db, wallet, sch.id, month)
    except MoneyError as err:
        ctx["error"], status = tr(request, str(err)), 422
    except WalletError:
        ctx["error"], status = tr(request, "The social wallet did not answer."), 502
    return render(request, "canteen/wallet.html", ctx, status)


@router.post("/canteen/wallet/fund")
def wallet_fund(
    request: Request,
    who: Manage,
    db: Db,
    canteen: CanteenDep,
    schools: ManageSchools,
    school: Annotated[SchoolId, Form()],
    month: Annotated[str, Form(max_length=7)],
) -> Response:
    sch = pick_school(schools, school)
    wallet = canteen.wallet
    if wallet is None:
        return render(
            request,
            "error.html",
            {"code": 503, "message": "The social wallet is not configured."},
            503,
        )
    try:
        result = service.fund_vouchers(db, wallet, month, {sch.id})
        service.confirm_voucher_meals(db, wallet, sch.id)
    except (MoneyError, WalletError) as err:
        db.rollback()
        return render(request, "error.html", {"code": 422, "message": str(err)}, 422)
    audit(
        db,
        who,
        "canteen.fund",
        f"school:{sch.id}",
        school_id=sch.id,
        summary=f"{month}: {result.funded} vouchers funded, {result.already} already",
    )
    db.commit()
    return redirect(f"/canteen/wallet?school={sch.id}&month={month}&funded={result.funded}")


@router.get("/canteen/voucher/qr/{pk}")
def voucher_qr(
    request: Request, who: Anyone, db: Db, clock: ClockDep, canteen: CanteenDep, st: Limited
) -> Response:
    try:
        token, claim = service.issue_qr(canteen.settings, st, clock.now_ms())
    except CanteenError as err:
        return render(request, "error.html", {"code": err.status, "message": str(err)}, err.status)
    voucher = service.balance(db, st.pk, ledger.AccountKind.STUDENT_VOUCHER)
    audit(
        db,
        who,
        "canteen.qr",
        f"student:{st.pk}",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="voucher QR issued",
    )
    db.commit()
    return render(
        request, "canteen/qr.html", {"st": st, "token": token, "claim": claim, "voucher": voucher}
    )


@router.get("/canteen/voucher/redeem")
def redeem_page(request: Request, who: Manage) -> Response:
    return render(request, "canteen/redeem.html", {"error": None, "entry": None, "token": ""})


@router.post("/canteen/voucher/redeem")
def redeem(
    request: Request,
    who: Manage,
    db: Db,
    clock: ClockDep,
    canteen: CanteenDep,
    token: Annotated[str, Form(max_length=2000)],
) -> Response:
    wallet = canteen.wallet
    if wallet is None:
        return render(
            request,
            "canteen/redeem.html",
            {
                "error": tr(request, "The social wallet is not configured."),
                "entry": None,
                "token": token,
            },
            503,
        )
    try:
        entry = service.redeem_qr(db, canteen.settings, wallet, who, token, clock.now_ms())
        db.commit()
    except CanteenError as err:
        db.rollback()
        return render(
            request,
            "canteen/redeem.html",
            {"error": tr(request, str(err)), "code": err.code, "entry": None, "token": token},
            err.status,
        )
    except IntegrityError:  # the same QR redeemed at the same moment elsewhere
        db.rollback()
        msg = tr(request, "This QR code has already been redeemed.")
        return render(
            request,
            "canteen/redeem.html",
            {"error": msg, "code": "qr_redeemed", "entry": None, "token": token},
            409,
        )
    return render(request, "canteen/redeem.html", {"error": None, "entry": entry, "token": ""})


# ---------------------------------------------------------------- payment provider callback


@router.post("/canteen/api/payments/callback")
async def payment_callback(request: Request, db: Db, canteen: CanteenDep) -> Response:
    """The provider's server calls this; it is authenticated by its signature, not a session.
    2xx only once the top-up is booked (or was booked before): the provider retries otherwise."""
    provider = canteen.provider
    if provider is None:
        return JSONResponse(
            {"error": "not_configured", "message": "No payment provider is configured."}, 503
        )
    body = await request.body()
    if len(body) > 10_000:
        return JSONResponse({"error": "too_large", "message": "The body is too large."}, 413)
    try:
        payment = provider.parse_callback(body, request.headers)
    except CallbackError as err:
        return JSONResponse({"error": err.code, "message": str(err)}, err.status)
    # The booking uses the blocking session: in a worker thread, never on the event loop.
    status, answer = await run_in_threadpool(_book_topup, db, payment, provider.name)
    return JSONResponse(answer, status)


def _book_topup(db: Session, payment: ProviderPayment, provider: str) -> tuple[int, dict[str, str]]:
    for attempt in (1, 2):
        try:
            result = service.book_topup(db, payment, provider)
            db.commit()
        except CanteenError as err:
            db.rollback()
            return err.status, {"error": err.code, "message": str(err)}
        except IntegrityError:  # the same txid booked concurrently: the second look finds it
            db.rollback()
            if attempt == 2:
                raise
            continue
        return 200, {
            "status": "duplicate" if result.duplicate else "booked",
            "ledger_id": f"L{result.entry_id}",
        }
    raise AssertionError("unreachable")
