"""Report pages and their XLSX / PDF downloads: attendance, free meals (with the monthly
statement), library visits, the evacuation headcount, and the live status of schools.

Every page offers only the schools and classes the user's grant covers; asking for another
school or class is a 404. Downloads that name children are audited ("export"), and so are the
page views that list them ("view").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import Clock, ClockDep
from server.console.scope import classes_in_scope, schools_in_scope
from server.console.web import Db, ensure, nav_item, render, request_lang, require, tr
from server.models import Region, School
from server.people.models import SchoolClass
from server.replica import ReadDb
from server.reports import calc, service, sheets
from server.reports.export import (
    PDF_TYPE,
    XLSX_TYPE,
    FontMissing,
    Sheet,
    disposition,
    to_pdf,
    to_xlsx,
)
from server.reports.filters import BadInput, TextQ, bad_filter, day_filter, month_filter
from server.reports.labels import N_, category_label, translator
from server.reports.svg import day_chart

router = APIRouter()
nav_item("reports.attendance", "/reports/attendance", "Attendance", 40)
nav_item("reports.meals", "/reports/meals", "Meals report", 41)
nav_item("reports.library", "/reports/library", "Library", 42)
nav_item("reports.evacuation", "/reports/evacuation", "Evacuation", 43)
nav_item("status.view", "/status", "Status", 44)

FORMATS = ("html", "xlsx", "pdf")
SchoolQ = Annotated[str | None, Query(max_length=64)]
ClassQ = Annotated[str | None, Query(alias="class", max_length=20)]
FormatQ = Annotated[str, Query(max_length=8)]


# ----------------------------------------------------------------------------------- scope


@dataclass(slots=True)
class Scope:
    schools: list[School]
    school: School
    classes: list[SchoolClass]  # the classes of ``school`` the user may see
    klass: SchoolClass | None  # the chosen class (None: the whole school)
    whole: bool  # the user may see the whole school

    @property
    def class_pks(self) -> list[int] | None:
        if self.klass is not None:
            return [self.klass.pk]
        return None if self.whole else [c.pk for c in self.classes]

    @property
    def class_label(self) -> str:
        return self.klass.name if self.klass is not None else ""

    def filters(self, **extra: str) -> dict[str, str]:
        out = {"school": self.school.id}
        if self.klass is not None:
            out["class"] = str(self.klass.pk)
        out.update({k: v for k, v in extra.items() if v})
        return out


def _scope(
    db: Session,
    who: Principal,
    perm: str,
    school: str | None,
    klass: str | None,
    *,
    need_class: bool = False,
) -> Scope:
    schools = sorted(schools_in_scope(db, who, perm), key=lambda s: (s.name, s.id))
    ensure(bool(schools))
    if school:
        chosen = next((s for s in schools if s.id == school), None)
        ensure(chosen is not None)
        assert chosen is not None
    else:
        chosen = schools[0]
    classes = classes_in_scope(db, who, perm, chosen.id)
    whole = who.whole_school(perm, chosen.id)
    picked: SchoolClass | None = None
    if klass:
        try:
            pk = int(klass)
        except ValueError as err:
            raise BadInput(f"class={klass!r}: not a class number") from err
        picked = next((c for c in classes if c.pk == pk), None)
        ensure(picked is not None)
    elif (need_class or not whole) and classes:
        picked = classes[0]
    ensure(whole or picked is not None)
    return Scope(schools, chosen, classes, picked, whole)


def _month_query(
    db: Session,
    who: Principal,
    perm: str,
    school: str | None,
    klass: str | None,
    month: str | None,
    format: str,
    clock: Clock,
) -> tuple[Scope, dt.date, str]:
    """The filters of a monthly report: scope, month and format (``BadInput`` if any is bad)."""
    sc = _scope(db, who, perm, school, klass)
    return sc, month_filter(month, clock.school_today(sc.school)), _format(format)


def _format(value: str) -> str:
    if value not in FORMATS:
        raise BadInput(f"format={value!r}: one of {', '.join(FORMATS)}")
    return value


def _download(
    request: Request,
    fmt: str,
    sheets_: list[Sheet],
    name_parts: list[str],
    school: School,
) -> Response:
    if fmt == "xlsx":
        data, ctype = to_xlsx(sheets_), XLSX_TYPE
    else:
        try:
            data, ctype = to_pdf(sheets_, subject=school.name or school.id), PDF_TYPE
        except FontMissing as err:
            message = tr(request, "PDF export is not available on this server") + f": {err}"
            return render(request, "error.html", {"code": 503, "message": message}, 503)
    return Response(
        data, media_type=ctype, headers={"Content-Disposition": disposition(*name_parts, ext=fmt)}
    )


def _links(path: str, filters: dict[str, str]) -> dict[str, str]:
    return {f: f"{path}?{urlencode({**filters, 'format': f})}" for f in ("xlsx", "pdf")}


def _audit(
    db: Session, who: Principal, action: str, subject: str, scope: Scope, summary: str
) -> None:
    audit(db, who, action, subject, school_id=scope.school.id, summary=summary)
    db.commit()


def _lang(request: Request) -> str:
    return request_lang(request)


# ------------------------------------------------------------------------------ attendance


@router.get("/reports/attendance")
def attendance_page(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.attendance")],
    school: SchoolQ = None,
    klass: ClassQ = None,
    day: TextQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc = _scope(db, who, "reports.attendance", school, klass)
        when = day_filter(day, clock.school_today(sc.school))
        fmt = _format(format)
    except BadInput as err:
        return bad_filter(request, err)
    rows = service.attendance_day_rows(rdb, sc.school.id, sc.class_pks, when)
    zone = sc.school.timezone
    t = translator(_lang(request))
    title = sc.school.name or sc.school.id
    personal = sc.klass is not None
    if fmt != "html":
        sheet = (
            sheets.attendance_day_sheet(t, title, sc.class_label, when, rows, zone)
            if personal
            else sheets.attendance_summary_sheet(t, title, when, rows)
        )
        if personal:
            _audit(
                db,
                who,
                "export",
                "reports.attendance",
                sc,
                f"{fmt} class_pk={sc.klass.pk if sc.klass else ''} day={when} rows={len(rows)}",
            )
        return _download(
            request,
            fmt,
            [sheet],
            ["attendance", sc.school.id, sc.class_label, when.isoformat()],
            sc.school,
        )
    if personal:
        _audit(
            db,
            who,
            "view",
            "reports.attendance",
            sc,
            f"class_pk={sc.klass.pk if sc.klass else ''} day={when} rows={len(rows)}",
        )
    filters = sc.filters(day=when.isoformat())
    return render(
        request,
        "reports/attendance_day.html",
        {
            "sc": sc,
            "day": when,
            "rows": rows,
            "summary": sheets.class_summary(rows),
            "zone": zone,
            "clock": calc.local_clock,
            "links": _links("/reports/attendance", filters),
            "month_url": "/reports/attendance/month?"
            + urlencode(sc.filters(month=f"{when:%Y-%m}")),
            "present": sum(not r.absent for r in rows),
            "late": sum(r.late for r in rows),
            "absent": sum(r.absent for r in rows),
        },
    )


@router.get("/reports/attendance/month")
def attendance_month_page(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.attendance")],
    school: SchoolQ = None,
    klass: ClassQ = None,
    month: TextQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc, m, fmt = _month_query(
            db, who, "reports.attendance", school, klass, month, format, clock
        )
    except BadInput as err:
        return bad_filter(request, err)
    data = service.attendance_month_rows(rdb, sc.school.id, sc.class_pks, m)
    t = translator(_lang(request))
    title = sc.school.name or sc.school.id
    label = sc.class_label or t(N_("All classes"))
    summary = (
        f"{fmt} class_pk={sc.klass.pk if sc.klass else 'all'} month={m:%Y-%m} rows={len(data.rows)}"
    )
    if fmt != "html":
        _audit(db, who, "export", "reports.attendance", sc, summary)
        sheet = sheets.attendance_month_sheet(t, title, label, m, data)
        return _download(
            request,
            fmt,
            [sheet],
            ["attendance", sc.school.id, sc.class_label, f"{m:%Y-%m}"],
            sc.school,
        )
    _audit(db, who, "view", "reports.attendance", sc, summary)
    chart = day_chart(
        "attendance-chart",
        t(N_("Students present per day")) + f", {label}, {m:%Y-%m}",
        ", ".join(f"{d.day}: {n}" for d, n in data.per_day if n),
        [(d.day, n) for d, n in data.per_day],
        t(N_("present")),
    )
    return render(
        request,
        "reports/attendance_month.html",
        {
            "sc": sc,
            "month": m,
            "data": data,
            "label": label,
            "chart": chart,
            "links": _links("/reports/attendance/month", sc.filters(month=f"{m:%Y-%m}")),
            "day_url": "/reports/attendance?" + urlencode(sc.filters()),
        },
    )


# ----------------------------------------------------------------------------------- meals


@router.get("/reports/meals")
def meals_page(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.meals")],
    school: SchoolQ = None,
    month: TextQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc, m, fmt = _month_query(db, who, "reports.meals", school, None, month, format, clock)
    except BadInput as err:
        return bad_filter(request, err)
    ensure(sc.whole)
    data = service.meal_month(rdb, sc.school.id, m)
    t = translator(_lang(request))
    title = sc.school.name or sc.school.id
    if fmt != "html":
        return _download(
            request,
            fmt,
            sheets.meal_sheets(t, title, m, data),
            ["meals", sc.school.id, f"{m:%Y-%m}"],
            sc.school,
        )
    per_day = data.report.free_by_day()
    chart = day_chart(
        "meals-chart",
        t(N_("Free meals served per day")) + f", {m:%Y-%m}",
        ", ".join(f"{d.day}: {sum(per_day[d].values())}" for d in data.days if d in per_day),
        [(d.day, sum(per_day[d].values()) if d in per_day else 0) for d in data.days],
        t(N_("meals")),
    )
    filters = sc.filters(month=f"{m:%Y-%m}")
    return render(
        request,
        "reports/meals.html",
        {
            "sc": sc,
            "month": m,
            "data": data,
            "columns": [category_label(t, c, data.free_grades) for c in data.categories],
            "rows": sheets.meal_period_rows(data),
            "col_totals": [
                sum(n for (_d, _p, c), n in data.report.free.items() if c == cat)
                for cat in data.categories
            ],
            "paid_days": sorted(set(data.report.paid) | set(data.report.voucher)),
            "chart": chart,
            "links": _links("/reports/meals", filters),
            "statement": {
                "html": "/reports/meals/statement?" + urlencode(filters),
                **_links("/reports/meals/statement", filters),
            },
        },
    )


@router.get("/reports/meals/statement")
def meals_statement(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.meals")],
    school: SchoolQ = None,
    month: TextQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc, m, fmt = _month_query(db, who, "reports.meals", school, None, month, format, clock)
    except BadInput as err:
        return bad_filter(request, err)
    ensure(sc.whole)
    data = service.meal_month(rdb, sc.school.id, m)
    t = translator(_lang(request))
    region = db.get(Region, sc.school.region_id) if sc.school.region_id else None
    sheet = sheets.statement_sheet(
        t, sc.school.name or sc.school.id, region.name if region else "", m, data
    )
    if fmt != "html":
        return _download(
            request, fmt, [sheet], ["meal-statement", sc.school.id, f"{m:%Y-%m}"], sc.school
        )
    return render(
        request,
        "reports/statement.html",
        {
            "sc": sc,
            "month": m,
            "sheet": sheet,
            "links": _links("/reports/meals/statement", sc.filters(month=f"{m:%Y-%m}")),
        },
    )


# --------------------------------------------------------------------------------- library


@router.get("/reports/library")
def library_page(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.library")],
    school: SchoolQ = None,
    klass: ClassQ = None,
    month: TextQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc, m, fmt = _month_query(db, who, "reports.library", school, klass, month, format, clock)
    except BadInput as err:
        return bad_filter(request, err)
    t = translator(_lang(request))
    title = sc.school.name or sc.school.id
    # The per-class summary covers every visible class; the per-student list only the chosen one.
    all_pupils, visits = service.library_month(
        rdb, sc.school.id, None if sc.whole else [c.pk for c in sc.classes], m
    )
    chosen = [p for p in all_pupils if sc.klass is not None and p.class_pk == sc.klass.pk]
    summary = f"class_pk={sc.klass.pk if sc.klass else 'all'} month={m:%Y-%m} rows={len(chosen)}"
    if fmt != "html":
        if sc.klass is not None:
            _audit(db, who, "export", "reports.library", sc, f"{fmt} {summary}")
            sheet = sheets.library_sheet(t, title, sc.class_label, m, chosen, visits)
        else:
            sheet = sheets.library_summary_sheet(t, title, m, all_pupils, visits)
        return _download(
            request,
            fmt,
            [sheet],
            ["library", sc.school.id, sc.class_label, f"{m:%Y-%m}"],
            sc.school,
        )
    if sc.klass is not None:
        _audit(db, who, "view", "reports.library", sc, summary)
    return render(
        request,
        "reports/library.html",
        {
            "sc": sc,
            "month": m,
            "classes": sheets.library_class_rows(all_pupils, visits),
            "pupils": chosen,
            "visits": visits,
            "links": _links("/reports/library", sc.filters(month=f"{m:%Y-%m}")),
        },
    )


# ------------------------------------------------------------------------------ evacuation


@router.get("/reports/evacuation")
def evacuation_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.evacuation")],
    school: SchoolQ = None,
    format: FormatQ = "html",
) -> Response:
    try:
        sc = _scope(db, who, "reports.evacuation", school, None)
        fmt = _format(format)
    except BadInput as err:
        return bad_filter(request, err)
    now = clock.now_ms()
    h = service.headcount(db, sc.school.id, now, None if sc.whole else [c.pk for c in sc.classes])
    when = calc.local_dt(now, sc.school.timezone).strftime("%Y-%m-%d %H:%M")
    t = translator(_lang(request))
    summary = f"students={len(h.students)} staff={len(h.staff)}"
    if fmt != "html":
        _audit(db, who, "export", "reports.evacuation", sc, f"{fmt} {summary}")
        sheet = sheets.evacuation_sheet(t, sc.school.name or sc.school.id, when, h)
        stamp = calc.local_dt(now, sc.school.timezone).strftime("%Y-%m-%d_%H%M")
        return _download(request, fmt, [sheet], ["evacuation", sc.school.id, stamp], sc.school)
    _audit(db, who, "view", "reports.evacuation", sc, summary)
    return render(
        request,
        "reports/evacuation.html",
        {
            "sc": sc,
            "h": h,
            "when": when,
            "links": _links("/reports/evacuation", sc.filters()),
        },
    )


# ---------------------------------------------------------------------------------- status


def _status_context(db: Session, who: Principal, clock: Clock) -> dict[str, object]:
    now = clock.now_ms()
    return {"schools": service.school_status(db, who.schools("status.view"), now), "now": now}


@router.get("/status")
def status_page(
    request: Request, db: Db, clock: ClockDep, who: Annotated[Principal, require("status.view")]
) -> Response:
    return render(request, "reports/status.html", _status_context(db, who, clock))


@router.get("/status/fragment")
def status_fragment(
    request: Request, db: Db, clock: ClockDep, who: Annotated[Principal, require("status.view")]
) -> Response:
    return render(request, "reports/status_table.html", _status_context(db, who, clock))
