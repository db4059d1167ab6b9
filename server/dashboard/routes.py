"""The home page per role, and the list of refused taps (the first thing a deputy director on
duty looks for)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import ClockDep
from server.console.params import parse_day
from server.console.scope import classes_in_scope, pick_school, schools_in_scope
from server.console.web import Db, any_user, nav_item, redirect, render, require
from server.dashboard import service
from server.models import School
from server.replica import ReadDb
from server.reports import service as reports

router = APIRouter()
nav_item("status.view", "/refused", "Refused taps", 31)

# The blocks of the home page, by the permission that shows them.
HOME_PERMS = ("status.view", "reports.attendance", "reports.meals", "canteen.view")
PAGE = 100


def _home_schools(db: Db, who: Principal) -> list[School]:
    seen: dict[str, School] = {}
    for perm in HOME_PERMS:
        for s in schools_in_scope(db, who, perm) if who.can(perm) else []:
            seen.setdefault(s.id, s)
    return sorted(seen.values(), key=lambda s: s.id)


@router.get("/")
def home(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, any_user()],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    schools = _home_schools(db, who)
    if not schools and who.can("parent.view"):
        return redirect("/parent")  # a parent's home: their children's day, balance first
    day = None
    overview: list[reports.SchoolStatus] = []
    if schools:
        current = pick_school(schools, school)
        if who.can("status.view") and len(schools) > 1:
            visible = [s.id for s in schools if who.whole_school("status.view", s.id)]
            overview = reports.school_status(rdb, visible, clock.now_ms())
        class_pks = None
        if not who.whole_school("reports.attendance", current.id):
            class_pks = [c.pk for c in classes_in_scope(db, who, "reports.attendance", current.id)]
        day = service.school_day(
            rdb, who, current, clock.school_today(current), clock.now_ms(), class_pks
        )
        audit(db, who, "view", "dashboard", school_id=current.id, summary="home")
        db.commit()
    return render(
        request,
        "dashboard/home.html",
        {
            "schools": schools,
            "day": day,
            "overview": overview,
            "problems": [s for s in overview if not s.ok],
            "roles": sorted(r.value for r in who.roles),
        },
    )


@router.get("/refused")
def refused(
    request: Request,
    db: Db,
    rdb: ReadDb,
    clock: ClockDep,
    who: Annotated[Principal, require("status.view")],
    school: Annotated[str | None, Query(max_length=64)] = None,
    day: Annotated[str | None, Query(max_length=10)] = None,
    reason: Annotated[str, Query(max_length=32)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    schools = [s for s in schools_in_scope(db, who, "status.view")]
    schools = [s for s in schools if who.whole_school("status.view", s.id)]
    current = pick_school(schools, school)
    when = parse_day(day) or clock.school_today(current)
    rows, counts = service.refusals(rdb, current.id, when, current.timezone)
    if reason:
        rows = [r for r in rows if r.reason == reason]
    pages = max(1, -(-len(rows) // PAGE))
    page = min(page, pages)
    audit(db, who, "view", "refusals", school_id=current.id, summary=f"{when} {len(rows)} row(s)")
    db.commit()
    return render(
        request,
        "dashboard/refused.html",
        {
            "schools": schools,
            "school": current,
            "day": when,
            "reason": reason,
            "counts": counts,
            "rows": rows[(page - 1) * PAGE : page * PAGE],
            "total": len(rows),
            "page": page,
            "pages": pages,
        },
    )
