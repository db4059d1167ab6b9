"""The meal policy pages: every visible school's effective policy (/policy), a school's or a
region's versions with the edit form (/policy/school/{id}, /policy/region/{id})."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from server.accounts.access import PERMISSIONS, SCOPE_OF_ROLE, Principal
from server.clock import Clock, ClockDep
from server.consents.categories import CATEGORY_LABELS
from server.console.params import SchoolId
from server.console.scope import school_in_scope, visible_schools
from server.console.web import Db, ensure, nav_item, render, require
from server.models import Region, School
from server.policy.models import MealPolicy, PolicyPublication
from server.policy.service import (
    EDGE_ROLES,
    GRADES,
    PERIOD_ROWS,
    SHIFTS,
    TIMEZONES,
    PolicyFormError,
    doc_of,
    effective_for,
    effective_policy,
    form_values,
    parse_policy_form,
    save_policy,
    versions_for,
)

router = APIRouter()
nav_item("policy.view", "/policy", "Meal policy", 60)

N_ = str
ROLE_LABELS = {
    "class_teacher": N_("Class teacher"),
    "deputy_director_on_duty": N_("Deputy director on duty"),
}
PASSBACK_LABELS = {
    "off": N_("off"),
    "soft": N_("soft (allow, record the violation)"),
    "hard": N_("hard (refuse)"),
}


def region_allowed(who: Principal, perm: str, region_id: str) -> bool:
    """A region-wide right: the operator, or a regional operator of this region."""
    roles = PERMISSIONS[perm]
    return any(
        g.role in roles
        and (
            SCOPE_OF_ROLE[g.role] == "all"
            or (SCOPE_OF_ROLE[g.role] == "region" and g.region_id == region_id)
        )
        for g in who.grants
    )


async def _form(request: Request) -> dict[str, list[str]]:
    form = await request.form()
    return {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}


Fields = Annotated[dict[str, list[str]], Depends(_form)]


@router.get("/policy")
def policy_overview(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("policy.view")],
    schools: Annotated[list[School], visible_schools("policy.view")],
) -> Response:
    rows = []
    for school in schools:
        today = clock.school_today(school)
        versions = versions_for(db, school)
        eff = effective_policy(versions, school.id, school.region_id, today)
        pending = [
            v
            for v in versions
            if v.valid_from > today
            and (v.school_id == school.id or not any(o.school_id == school.id for o in versions))
        ]
        pub = db.get(PolicyPublication, school.id)
        rows.append(
            {
                "school": school,
                "eff": eff,
                "doc": doc_of(eff) if eff is not None else None,
                "pending": pending,
                "published": pub is not None and eff is not None and pub.policy_pk == eff.pk,
            }
        )
    regions = [
        r
        for r in db.execute(select(Region).order_by(Region.id)).scalars()
        if region_allowed(who, "policy.view", r.id)
    ]
    return render(
        request,
        "policy/overview.html",
        {"rows": rows, "regions": regions, "labels": CATEGORY_LABELS, "passback": PASSBACK_LABELS},
    )


def _edit_context(
    versions: list[MealPolicy], today: dt.date, eff: MealPolicy | None
) -> dict[str, Any]:
    return {
        "versions": sorted(versions, key=lambda v: (v.valid_from, v.pk), reverse=True),
        "today": today,
        "eff": eff,
        "doc": doc_of(eff) if eff is not None else None,
        "shifts": SHIFTS,
        "period_rows": range(PERIOD_ROWS),
        "grades": GRADES,
        "edge_roles": ROLE_LABELS,
        "passback": PASSBACK_LABELS,
        "timezones": TIMEZONES,
        "labels": CATEGORY_LABELS,
        "edge_role_ids": EDGE_ROLES,
    }


def _school_page(
    request: Request,
    db: Db,
    who: Principal,
    school: School,
    today: dt.date,
    *,
    problems: PolicyFormError | None = None,
    values: dict[str, Any] | None = None,
    saved: list[str] | None = None,
    status: int = 200,
) -> Response:
    versions = versions_for(db, school)
    eff = effective_for(db, school, today)
    if values is None:
        values = form_values(doc_of(eff) if eff is not None else None, today)
        if eff is None:
            values["timezone"] = school.timezone
    ctx = _edit_context(versions, today, eff)
    ctx.update(
        title_school=school,
        title_region=None,
        action=f"/policy/school/{school.id}",
        can_edit=who.can("policy.edit", school_id=school.id),
        values=values,
        problems=problems,
        saved=saved,
    )
    return render(request, "policy/edit.html", ctx, status)


@router.get("/policy/school/{school_id}")
def policy_school(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("policy.view")],
    school_id: SchoolId,
) -> Response:
    school = school_in_scope(db, who, "policy.view", school_id, reach="part")
    return _school_page(request, db, who, school, clock.school_today(school))


@router.post("/policy/school/{school_id}")
def policy_school_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("policy.edit")],
    school_id: SchoolId,
    fields: Fields,
) -> Response:
    school = school_in_scope(db, who, "policy.edit", school_id)
    today = clock.school_today(school)
    try:
        valid_from, doc = parse_policy_form(fields, today)
    except PolicyFormError as err:
        return _school_page(
            request, db, who, school, today, problems=err, values=_flat(fields), status=400
        )
    _row, published = save_policy(db, who, school_id=school.id, valid_from=valid_from, doc=doc)
    db.commit()
    return _school_page(request, db, who, school, today, saved=published)


def _flat(fields: dict[str, list[str]]) -> dict[str, Any]:
    multi = {"free_meal_grades", "free_meal_categories", "manual_pass_roles"}
    return {k: (v if k in multi else (v[0] if v else "")) for k, v in fields.items()} | {
        k: fields.get(k, []) for k in multi
    }


def _region_page(
    request: Request,
    db: Db,
    who: Principal,
    region: Region,
    clock: Clock,
    *,
    problems: PolicyFormError | None = None,
    values: dict[str, Any] | None = None,
    saved: list[str] | None = None,
    status: int = 200,
) -> Response:
    today = clock.today_in(None)  # a region's policy is dated in the default zone
    versions = list(
        db.execute(select(MealPolicy).where(MealPolicy.region_id == region.id)).scalars()
    )
    in_force = [v for v in versions if v.valid_from <= today]
    eff = max(in_force, key=lambda v: (v.valid_from, v.pk)) if in_force else None
    if values is None:
        values = form_values(doc_of(eff) if eff is not None else None, today)
    ctx = _edit_context(versions, today, eff)
    ctx.update(
        title_school=None,
        title_region=region,
        action=f"/policy/region/{region.id}",
        can_edit=region_allowed(who, "policy.edit", region.id),
        values=values,
        problems=problems,
        saved=saved,
    )
    return render(request, "policy/edit.html", ctx, status)


def _region(db: Db, who: Principal, perm: str, region_id: str) -> Region:
    region = db.get(Region, region_id)
    ensure(region is not None and region_allowed(who, perm, region_id))
    assert region is not None
    return region


@router.get("/policy/region/{region_id}")
def policy_region(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("policy.view")],
    region_id: SchoolId,
) -> Response:
    return _region_page(request, db, who, _region(db, who, "policy.view", region_id), clock)


@router.post("/policy/region/{region_id}")
def policy_region_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("policy.edit")],
    region_id: SchoolId,
    fields: Fields,
) -> Response:
    region = _region(db, who, "policy.edit", region_id)
    try:
        valid_from, doc = parse_policy_form(fields, clock.today_in(None))
    except PolicyFormError as err:
        return _region_page(
            request, db, who, region, clock, problems=err, values=_flat(fields), status=400
        )
    _row, published = save_policy(db, who, region_id=region.id, valid_from=valid_from, doc=doc)
    db.commit()
    return _region_page(request, db, who, region, clock, saved=published)
