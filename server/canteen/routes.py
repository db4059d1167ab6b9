"""Canteen pages: balances and ledger per student, refunds and corrections, menus, parents'
limits, reconciliation with the school, reports (XLSX), the social wallet (funding, QR
vouchers, settlement), and the payment provider's callback."""

from __future__ import annotations

import datetime as dt
import io
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.accounts.access import Principal
from server.audit.service import audit
from server.canteen import ledger, service
from server.canteen.ledger import EntryKind, MoneyError
from server.canteen.models import Menu, ParentLimits
from server.canteen.provider import CallbackError, HmacPaymentProvider, PaymentProvider
from server.canteen.service import CanteenError
from server.canteen.settings import CanteenSettings
from server.canteen.wallet import HttpSocialWallet, SocialWallet, WalletError
from server.clock import now_ms
from server.console.web import Db, any_user, ensure, nav_item, redirect, render, require, tr
from server.models import School
from server.people.models import SchoolClass, Student

router = APIRouter()
nav_item("canteen.view", "/canteen", "Canteen", 60)
nav_item("parent.view", "/canteen/parent", "Canteen balance", 61)

View = Annotated[Principal, require("canteen.view")]
Manage = Annotated[Principal, require("canteen.manage")]
Anyone = Annotated[Principal, any_user()]


# ------------------------------------------------------------------------------- plumbing


def canteen_settings(request: Request) -> CanteenSettings:
    found = getattr(request.app.state, "canteen_settings", None)
    if isinstance(found, CanteenSettings):
        return found
    made = CanteenSettings()
    request.app.state.canteen_settings = made
    return made


def payment_provider(request: Request) -> PaymentProvider | None:
    found = getattr(request.app.state, "canteen_provider", None)
    if isinstance(found, PaymentProvider):
        return found
    s = canteen_settings(request)
    if s.provider_secret is None:
        return None
    return HmacPaymentProvider(
        s.provider_secret.get_secret_value().encode(), s.provider_checkout_url
    )


def social_wallet(request: Request) -> SocialWallet | None:
    found = getattr(request.app.state, "canteen_wallet", None)
    if isinstance(found, SocialWallet):
        return found
    s = canteen_settings(request)
    if s.wallet_url is None:
        return None
    key = s.wallet_key.get_secret_value() if s.wallet_key is not None else ""
    wallet = HttpSocialWallet(s.wallet_url, key, timeout_s=s.wallet_timeout_s)
    request.app.state.canteen_wallet = wallet
    return wallet


def _schools(db: Db, who: Principal, perm: str) -> list[School]:
    ids = who.schools(perm)
    q = select(School).order_by(School.id)
    if ids is not None:
        q = q.where(School.id.in_(ids))
    return list(db.scalars(q))


def _pick_school(
    db: Db, who: Principal, perm: str, school: str | None
) -> tuple[list[School], School]:
    schools = _schools(db, who, perm)
    ensure(bool(schools))
    if school is None:
        return schools, schools[0]
    found = next((s for s in schools if s.id == school), None)
    ensure(found is not None and who.can(perm, school_id=school))
    assert found is not None
    return schools, found


def _student(db: Db, pk: int) -> Student:
    st = db.get(Student, pk)
    ensure(st is not None)
    assert st is not None
    return st


def _may_see_student(who: Principal, st: Student) -> bool:
    return who.can("canteen.view", school_id=st.school_id) or who.can(
        "parent.view", school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk
    )


def _may_set_limits(who: Principal, st: Student) -> bool:
    return who.can("canteen.manage", school_id=st.school_id) or who.can(
        "parent.view", school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk
    )


def _catch_up(request: Request, db: Db, school_id: str) -> None:
    """Post the school's waiting meals before showing money (the poster service does this in
    the background; a page must not show a stale ledger where no poster runs, e.g. the demo)."""
    try:
        while service.post_meals(db, canteen_settings(request), school_id=school_id):
            db.commit()
    except IntegrityError:  # a poster booked them at the same moment: they are booked
        db.rollback()


def _today(db: Db, school_id: str) -> dt.date:
    return service.local_date(now_ms(), service.zone_of(db, school_id))


# ---------------------------------------------------------------------------- balances


@router.get("/canteen")
def index(request: Request, who: View, db: Db, school: str | None = None) -> Response:
    schools, sch = _pick_school(db, who, "canteen.view", school)
    _catch_up(request, db, sch.id)
    students = list(
        db.execute(
            select(Student, SchoolClass.name)
            .join(SchoolClass, SchoolClass.pk == Student.class_pk)
            .where(Student.school_id == sch.id, Student.active.is_(True))
            .order_by(SchoolClass.grade, SchoolClass.name, Student.surname, Student.given_name)
        )
    )
    money = service.balances(db, [s.pk for s, _ in students])
    low = canteen_settings(request).low_balance_tiyn
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
        },
    )


@router.get("/canteen/parent")
def canteen_parent_home(
    request: Request, who: Annotated[Principal, require("parent.view")], db: Db
) -> Response:
    pks = [c[0] for c in who.children]
    kids = (
        list(db.scalars(select(Student).where(Student.pk.in_(pks)).order_by(Student.given_name)))
        if pks
        else []
    )
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
    s = canteen_settings(request)
    can_pay = s.provider_secret is not None and s.provider_checkout_url is not None
    return render(
        request,
        "canteen/parent.html",
        {"rows": [(k, *money[k.pk]) for k in kids], "can_pay": can_pay, "error": None},
    )


@router.post("/canteen/student/{pk}/topup")
def topup_start(
    request: Request,
    who: Annotated[Principal, require("parent.view")],
    db: Db,
    pk: int,
    amount: Annotated[str, Form(max_length=32)],
) -> Response:
    """A parent starts a top-up: off to the provider's payment page; the money is booked only
    when the provider's signed callback arrives."""
    st = _student(db, pk)
    ensure(who.can("parent.view", school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk))
    provider = payment_provider(request)
    try:
        tiyn = ledger.parse_tenge(amount)
        if provider is None:
            raise CallbackError(503, "no_checkout", "No payment page is configured.")
        url = provider.checkout_url(
            st.ref, tiyn, f"{str(request.base_url).rstrip('/')}/canteen/parent?paid=1"
        )
    except (MoneyError, CallbackError) as err:
        pks = [c[0] for c in who.children]
        kids = list(
            db.scalars(select(Student).where(Student.pk.in_(pks)).order_by(Student.given_name))
        )
        money = service.balances(db, [k.pk for k in kids])
        ctx = {
            "rows": [(k, *money[k.pk]) for k in kids],
            "can_pay": True,
            "error": tr(request, str(err)),
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
    form: dict[str, str] | None = None,
) -> Response:
    _catch_up(request, db, st.school_id)
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
def student_page(request: Request, who: Anyone, db: Db, pk: int) -> Response:
    st = _student(db, pk)
    ensure(_may_see_student(who, st))
    return _student_page(request, who, db, st)


@router.post("/canteen/student/{pk}/book")
def book(
    request: Request,
    who: Manage,
    db: Db,
    pk: int,
    kind: Annotated[str, Form(max_length=16)],
    amount: Annotated[str, Form(max_length=32)],
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    st = _student(db, pk)
    ensure(who.can("canteen.manage", school_id=st.school_id))
    form = {"kind": kind, "amount": amount, "reason": reason}
    try:
        entry_kind = EntryKind(kind)
        tiyn = ledger.parse_tenge(amount, allow_negative=entry_kind == EntryKind.CORRECTION)
        service.book_manual(db, canteen_settings(request), who, st, entry_kind, tiyn, reason)
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
def limits_page(request: Request, who: Anyone, db: Db, pk: int) -> Response:
    st = _student(db, pk)
    ensure(_may_set_limits(who, st))
    return _limits_page(request, who, db, st)


def _limits_page(
    request: Request,
    who: Principal,
    db: Db,
    st: Student,
    *,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
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
        form = {
            "allergens": ", ".join(limits.allergen_blocks) if limits else "",
            "cap": (
                ledger_tenge(limits.daily_cap_tiyn)
                if limits and limits.daily_cap_tiyn is not None
                else ""
            ),
        }
    return render(
        request,
        "canteen/limits.html",
        {"st": st, "limits": limits, "form": form, "error": error},
        status,
    )


def ledger_tenge(tiyn: int) -> str:
    return f"{tiyn // 100}" + (f",{tiyn % 100:02d}" if tiyn % 100 else "")


@router.post("/canteen/student/{pk}/limits")
def limits_save(
    request: Request,
    who: Anyone,
    db: Db,
    pk: int,
    allergens: Annotated[str, Form(max_length=1000)] = "",
    cap: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    st = _student(db, pk)
    ensure(_may_set_limits(who, st))
    form = {"allergens": allergens, "cap": cap}
    try:
        blocks = ledger.parse_allergens(allergens)
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
    request: Request, who: Manage, db: Db, school: str | None = None, date: str | None = None
) -> Response:
    schools, sch = _pick_school(db, who, "canteen.manage", school)
    try:
        day = dt.date.fromisoformat(date) if date else _today(db, sch.id)
    except ValueError:
        day = _today(db, sch.id)
    row = db.get(Menu, (sch.id, day))
    text = ledger.menu_text(row.items) if row is not None else ""
    return _menu_render(request, schools, sch, day, text, row, [], 200)


def _menu_render(
    request: Request,
    schools: list[School],
    sch: School,
    day: dt.date,
    text: str,
    row: Menu | None,
    errors: list[Any],
    status: int,
    saved: bool = False,
) -> Response:
    return render(
        request,
        "canteen/menu.html",
        {
            "schools": schools,
            "school": sch,
            "day": day,
            "text": text,
            "row": row,
            "errors": errors,
            "saved": saved,
        },
        status,
    )


@router.post("/canteen/menu")
def menu_save(
    request: Request,
    who: Manage,
    db: Db,
    school: Annotated[str, Form(max_length=64)],
    date: Annotated[str, Form(max_length=10)],
    menu: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    schools, sch = _pick_school(db, who, "canteen.manage", school)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        errors = [ledger.FormError(0, "date", "A date is written YYYY-MM-DD.")]
        return _menu_render(request, schools, sch, _today(db, sch.id), menu, None, errors, 422)
    items, errors = ledger.parse_menu(menu)
    if errors:
        return _menu_render(
            request, schools, sch, day, menu, db.get(Menu, (sch.id, day)), errors, 422
        )
    row = service.set_menu(db, who, sch.id, day, items)
    db.commit()
    return _menu_render(
        request, schools, sch, day, ledger.menu_text(row.items), row, [], 200, saved=True
    )


# ------------------------------------------------------------------------ reconciliation


@router.get("/canteen/reconcile")
def reconcile_page(request: Request, who: View, db: Db, school: str | None = None) -> Response:
    schools, sch = _pick_school(db, who, "canteen.view", school)
    _catch_up(request, db, sch.id)
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
        },
    )


# ------------------------------------------------------------------------------- reports


def _period(
    db: Db, school_id: str, start: str | None, end: str | None
) -> tuple[dt.date, dt.date, str | None]:
    today = _today(db, school_id)
    try:
        lo = dt.date.fromisoformat(start) if start else today.replace(day=1)
        hi = dt.date.fromisoformat(end) if end else today
    except ValueError:
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
    school: str | None = None,
    start: str | None = None,
    end: str | None = None,
    format: str = "html",
) -> Response:
    schools, sch = _pick_school(db, who, "canteen.view", school)
    lo, hi, error = _period(db, sch.id, start, end)
    _catch_up(request, db, sch.id)
    rows = service.meal_report(db, sch.id, lo, hi)
    recon = service.reconciliation(db, sch.id)
    problems = [r for r in recon if r.recon.differences]
    if format == "xlsx" and error is None:
        audit(db, who, "export", "canteen", school_id=sch.id, summary=f"XLSX {lo}..{hi}")
        db.commit()
        return _xlsx(request, sch, lo, hi, rows, problems)
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
    request: Request, who: View, db: Db, school: str | None = None, month: str | None = None
) -> Response:
    schools, sch = _pick_school(db, who, "canteen.view", school)
    month = month or _today(db, sch.id).strftime("%Y-%m")
    wallet = social_wallet(request)
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
            _catch_up(request, db, sch.id)
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
    school: Annotated[str, Form(max_length=64)],
    month: Annotated[str, Form(max_length=7)],
) -> Response:
    sch = _pick_school(db, who, "canteen.manage", school)[1]
    wallet = social_wallet(request)
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
def voucher_qr(request: Request, who: Anyone, db: Db, pk: int) -> Response:
    st = _student(db, pk)
    ensure(_may_set_limits(who, st))
    try:
        token, claim = service.issue_qr(canteen_settings(request), st, now_ms())
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
    request: Request, who: Manage, db: Db, token: Annotated[str, Form(max_length=2000)]
) -> Response:
    wallet = social_wallet(request)
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
        entry = service.redeem_qr(db, canteen_settings(request), wallet, who, token, now_ms())
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
async def payment_callback(request: Request, db: Db) -> Response:
    """The provider's server calls this; it is authenticated by its signature, not a session.
    2xx only once the top-up is booked (or was booked before): the provider retries otherwise."""
    provider = payment_provider(request)
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
    for attempt in (1, 2):
        try:
            result = service.book_topup(db, payment, provider.name)
            db.commit()
        except CanteenError as err:
            db.rollback()
            return JSONResponse({"error": err.code, "message": str(err)}, err.status)
        except IntegrityError:  # the same txid booked concurrently: the second look finds it
            db.rollback()
            if attempt == 2:
                raise
            continue
        return JSONResponse(
            {
                "status": "duplicate" if result.duplicate else "booked",
                "ledger_id": f"L{result.entry_id}",
            },
            200,
        )
    raise AssertionError("unreachable")
