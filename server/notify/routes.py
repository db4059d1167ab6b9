"""Console pages of notifications: the outbox with delivery status per school (operator, school
admin; scoped), and a child's guardians' preferences as the school admin edits them."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from server.accounts.access import Principal
from server.audit.service import audit
from server.console.params import Id
from server.console.scope import may_see_student, schools_in_scope, visible_student
from server.console.web import Db, ensure, nav_item, redirect, render, require, tr
from server.notify.rules import (
    CHANNEL_LABELS,
    KIND_LABELS,
    STATUS_LABELS,
    Channel,
    Kind,
    PreferenceError,
    Status,
    format_clock,
    parse_preferences,
)
from server.notify.service import (
    current_preferences,
    guardians_of,
    outbox_counts,
    outbox_page_rows,
    save_preferences,
    student_by_ref,
)
from server.notify.settings import NotifySettings
from server.people.models import Guardian, Student

router = APIRouter()
nav_item("notifications.view", "/notifications", "Notifications", 70)

PAGE = 200


async def form_data(request: Request) -> dict[str, Any]:
    """The posted form as a dict (checkbox names vary with the kinds and channels)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


Form = Annotated[dict[str, Any], Depends(form_data)]


@functools.cache
def _configured_channels() -> set[Channel]:
    """The console may run without the notifier's settings: mark channels only when it knows."""
    try:
        return NotifySettings().channels() or set(Channel)
    except ValidationError:
        return set(Channel)


def prefs_context(
    request: Request, guardian: Guardian, prefs: Any, action: str, error: str | None = None
) -> dict[str, Any]:
    """What ``notify/_prefs.html`` needs for one guardian's form."""
    configured = _configured_channels()
    return {
        "guardian": guardian,
        "action": action,
        "kinds": [(k.value, KIND_LABELS[k]) for k in Kind],
        "channels": [(c.value, CHANNEL_LABELS[c], c in configured) for c in Channel],
        "on": {f"{k.value}:{c.value}" for k, c in prefs.subscriptions},
        "quiet_start": format_clock(prefs.quiet.start_min if prefs.quiet else None),
        "quiet_end": format_clock(prefs.quiet.end_min if prefs.quiet else None),
        "error": error,
        "has": {
            "sms": bool(guardian.phone.strip()),
            "email": bool(guardian.email.strip()),
            "push": guardian.user_pk is not None,
        },
    }


def preference_error(request: Request, err: PreferenceError) -> str:
    field = {
        "quiet_start": tr(request, "Quiet hours from"),
        "quiet_end": tr(request, "Quiet hours until"),
    }
    return f"{field.get(err.field, err.field)}: {tr(request, err.reason)}"


def _outbox_context(db: Db, who: Principal, school: str, status: str) -> dict[str, Any]:
    if school:
        ensure(who.can("notifications.view", school_id=school))
    allowed = who.schools("notifications.view")
    return {
        "rows": outbox_page_rows(db, allowed, school, status, PAGE),
        "counts": outbox_counts(db, allowed, school),
        "schools": schools_in_scope(db, who, "notifications.view"),
        "statuses": [(s.value, STATUS_LABELS[s]) for s in Status],
        "kind_labels": {k.value: v for k, v in KIND_LABELS.items()},
        "channel_labels": {c.value: v for c, v in CHANNEL_LABELS.items()},
        "status_labels": {s.value: v for s, v in STATUS_LABELS.items()},
        "school": school,
        "status": status,
    }


@router.get("/notifications")
def outbox_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("notifications.view")],
    school: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=12)] = "",
    student: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    if student:
        st = student_by_ref(db, student.strip())
        ensure(st is not None and may_see_student(who, st, "notifications.view"))
        assert st is not None
        return redirect(f"/notifications/student/{st.pk}")
    ctx = _outbox_context(db, who, school, status)
    audit(db, who, "view", "outbox", school_id=school or None, summary=f"{len(ctx['rows'])} rows")
    db.commit()
    return render(request, "notify/outbox.html", ctx)


@router.get("/notifications/rows")
def outbox_rows(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("notifications.view")],
    school: Annotated[str, Query(max_length=64)] = "",
    status: Annotated[str, Query(max_length=12)] = "",
) -> Response:
    return render(request, "notify/_rows.html", _outbox_context(db, who, school, status))


Pupil = Annotated[Student, visible_student("notifications.view", param="student_pk")]


@router.get("/notifications/student/{student_pk}")
def student_prefs_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("notifications.view")],
    st: Pupil,
) -> Response:
    forms = [
        prefs_context(
            request,
            g,
            current_preferences(db, g, st.pk),
            f"/notifications/student/{st.pk}/guardian/{g.pk}",
        )
        for g in guardians_of(db, st.pk)
    ]
    audit(
        db,
        who,
        "view",
        "notify.preferences",
        student_pk=st.pk,
        school_id=st.school_id,
        summary=f"{len(forms)} guardians' notification preferences",
    )
    db.commit()
    return render(
        request,
        "notify/student.html",
        {"student": st, "forms": forms, "saved": request.query_params.get("saved") == "1"},
    )


@router.post("/notifications/student/{student_pk}/guardian/{guardian_pk}")
def student_prefs_save(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("notifications.view")],
    st: Pupil,
    guardian_pk: Id,
    form: Form,
) -> Response:
    guardians = {g.pk: g for g in guardians_of(db, st.pk)}
    ensure(guardian_pk in guardians)
    try:
        prefs = parse_preferences(form)
    except PreferenceError as err:
        forms = [
            prefs_context(
                request,
                g,
                current_preferences(db, g, st.pk),
                f"/notifications/student/{st.pk}/guardian/{g.pk}",
                preference_error(request, err) if g.pk == guardian_pk else None,
            )
            for g in guardians.values()
        ]
        return render(
            request, "notify/student.html", {"student": st, "forms": forms, "saved": False}, 400
        )
    save_preferences(db, who, guardians[guardian_pk], st.pk, st.school_id, prefs)
    db.commit()
    return redirect(f"/notifications/student/{st.pk}?saved=1")
