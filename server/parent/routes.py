"""The parent's page: my children (only those linked to my account), each child's day and
month, the notifications sent to me, and my notification preferences. Made for a phone."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import audit
from server.canteen import service as canteen
from server.clock import Clock, ClockDep
from server.console.params import Id
from server.console.scope import visible_student
from server.console.web import Db, ensure, nav_item, redirect, render, require
from server.models import School
from server.notify.routes import Form, preference_error, prefs_context
from server.notify.rules import CHANNEL_LABELS, STATUS_LABELS, PreferenceError, parse_preferences
from server.notify.service import current_preferences, guardians_of, save_preferences
from server.parent.service import (
    happenings,
    month_bounds,
    notifications,
    parse_month,
    summarise,
)
from server.people.models import Student

router = APIRouter()
nav_item("parent.view", "/parent", "My children", 10)


# Only a child linked to this account; any other id is 'not found'.
Child = Annotated[Student, visible_student("parent.view", param="student_pk")]


@router.get("/parent")
def parent_home(
    request: Request, db: Db, clock: ClockDep, who: Annotated[Principal, require("parent.view")]
) -> Response:
    cards = []
    for student_pk, school_id, _class_pk in who.children:
        st = db.get(Student, student_pk)
        if st is None:
            continue
        school = db.get(School, school_id)
        tz = clock.school_zone(school)
        today = clock.school_today(school)
        start = int(dt.datetime(today.year, today.month, today.day, tzinfo=tz).timestamp() * 1000)
        summary = summarise(happenings(db, st, start, start + 86_400_000), tz, today)
        cards.append(
            {
                "student": st,
                "school": school,
                "today": summary.today,
                "zone": tz.key,
            }
        )
    return render(request, "parent/home.html", {"cards": cards})


@router.get("/parent/child/{student_pk}")
def child_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("parent.view")],
    st: Child,
    month: Annotated[str, Query(max_length=7)] = "",
) -> Response:
    return _render_child(request, db, clock, who, st, month)


def _render_child(
    request: Request,
    db: Db,
    clock: Clock,
    who: Principal,
    st: Student,
    month: str = "",
    error_for: int | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    school = db.get(School, st.school_id)
    tz = clock.school_zone(school)
    today = clock.school_today(school)
    first = parse_month(month, today)
    start, end = month_bounds(first, tz)
    summary = summarise(happenings(db, st, start, end), tz, today)
    mine = guardians_of(db, st.pk, who.user_pk)
    forms = [
        prefs_context(
            request,
            g,
            current_preferences(db, g, st.pk),
            f"/parent/child/{st.pk}/guardian/{g.pk}",
            error if g.pk == error_for else None,
        )
        for g in mine
    ]
    prev_month = (first - dt.timedelta(days=1)).replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    audit(
        db,
        who,
        "view",
        "parent.child",
        student_pk=st.pk,
        school_id=st.school_id,
        summary=f"day and month {first:%Y-%m}: attendance, meals, balance, notifications",
    )
    db.commit()
    return render(
        request,
        "parent/child.html",
        {
            "student": st,
            "school": school,
            "zone": tz.key,
            "month": first,
            "prev_month": f"{prev_month:%Y-%m}",
            "next_month": f"{next_month:%Y-%m}" if next_month <= today.replace(day=1) else None,
            "summary": summary,
            "messages": notifications(db, st.pk, [g.pk for g in mine], start, end),
            "channel_labels": {c.value: v for c, v in CHANNEL_LABELS.items()},
            "status_labels": {s.value: v for s, v in STATUS_LABELS.items()},
            "forms": forms,
            "saved": request.query_params.get("saved") == "1",
            # the same balance as the console's and the kiosk's: the ledger's, as of the
            # school's last sync
            "balance": canteen.balances(db, [st.pk])[st.pk][0],
            "synced_ms": canteen.school_synced_ms(db, st.school_id),
        },
        status_code,
    )


@router.post("/parent/child/{student_pk}/guardian/{guardian_pk}")
def child_prefs_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("parent.view")],
    st: Child,
    guardian_pk: Id,
    form: Form,
) -> Response:
    mine = {g.pk: g for g in guardians_of(db, st.pk, who.user_pk)}
    ensure(guardian_pk in mine)
    try:
        prefs = parse_preferences(form)
    except PreferenceError as err:
        return _render_child(
            request, db, clock, who, st, "", guardian_pk, preference_error(request, err), 400
        )
    save_preferences(db, who, mine[guardian_pk], st.pk, st.school_id, prefs)
    db.commit()
    return redirect(f"/parent/child/{st.pk}?saved=1#prefs")
