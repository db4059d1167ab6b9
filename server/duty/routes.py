"""The duty roster (/duty): who answers for the school's system on each shift of the week, who
is on duty now, and the alarms sent. Planned by the school's administrator (seed 002)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.clock import ClockDep
from server.console.params import Day, SchoolId, parse_day
from server.console.scope import pick_school, school_in_scope, schools_in_scope, visible_schools
from server.console.web import Db, nav_item, redirect_done, render, require
from server.duty import rules
from server.duty.service import (
    clear_shift,
    on_duty_now,
    plan,
    recent_alerts,
    set_shift,
    staff_of,
)
from server.models import School

router = APIRouter()
nav_item("duty.view", "/duty", "Duty roster", 62)


def _page(
    request: Request,
    db: Db,
    who: Principal,
    school: School,
    schools: list[School],
    week: dt.date,
    now: int,
    *,
    error: rules.DutyError | None = None,
    status: int = 200,
) -> Response:
    days = rules.week_of(week)
    return render(
        request,
        "duty/roster.html",
        {
            "school": school,
            "schools": schools,
            "days": days,
            "shifts": [1, 2],
            "windows": rules.DEFAULT_WINDOWS,
            "plan": plan(db, school.id, days),
            "staff": staff_of(db, school.id),
            "names": {u.pk: u.full_name for u in staff_of(db, school.id)},
            "now": on_duty_now(db, school, now),
            "alerts": recent_alerts(db, school.id),
            "can_plan": who.can("duty.plan", school_id=school.id),
            "prev": (days[0] - dt.timedelta(days=7)).isoformat(),
            "next": (days[0] + dt.timedelta(days=7)).isoformat(),
            "error": error,
            "alarm_text": rules.ALARM_TEXT,
        },
        status,
    )


@router.get("/duty")
def duty_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("duty.view")],
    schools: Annotated[list[School], visible_schools("duty.view")],
    school: SchoolId | None = None,
    week: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    chosen = pick_school(schools, school)
    day = parse_day(week)
    return _page(
        request,
        db,
        who,
        chosen,
        schools,
        day or clock.school_today(chosen),
        clock.now_ms(),
    )


@router.post("/schools/{school}/duty")
def duty_set(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("duty.plan")],
    school: SchoolId,
    day: Annotated[Day, Form()],
    shift: Annotated[int, Form(ge=1, le=3)],
    user: Annotated[str, Form(max_length=12)] = "",
    starts: Annotated[str, Form(max_length=5)] = "",
    ends: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    found = school_in_scope(db, who, "duty.plan", school)
    schools = schools_in_scope(db, who, "duty.view")
    now = clock.now_ms()
    try:
        if not user:
            clear_shift(db, who, found.id, day, shift)
        else:
            user_pk = int(user) if user.isdigit() and 0 < int(user) < 2**31 else 0
            default = rules.DEFAULT_WINDOWS.get(shift, ("", ""))
            set_shift(
                db,
                who,
                found.id,
                day,
                shift,
                user_pk,
                starts or default[0],
                ends or default[1],
                now,
            )
    except rules.DutyError as err:
        db.rollback()
        return _page(request, db, who, found, schools, day, now, error=err, status=400)
    db.commit()
    return redirect_done(
        request, f"/duty?school={found.id}&week={day.isoformat()}", rules.N_("Saved.")
    )
