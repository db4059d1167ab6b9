"""Tutoring pages: projects and directions, volunteers, groups, the volunteer's attendance
journal, the growth table, the expert council (scores, conflicts, ranking, decision, protocol
PDF), indicators and awards, and the needs survey (one-time links answered without sign-in)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.clock import ClockDep
from server.console.params import Id, parse_day, parse_id
from server.console.web import (
    PRELOGIN_COOKIE,
    Db,
    ensure,
    nav_item,
    redirect,
    render,
    require,
    tr,
)
from server.reports.export import PDF_TYPE, disposition

from . import service
from .models import Decision, Group, Lesson, Project, Volunteer
from .service import TutoringError

router = APIRouter()
nav_item("tutoring.view", "/tutoring", "Tutoring", 70)
nav_item("tutoring.journal", "/tutoring/journal", "Attendance journal", 71)
nav_item("tutoring.council", "/tutoring/council", "Expert council", 72)

View = Annotated[Principal, require("tutoring.view")]
Manage = Annotated[Principal, require("tutoring.manage")]
Journal = Annotated[Principal, require("tutoring.journal")]
Council = Annotated[Principal, require("tutoring.council")]
ProjectQ = Annotated[str | None, Query(max_length=64)]
N_ = str

SURVEY_BY = {
    "district": N_("District"),
    "school": N_("School"),
    "grade": N_("Grade"),
    "direction": N_("Direction"),
}


def _project(db: Db, who: Principal, perm: str, code: str | None) -> tuple[list[Project], Project]:
    projects, project = service.pick_project(db, who, perm, code)
    if project is None and not code:
        raise _NoProject()
    ensure(project is not None)
    assert project is not None
    return projects, project


class _NoProject(Exception):
    pass


def _empty(request: Request) -> Response:
    return render(request, "tutoring/empty.html", {})


def _page(
    request: Request, db: Db, who: Principal, perm: str, code: str | None, template: str, **ctx: Any
) -> Response:
    try:
        projects, project = _project(db, who, perm, code)
    except _NoProject:
        return _empty(request)
    builder = ctx.pop("build")
    context = {"projects": projects, "project": project, **builder(project)}
    db.commit()  # audit entries and defaults (published criteria, the survey) are kept
    return render(request, template, context | ctx)


def _error(request: Request, message: str, code: int = 422) -> Response:
    return render(request, "error.html", {"code": code, "message": tr(request, message)}, code)


# ------------------------------------------------------------------- projects and directions


@router.get("/tutoring")
def projects_page(request: Request, who: View, db: Db, project: ProjectQ = None) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/index.html",
        build=lambda p: {"directions": service.direction_views(db, p)},
    )


@router.get("/tutoring/growth")
def growth_page(request: Request, who: View, db: Db, project: ProjectQ = None) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/growth.html",
        build=lambda p: {"rows": service.growth_report(db, p)},
    )


@router.get("/tutoring/volunteers")
def volunteers_page(request: Request, who: View, db: Db, project: ProjectQ = None) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/volunteers.html",
        build=lambda p: {"volunteers": service.volunteers_of(db, p)},
    )


@router.get("/tutoring/groups")
def groups_page(request: Request, who: View, db: Db, project: ProjectQ = None) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/groups.html",
        build=lambda p: {
            "groups": service.groups_of_project(db, p),
            "can_manage": service.may_see_project(who, "tutoring.manage", p),
        },
    )


@router.post("/tutoring/groups/place")
def groups_place(
    request: Request,
    who: Manage,
    db: Db,
    project: Annotated[str, Form(max_length=64)],
) -> Response:
    p = _managed(db, who, project)
    result = service.place_students(db, who, p)
    db.commit()
    return redirect(
        f"/tutoring/groups?project={p.code}&placed={result.placed}&unplaced={result.unplaced}"
    )


# ----------------------------------------------------------------------- the journal


@router.get("/tutoring/journal")
def journal_page(
    request: Request,
    who: Journal,
    db: Db,
    clock: ClockDep,
    group: Annotated[str | None, Query(max_length=20)] = None,
    session: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    groups = service.journal_groups(db, who)
    chosen: Group | None = None
    lesson: Lesson | None = None
    gpk, spk = parse_id(group), parse_id(session)
    if spk is not None:
        lesson = db.get(Lesson, spk)
        ensure(lesson is not None)
        assert lesson is not None
        gpk = lesson.group_pk
    if gpk is not None:
        chosen = service.journal_group(db, who, gpk)
        ensure(chosen is not None)
    ctx: dict[str, Any] = {"groups": groups, "group": chosen, "lesson": lesson}
    if chosen is not None:
        members = service.group_members(db, chosen)
        ctx["members"] = members
        ctx["lessons"] = service.lessons_of(db, chosen)
        ctx["today"] = clock.school_today(None).isoformat()
        if lesson is not None:
            ctx["marks"] = service.attendance_of(db, lesson)
        service.audit_journal_view(db, who, members, f"journal of group #{chosen.pk}")
        db.commit()
    return render(request, "tutoring/journal.html", ctx)


@router.post("/tutoring/journal/session")
def journal_add_session(
    request: Request,
    who: Journal,
    db: Db,
    clock: ClockDep,
    group: Annotated[Id, Form()],
    held_on: Annotated[str, Form(max_length=10)],
    hours: Annotated[int, Form(ge=1, le=8)] = 2,
    topic: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    g = service.journal_group(db, who, group)
    ensure(g is not None)
    assert g is not None
    day = parse_day(held_on)
    if day is None:
        return _error(request, N_("A date as YYYY-MM-DD."))
    try:
        lesson = service.add_lesson(db, who, g, day, hours, topic, clock.school_today(None))
    except TutoringError:
        db.rollback()
        return _error(request, N_("The session cannot be in the future."))
    db.commit()
    return redirect(f"/tutoring/journal?session={lesson.pk}")


@router.post("/tutoring/journal/attendance")
async def journal_attendance(request: Request, who: Journal, db: Db) -> Response:
    form = await request.form()
    spk = parse_id(str(form.get("session", "")))
    lesson = db.get(Lesson, spk) if spk is not None else None
    ensure(lesson is not None)
    assert lesson is not None
    ensure(service.journal_group(db, who, lesson.group_pk) is not None)
    present = {parse_id(str(v)) for v in form.getlist("present")[:1000]}
    if None in present:
        return _error(request, N_("Not a member of this group."))
    try:
        service.mark_attendance(db, who, lesson, {p for p in present if p is not None})
    except TutoringError:
        db.rollback()
        return _error(request, N_("Not a member of this group."))
    db.commit()
    return redirect(f"/tutoring/journal?session={lesson.pk}&saved=1")


# ------------------------------------------------------------------------- the council


@router.get("/tutoring/council")
def council_page(request: Request, who: Council, db: Db, project: ProjectQ = None) -> Response:
    try:
        projects, p = _project(db, who, "tutoring.council", project)
    except _NoProject:
        return _empty(request)
    member = service.member_of(db, who, p)
    ctx: dict[str, Any] = {"projects": projects, "project": p, "member": member}
    ctx["criteria"] = service.criteria_of(db, p)
    if member is not None:
        ctx["applications"] = service.applications_of(db, p)
        ctx["scores"] = service.my_scores(db, member)
        ctx["conflicts"] = service.my_conflicts(db, member)
    db.commit()
    return render(request, "tutoring/council.html", ctx)


def _member_and_application(db: Db, who: Principal, volunteer: int) -> tuple[Any, Volunteer]:
    v = db.get(Volunteer, volunteer)
    ensure(v is not None)
    assert v is not None
    project = db.get_one(Project, v.project_pk)
    member = service.member_of(db, who, project)
    ensure(member is not None)
    return member, v


@router.post("/tutoring/council/score")
async def council_score(request: Request, who: Council, db: Db) -> Response:
    form = await request.form()
    vpk = parse_id(str(form.get("volunteer", "")))
    ensure(vpk is not None)
    assert vpk is not None
    member, v = _member_and_application(db, who, vpk)
    project = db.get_one(Project, v.project_pk)
    scores: dict[int, int] = {}
    for c in service.criteria_of(db, project):
        text = str(form.get(f"c{c.pk}", "")).strip()
        if not text.isdigit() or len(text) > 3:
            return _error(request, N_("Score every published criterion."))
        scores[c.pk] = int(text)
    try:
        service.save_scores(db, who, member, v, scores)
    except (TutoringError, ValueError):
        db.rollback()
        return _error(
            request,
            N_(
                "Scores are whole numbers from 0 to the criterion's maximum; a conflicted member does not score."
            ),
        )
    db.commit()
    return redirect(f"/tutoring/council?project={project.code}")


@router.post("/tutoring/council/conflict")
def council_conflict(
    request: Request,
    who: Council,
    db: Db,
    volunteer: Annotated[Id, Form()],
    reason: Annotated[str, Form(max_length=300)],
) -> Response:
    member, v = _member_and_application(db, who, volunteer)
    try:
        service.declare_conflict(db, who, member, v, reason)
    except TutoringError:
        db.rollback()
        return _error(request, N_("Write the reason of the conflict of interest."))
    db.commit()
    project = db.get_one(Project, v.project_pk)
    return redirect(f"/tutoring/council?project={project.code}")


@router.get("/tutoring/ranking")
def ranking_page(
    request: Request,
    who: View,
    db: Db,
    project: ProjectQ = None,
    places: Annotated[int, Query(ge=1, le=10000)] = 110,
) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/ranking.html",
        build=lambda p: {
            "ranking": service.council_ranking(db, p, places),
            "decisions": service.decisions_of(db, p),
            "places": places,
            "can_manage": service.may_see_project(who, "tutoring.manage", p),
        },
    )


def _managed(db: Db, who: Principal, code: str) -> Project:
    p = service.get_project(db, code)
    ensure(p is not None and service.may_see_project(who, "tutoring.manage", p))
    assert p is not None
    return p


@router.post("/tutoring/ranking/decide")
def ranking_decide(
    request: Request,
    who: Manage,
    db: Db,
    clock: ClockDep,
    project: Annotated[str, Form(max_length=64)],
    places: Annotated[int, Form(ge=1, le=10000)],
) -> Response:
    p = _managed(db, who, project)
    try:
        service.decide_selection(db, who, p, places, clock.school_today(None))
    except TutoringError:
        db.rollback()
        return _error(request, N_("No application is scored yet."))
    db.commit()
    return redirect(f"/tutoring/ranking?project={p.code}&places={places}")


PROTOCOL_LABELS = {
    "title": N_("Protocol of the expert council"),
    "date": N_("Date"),
    "members": N_("Council members"),
    "rank": N_("Rank"),
    "code": N_("Code"),
    "name": N_("Name"),
    "score": N_("Score, %"),
    "excluded": N_("Excluded for a conflict of interest"),
    "decision": N_("Selected"),
    "yes": N_("yes"),
    "no": N_("no"),
    "chair": N_("Chair of the council"),
    "secretary": N_("Secretary"),
}


@router.get("/tutoring/protocol")
def protocol(
    request: Request,
    who: View,
    db: Db,
    decision: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    pk = parse_id(decision)
    d = db.get(Decision, pk) if pk is not None else None
    ensure(d is not None)
    assert d is not None
    p = db.get_one(Project, d.project_pk)
    ensure(service.may_see_project(who, "tutoring.view", p))
    labels = {k: tr(request, v) for k, v in PROTOCOL_LABELS.items()}
    pdf = service.protocol_pdf(db, p, d, labels)
    return Response(
        pdf,
        media_type=PDF_TYPE,
        headers={"content-disposition": disposition("protocol", p.code, str(d.pk), ext="pdf")},
    )


# ------------------------------------------------------------------ indicators and awards


@router.get("/tutoring/indicators")
def indicators_page(
    request: Request,
    who: View,
    db: Db,
    project: ProjectQ = None,
    places: Annotated[int, Query(ge=1, le=1000)] = 35,
) -> Response:
    return _page(
        request,
        db,
        who,
        "tutoring.view",
        project,
        "tutoring/indicators.html",
        build=lambda p: {
            "indicators": service.indicators(db, p),
            "awards": service.award_ranking(db, p, places),
            "places": places,
            "can_manage": service.may_see_project(who, "tutoring.manage", p),
        },
    )


@router.post("/tutoring/awards/decide")
def awards_decide(
    request: Request,
    who: Manage,
    db: Db,
    clock: ClockDep,
    project: Annotated[str, Form(max_length=64)],
    places: Annotated[int, Form(ge=1, le=1000)],
) -> Response:
    p = _managed(db, who, project)
    try:
        service.decide_awards(db, who, p, places, clock.school_today(None))
    except TutoringError:
        db.rollback()
        return _error(request, N_("No selected volunteer to rank."))
    db.commit()
    return redirect(f"/tutoring/indicators?project={p.code}&places={places}")


# ------------------------------------------------------------------------------ the survey


@router.get("/tutoring/survey")
def survey_page(
    request: Request,
    who: Manage,
    db: Db,
    project: ProjectQ = None,
    by: Annotated[str, Query(max_length=16)] = "district",
) -> Response:
    if by not in SURVEY_BY:
        by = "district"

    def build(p: Project) -> dict[str, Any]:
        survey = service.ensure_survey(db, p)
        directions, _subjects = service.survey_choices(db, survey)
        return {
            "survey": survey,
            "summary": service.survey_summary(db, survey, by),
            "by": by,
            "groupings": SURVEY_BY,
            "direction_names": {d.code: d.name for d in directions},
            "links": [],
        }

    return _page(request, db, who, "tutoring.manage", project, "tutoring/survey.html", build=build)


@router.post("/tutoring/survey/links")
def survey_links(
    request: Request,
    who: Manage,
    db: Db,
    project: Annotated[str, Form(max_length=64)],
    district: Annotated[str, Form(max_length=100)],
    school: Annotated[str, Form(max_length=200)],
    grade: Annotated[int, Form(ge=1, le=12)],
    count: Annotated[int, Form(ge=1, le=service.MAX_LINKS)] = 1,
) -> Response:
    p = _managed(db, who, project)
    survey = service.ensure_survey(db, p)
    try:
        tokens = service.create_links(db, who, survey, district, school, grade, count)
    except TutoringError:
        db.rollback()
        return _error(request, N_("Fill the district, the school and the grade."))
    db.commit()
    base = str(request.base_url).rstrip("/")
    directions, _subjects = service.survey_choices(db, survey)
    return render(
        request,
        "tutoring/survey.html",
        {
            "projects": service.visible_projects(db, who, "tutoring.manage"),
            "project": p,
            "survey": survey,
            "summary": service.survey_summary(db, survey, "district"),
            "by": "district",
            "groupings": SURVEY_BY,
            "direction_names": {d.code: d.name for d in directions},
            "links": [f"{base}/tutoring/s/{t}" for t in tokens],
        },
    )


def _prelogin(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:
    pre = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(24)
    request.cookies[PRELOGIN_COOKIE] = pre  # render() puts it in the form
    response = render(request, template, ctx, status)
    response.set_cookie(PRELOGIN_COOKIE, pre, httponly=True, samesite="strict")
    return response


def _link_gone(request: Request) -> Response:
    return render(
        request,
        "error.html",
        {"code": 410, "message": tr(request, "This survey link was used or does not exist.")},
        410,
    )


@router.get("/tutoring/s/{token}")
def survey_form(request: Request, db: Db, token: str) -> Response:
    found = service.open_link(db, token[:100])
    if found is None:
        return _link_gone(request)
    _link, survey = found
    directions, subjects = service.survey_choices(db, survey)
    return _prelogin(
        request,
        "tutoring/survey_form.html",
        {"survey": survey, "directions": directions, "subjects": subjects, "token": token},
    )


@router.post("/tutoring/s/{token}")
async def survey_answer(request: Request, db: Db, token: str) -> Response:
    form = await request.form()
    sent = str(form.get("csrf", ""))
    pre = request.cookies.get(PRELOGIN_COOKIE, "")
    if not pre or not secrets.compare_digest(pre, sent):
        return _error(request, N_("The form has expired. Try again."), 400)
    found = service.open_link(db, token[:100])
    if found is None:
        return _link_gone(request)

    def many(name: str) -> list[str]:
        return [str(v)[:200] for v in form.getlist(name)[:100]]

    try:
        service.answer_survey(db, token[:100], many("direction"), many("subject"), many("time"))
    except TutoringError:
        db.rollback()
        _link, survey = found
        directions, subjects = service.survey_choices(db, survey)
        return _prelogin(
            request,
            "tutoring/survey_form.html",
            {
                "survey": survey,
                "directions": directions,
                "subjects": subjects,
                "token": token,
                "error": tr(request, "Choose at least one direction."),
            },
            422,
        )
    db.commit()
    return render(request, "tutoring/survey_done.html", {})
