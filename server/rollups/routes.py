"""Meals and attendance of many schools at once, from the daily roll-ups (never the events):
``/reports/schools`` lists the schools the user sees whole: a regional operator their region's,
an operator every school, a school's admin their own. One grouped query over (school, day) rows, so it stays fast as the events grow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.clock import ClockDep
from server.console.scope import schools_in_scope
from server.console.web import Db, nav_item, render, require
from server.replica import ReadDb
from server.reports import calc
from server.reports.filters import BadInput, TextQ, bad_filter, day_filter, month_filter
from server.rollups import service

router = APIRouter()
nav_item("reports.meals", "/reports/schools", "Schools: meals and attendance", 45)


@router.get("/reports/schools")
def schools_page(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("reports.meals")],
    month: TextQ = None,
    day: TextQ = None,
) -> Response:
    schools = [
        s
        for s in schools_in_scope(db, who, "reports.meals")
        if who.whole_school("reports.meals", s.id)
    ]
    today = clock.today_in(None)
    try:
        m = month_filter(month, today)
        d = day_filter(day, today)
    except BadInput as err:
        return bad_filter(request, err)
    days = calc.month_days(m)
    ids = {s.id for s in schools}
    meals = {
        r.school_id: r
        for r in service.region_meals(rdb, None, days[0], days[-1])
        if r.school_id in ids
    }
    present = {
        r.school_id: r.present for r in service.region_presence(rdb, None, d) if r.school_id in ids
    }
    rows = [(s, meals.get(s.id), present.get(s.id, 0)) for s in schools]
    totals = {
        "free": sum(r.free for r in meals.values()),
        "paid": sum(r.paid for r in meals.values()),
        "voucher": sum(r.voucher for r in meals.values()),
        "paid_tiyn": sum(r.paid_tiyn for r in meals.values()),
        "present": sum(present.values()),
    }
    return render(
        request,
        "reports/schools.html",
        {"rows": rows, "month": m, "day": d, "totals": totals},
    )
