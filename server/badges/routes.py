"""Badge module pages: the public application, the participant's own pages and offline
journal, staff pages (participants in scope, decisions, reviews), centres, books, awards and
the public credential verification. Routes stay thin: services decide, scope is the module's
assignment (``service.participants_in_scope``)."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import func, select

from server.accounts.access import Principal
from server.accounts.service import AccountError
from server.audit.service import audit
from server.badges import awards as award_service
from server.badges import service as svc
from server.badges.models import (
    Application,
    Book,
    Centre,
    Entry,
    IssuedCredential,
    Media,
    Participant,
    Partner,
    Proposal,
    Requirement,
    Staff,
    StaffKind,
)
from server.clock import ClockDep
from server.console.params import Id
from server.console.web import (
    PRELOGIN_COOKIE,
    Db,
    NotFound,
    Settings,
    any_user,
    ensure,
    nav_item,
    redirect,
    render,
    require,
    tr,
)
from server.models import Region

router = APIRouter()
nav_item("badges.participate", "/badges/me", "My medal programme", 60)
nav_item("badges.view", "/badges", "Elbasy Medal", 60)
nav_item("badges.centre", "/badges/applications", "Medal applications", 61)
nav_item("badges.manage", "/badges/awards", "Medal awards", 62)

N_ = str
DIRECTION_LABELS = {
    "sport": N_("Sport and physical culture"),
    "talents": N_("Talents and skills"),
    "volunteering": N_("Volunteering"),
    "reading": N_("Book reading"),
    "heritage": N_("National heritage"),
    "trip": N_("Tourist trips"),
    "work": N_("Work experience"),
}
LEVEL_LABELS = {"bronze": N_("Bronze"), "silver": N_("Silver"), "gold": N_("Gold")}
SECTION_LABELS = {
    "kazakh": N_("Kazakh literature's golden collection"),
    "world": N_("World literature's golden collection"),
    "growth": N_("Personal growth and popular science"),
}
STATUS_LABELS = {
    "pending": N_("pending"),
    "confirmed": N_("confirmed"),
    "rejected": N_("rejected"),
    "extra_task": N_("extra task"),
    "applied": N_("applied"),
    "approved": N_("approved"),
    "active": N_("active"),
    "registered": N_("registered"),
    "lapsed": N_("lapsed"),
    "submitted": N_("submitted"),
}
# words shown through the ``t`` filter (stored values)
VALUE_LABELS = (
    N_("participant"),
    N_("representative"),
    N_("centre"),
    N_("mentor"),
    N_("expert"),
    N_("coordinator"),
    N_("centre_head"),
    N_("review"),
    N_("award"),
    N_("decline"),
    N_("for"),
    N_("against"),
    N_("volunteering"),
    N_("trip"),
    N_("work"),
)
SW_FILE = Path(__file__).resolve().parent / "sw.js"

BASE_CTX = {
    "directions": DIRECTION_LABELS,
    "levels": LEVEL_LABELS,
    "sections": SECTION_LABELS,
    "statuses": STATUS_LABELS,
}


def _today(clock: ClockDep) -> dt.date:
    return clock.today_in(None)


def _page(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:
    return render(request, template, BASE_CTX | ctx, status)


def _participant(db: Db, who: Principal, pk: int) -> Participant:
    p = svc.participant_in_scope(db, who, pk)
    if p is None:
        raise NotFound()
    return p


def _entry(db: Db, who: Principal, pk: int) -> tuple[Entry, Participant]:
    e = db.get(Entry, pk)
    ensure(e is not None)
    assert e is not None
    return e, _participant(db, who, e.participant_pk)


# ---------------------------------------------------------------- public application


def _regions(db: Db) -> list[Region]:
    return list(db.scalars(select(Region).order_by(Region.name)))


@router.get("/badges/apply")
def apply_page(request: Request, db: Db) -> Response:
    """The public application form; its CSRF token is a double-submit cookie (no session)."""
    pre = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(24)
    request.cookies[PRELOGIN_COOKIE] = pre  # render() puts it in the form
    response = _page(
        request, "badges/apply.html", {"regions": _regions(db), "form": {}, "error": None}
    )
    response.set_cookie(PRELOGIN_COOKIE, pre, httponly=True, samesite="strict")
    return response


@router.post("/badges/apply")
async def apply_submit(request: Request, db: Db, clock: ClockDep) -> Response:
    form = await request.form()
    pre = request.cookies.get(PRELOGIN_COOKIE, "")
    sent = str(form.get("csrf", ""))
    if not pre or not secrets.compare_digest(pre, sent):
        return render(
            request,
            "error.html",
            {
                "code": 403,
                "message": "The form has expired. Go back, reload the page and try again.",
            },
            403,
        )
    raw: dict[str, Any] = {k: str(v)[:2000] for k, v in form.items() if k != "directions"}
    raw["directions"] = [str(v)[:20] for v in form.getlist("directions")][:10]
    today = _today(clock)
    try:
        parsed = svc.parse_application(raw, today)
        a = svc.submit_application(db, parsed, today, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _page(
            request,
            "badges/apply.html",
            {"regions": _regions(db), "form": raw, "error": err},
            400,
        )
    db.commit()
    return _page(request, "badges/applied.html", {"application": a})


# -------------------------------------------------------------------- participant's own


def _own(db: Db, who: Principal) -> Participant:
    p = svc.own_participant(db, who)
    if p is None:
        raise NotFound()
    return p


def _me_page(
    request: Request, db: Db, who: Principal, clock: ClockDep, error: Any = None, status: int = 200
) -> Response:
    p = _own(db, who)
    today = _today(clock)
    mentor = db.get(Staff, p.mentor_pk) if p.mentor_pk else None
    from server.accounts.models import User

    ctx = {
        "p": p,
        "agreements": svc.agreements_of(db, p),
        "agreement_version": svc.AGREEMENT_VERSION,
        "agreement_done": svc.agreement_complete(db, p, today),
        "needs_rep": svc.needs_representative(p, today),
        "schedules": svc.schedules_of(db, p),
        "evaluation": svc.evaluation(db, p, today) if p.status == "active" else None,
        "mentor_name": db.get_one(User, mentor.user_pk).full_name if mentor else None,
        "is_self": p.user_pk == who.user_pk,
        "awards": award_service.awards_of(db, p),
        "entries": svc.entries_of(db, p)[:50],
        "error": error,
    }
    return _page(request, "badges/me.html", ctx, status)


@router.get("/badges/me")
def me(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
) -> Response:
    return _me_page(request, db, who, clock)


@router.post("/badges/me/agreement")
def me_sign(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
    signer_name: Annotated[str, Form(max_length=200)] = "",
    accept: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    p = _own(db, who)
    try:
        if accept != "yes":
            raise svc.BadgeError(N_("Tick the box to accept the agreement."), "accept")
        svc.sign_agreement(db, who, p, signer_name, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _me_page(request, db, who, clock, err, 400)
    db.commit()
    return redirect("/badges/me")


@router.post("/badges/me/schedule/{schedule_pk}")
def me_agree_schedule(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
    schedule_pk: Id,
) -> Response:
    p = _own(db, who)
    s = next((s for s in svc.schedules_of(db, p) if s.pk == schedule_pk), None)
    ensure(s is not None)
    assert s is not None
    try:
        svc.agree_schedule(db, who, p, s, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _me_page(request, db, who, clock, err, 400)
    db.commit()
    return redirect("/badges/me")


@router.post("/badges/me/rate")
def me_rate(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
    score: Annotated[int, Form(ge=1, le=5)],
) -> Response:
    p = _own(db, who)
    try:
        svc.rate_mentor(db, who, p, score, _today(clock))
    except svc.BadgeError as err:
        db.rollback()
        return _me_page(request, db, who, clock, err, 400)
    db.commit()
    return redirect("/badges/me")


@router.post("/badges/me/entries/{entry_pk}/media")
async def me_media(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
    entry_pk: Id,
    file: Annotated[UploadFile, File()],
) -> Response:
    """A photo or short video of one of the participant's own entries (after it was uploaded)."""
    p = _own(db, who)
    e = db.get(Entry, entry_pk)
    ensure(e is not None and e.participant_pk == p.pk)
    assert e is not None
    data = await file.read(svc.MAX_MEDIA_BYTES + 1)
    try:
        svc.add_media(db, who, p, e, file.content_type or "", data)
    except svc.BadgeError as err:
        db.rollback()
        return _me_page(request, db, who, clock, err, 400)
    db.commit()
    return redirect("/badges/me")


@router.get("/badges/media/{media_pk}")
def media_file(db: Db, who: Annotated[Principal, require("badges.view")], media_pk: Id) -> Response:
    """A photo or video of an entry, for the staff who reach the participant."""
    m = db.get(Media, media_pk)
    ensure(m is not None)
    assert m is not None
    e = db.get_one(Entry, m.entry_pk)
    _participant(db, who, e.participant_pk)
    return Response(m.data, media_type=m.content_type, headers={"Cache-Control": "no-store"})


@router.get("/badges/me/journal")
def journal_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
) -> Response:
    """The offline journal: a page the service worker keeps, entries in IndexedDB until they
    are uploaded (``/badges/api/entries``)."""
    p = _own(db, who)
    return _page(
        request,
        "badges/journal.html",
        {
            "p": p,
            "today": _today(clock).isoformat(),
            "is_self": p.user_pk == who.user_pk,
            # the script shows stored values in the page's language
            "labels": {k: tr(request, v) for k, v in (DIRECTION_LABELS | STATUS_LABELS).items()},
        },
    )


def _entry_json(e: Entry) -> dict[str, Any]:
    return {
        "key": e.idem_key,
        "direction": e.direction,
        "date": e.entry_date.isoformat(),
        "written_at_ms": e.written_at_ms,
        "received_at_ms": e.received_at_ms,
        "hours": str(e.hours) if e.hours is not None else None,
        "days": e.days,
        "book": e.book_title,
        "status": e.status,
        "reason": e.reason,
        "extra_task": e.extra_task,
    }


@router.get("/badges/api/entries")
def api_entries(db: Db, who: Annotated[Principal, require("badges.participate")]) -> Response:
    p = _own(db, who)
    return JSONResponse({"entries": [_entry_json(e) for e in svc.entries_of(db, p)[:500]]})


@router.post("/badges/api/entries")
def api_upload(
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.participate")],
    entries: Annotated[list[dict[str, Any]], Body(embed=True, max_length=100)],
) -> Response:
    """Upload entries written (perhaps offline) on the journal page. Each is stored once by
    its key; the answer lists every key the server now holds, new or already stored, so the
    page marks them sent. A refused entry is reported with its field and stored nowhere."""
    p = _own(db, who)
    if p.user_pk != who.user_pk:
        return JSONResponse({"detail": "only the participant writes the journal"}, 403)
    stored: list[str] = []
    refused: list[dict[str, str]] = []
    now = clock.now_ms()
    for raw in entries:
        try:
            form = svc.parse_entry(raw, now)
            _e, _created = svc.add_entry(db, p, form, now)
        except svc.BadgeError as err:
            key = raw.get("key") if isinstance(raw, dict) else None
            refused.append(
                {"key": str(key)[:64] if key else "", "field": err.field, "message": err.message}
            )
            continue
        stored.append(form.idem_key)
    db.commit()
    return JSONResponse({"stored": stored, "refused": refused})


@router.get("/badges/sw.js")
def service_worker() -> Response:
    """The journal's service worker, served under /badges/ so that its scope covers the
    journal page (a worker's scope is at most its own directory)."""
    return Response(
        SW_FILE.read_bytes(),
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/badges/"},
    )


# -------------------------------------------------------------------------- staff pages


@router.get("/badges")
def dashboard(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.view")],
) -> Response:
    today = _today(clock)
    participants = list(
        db.scalars(svc.participants_in_scope(db, who).order_by(Participant.full_name).limit(500))
    )
    rows = []
    by_level: dict[str, list[float]] = {}
    by_region: dict[str, list[float]] = {}
    for p in participants:
        ev = svc.evaluation(db, p, today) if p.status == "active" else None
        rows.append((p, ev))
        if ev is not None:
            by_level.setdefault(p.level, []).append(float(ev["rating"]))
            by_region.setdefault(p.region_id, []).append(float(ev["rating"]))
    mentor_pks = {p.mentor_pk for p in participants if p.mentor_pk is not None}
    mentors = list(db.scalars(select(Staff).where(Staff.pk.in_(mentor_pks)))) if mentor_pks else []
    experts = {m.expert_pk for m in mentors if m.expert_pk is not None}
    ctx = {
        "rows": rows,
        "counts": {
            "participants": len(participants),
            "mentors": len(mentors),
            "experts": len(experts),
            "coordinators": db.scalar(
                select(func.count(Staff.pk)).where(
                    Staff.kind == StaffKind.COORDINATOR.value,
                    Staff.region_id.in_({p.region_id for p in participants} or {""}),
                )
            ),
        },
        "by_level": {k: round(sum(v) / len(v), 1) for k, v in sorted(by_level.items())},
        "by_region": {k: round(sum(v) / len(v), 1) for k, v in sorted(by_region.items())},
        "mentor_averages": {m.pk: svc.mentor_average(db, m.pk) for m in mentors},
        "mentor_names": award_service.user_names(db, [m.user_pk for m in mentors]),
        "mentors": mentors,
        "may_review": who.can("badges.review"),
    }
    return _page(request, "badges/dashboard.html", ctx)


def _participant_page(
    request: Request,
    db: Db,
    who: Principal,
    p: Participant,
    clock: ClockDep,
    error: Any = None,
    status: int = 200,
) -> Response:
    today = _today(clock)
    entries = svc.entries_of(db, p)
    staff = list(
        db.scalars(select(Staff).where(Staff.region_id == p.region_id, Staff.kind != "centre_head"))
    )
    ctx = {
        "p": p,
        "entries": entries,
        "decisions": {e.pk: svc.decisions_of(db, e) for e in entries},
        "media": award_service.media_of(db, entries),
        "schedules": svc.schedules_of(db, p),
        "agreements": svc.agreements_of(db, p),
        "agreement_done": svc.agreement_complete(db, p, today),
        "evaluation": svc.evaluation(db, p, today) if p.status == "active" else None,
        "is_supervisor": svc.supervisor_of(db, who, p) is not None,
        "may_review": svc.may_review(db, who, p) and who.can("badges.review"),
        "may_propose": who.can("badges.centre"),
        "may_manage": who.can("badges.manage"),
        "staff": staff,
        "staff_names": award_service.user_names(db, [s.user_pk for s in staff]),
        "requirement": db.scalars(
            select(Requirement).where(Requirement.participant_pk == p.pk)
        ).first(),
        "awards": award_service.awards_of(db, p),
        "error": error,
    }
    return _page(request, "badges/participant.html", ctx, status)


@router.get("/badges/participants/{pk}")
def participant_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.view")],
    pk: Id,
) -> Response:
    p = _participant(db, who, pk)
    audit(db, who, "view", "badge_participant", summary=f"participant {p.pk} card and journal")
    db.commit()
    return _participant_page(request, db, who, p, clock)


def _act(
    request: Request, db: Db, who: Principal, p: Participant, clock: ClockDep, fn: Any
) -> Response:
    try:
        fn()
    except svc.BadgeError as err:
        db.rollback()
        return _participant_page(request, db, who, p, clock, err, 400)
    db.commit()
    return redirect(f"/badges/participants/{p.pk}")


@router.post("/badges/participants/{pk}/schedule")
def participant_schedule(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.decide")],
    pk: Id,
    direction: Annotated[str, Form(max_length=16)],
    plan: Annotated[str, Form(max_length=1000)],
    hours_per_week: Annotated[str, Form(max_length=10)] = "1",
) -> Response:
    p = _participant(db, who, pk)
    return _act(
        request,
        db,
        who,
        p,
        clock,
        lambda: svc.set_schedule(db, who, p, direction, plan, hours_per_week, clock.now_ms()),
    )


@router.post("/badges/participants/{pk}/activate")
def participant_activate(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.decide")],
    pk: Id,
) -> Response:
    p = _participant(db, who, pk)
    return _act(request, db, who, p, clock, lambda: svc.activate(db, who, p, _today(clock)))


@router.post("/badges/entries/{entry_pk}/decide")
def entry_decide(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.decide")],
    entry_pk: Id,
    action: Annotated[str, Form(max_length=10)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    e, p = _entry(db, who, entry_pk)
    return _act(
        request,
        db,
        who,
        p,
        clock,
        lambda: svc.decide_entry(db, who, e, action, note, clock.now_ms()),
    )


@router.post("/badges/entries/{entry_pk}/overturn")
def entry_overturn(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.review")],
    entry_pk: Id,
    status: Annotated[str, Form(max_length=10)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    e, p = _entry(db, who, entry_pk)
    return _act(
        request, db, who, p, clock, lambda: svc.overturn(db, who, e, status, note, clock.now_ms())
    )


@router.post("/badges/participants/{pk}/reassign")
def participant_reassign(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.review")],
    pk: Id,
    to: Annotated[Id, Form()],
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    p = _participant(db, who, pk)
    target = db.get(Staff, to)

    def run() -> None:
        if target is None or target.region_id != p.region_id:
            raise svc.BadgeError(N_("Choose a present mentor, expert or coordinator."), "to")
        svc.reassign(db, who, p, target, reason, clock.now_ms())

    return _act(request, db, who, p, clock, run)


@router.post("/badges/staff/{staff_pk}/absent")
def staff_absent(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("badges.review")],
    staff_pk: Id,
    absent: Annotated[str, Form(max_length=3)] = "yes",
) -> Response:
    s = db.get(Staff, staff_pk)
    ensure(s is not None)
    assert s is not None
    try:
        svc.set_absent(db, who, s, absent == "yes")
    except svc.BadgeError as err:
        db.rollback()
        return render(request, "error.html", {"code": 400, "message": err.message}, 400)
    db.commit()
    return redirect("/badges")


@router.post("/badges/participants/{pk}/requirements")
def participant_requirements(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.manage")],
    pk: Id,
    requirements: Annotated[str, Form(max_length=2000)],
    basis: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    p = _participant(db, who, pk)
    return _act(
        request,
        db,
        who,
        p,
        clock,
        lambda: svc.set_requirements(db, who, p, requirements, basis, clock.now_ms()),
    )


@router.post("/badges/participants/{pk}/propose")
def participant_propose(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.centre")],
    pk: Id,
) -> Response:
    p = _participant(db, who, pk)
    return _act(
        request, db, who, p, clock, lambda: svc.propose(db, who, p, _today(clock), clock.now_ms())
    )


# ---------------------------------------------------------------- applications, centres


def _applications_page(
    request: Request,
    db: Db,
    who: Principal,
    clock: ClockDep,
    error: Any = None,
    invites: list[str] | None = None,
    status: int = 200,
) -> Response:
    today = _today(clock)
    centres = list(db.scalars(select(Centre).order_by(Centre.name)))
    ctx = {
        "applications": svc.applications_in_scope(db, who),
        "today": today,
        "overdue": svc.is_overdue,
        "centres": centres,
        "centre_state": {c.pk: svc.centre_state(c, today) for c in centres},
        "regions": _regions(db),
        "books": list(db.scalars(select(Book).order_by(Book.section, Book.title))),
        "partners": list(db.scalars(select(Partner).order_by(Partner.name))),
        "may_manage": who.can("badges.manage"),
        "error": error,
        "invites": invites or [],
    }
    return _page(request, "badges/applications.html", ctx, status)


@router.get("/badges/applications")
def applications(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.centre")],
) -> Response:
    return _applications_page(request, db, who, clock)


@router.post("/badges/applications/{application_pk}/decide")
def application_decide(
    request: Request,
    db: Db,
    clock: ClockDep,
    settings: Settings,
    who: Annotated[Principal, require("badges.centre")],
    application_pk: Id,
    decision: Annotated[str, Form(max_length=10)],
    reason: Annotated[str, Form(max_length=500)] = "",
    login: Annotated[str, Form(max_length=100)] = "",
    representative_login: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    a = db.get(Application, application_pk)
    ensure(a is not None)
    assert a is not None
    _participant(db, who, a.participant_pk)
    links: list[str] = []
    try:
        svc.decide_application(db, who, a, decision == "approve", reason, clock.now_ms())
        if decision == "approve":
            links = award_service.invite_participant(
                db, who, a, login, representative_login, _today(clock), settings
            )
    except (svc.BadgeError, AccountError) as err:
        db.rollback()
        msg = err if isinstance(err, svc.BadgeError) else svc.BadgeError(str(err), "login")
        return _applications_page(request, db, who, clock, msg, status=400)
    db.commit()
    return _applications_page(request, db, who, clock, invites=links)


@router.post("/badges/centres")
def centre_create(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.manage")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    region_id: Annotated[str, Form(max_length=64)],
    place: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if db.get(Region, region_id) is None:
        return _applications_page(
            request, db, who, clock, svc.BadgeError(N_("Choose a region."), "region_id"), status=400
        )
    db.add(
        Centre(
            name=name.strip(),
            region_id=region_id,
            place=place.strip(),
            created_at_ms=clock.now_ms(),
        )
    )
    audit(db, who, "create", "badge_centre", summary="centre application")
    db.commit()
    return redirect("/badges/applications")


@router.post("/badges/centres/{centre_pk}/approve")
def centre_approve(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.manage")],
    centre_pk: Id,
) -> Response:
    c = db.get(Centre, centre_pk)
    ensure(c is not None)
    assert c is not None
    try:
        svc.approve_centre(db, who, c, _today(clock))
    except svc.BadgeError as err:
        db.rollback()
        return _applications_page(request, db, who, clock, err, status=400)
    db.commit()
    return redirect("/badges/applications")


@router.post("/badges/centres/{centre_pk}/sign")
def centre_sign(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.centre")],
    centre_pk: Id,
    signer: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    c = db.get(Centre, centre_pk)
    heads = {s.centre_pk for s in svc.staff_of(db, who.user_pk, StaffKind.CENTRE_HEAD)}
    ensure(c is not None and (who.can("badges.manage") or c.pk in heads))
    assert c is not None
    try:
        svc.sign_centre_agreement(db, who, c, signer, _today(clock), clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _applications_page(request, db, who, clock, err, status=400)
    db.commit()
    return redirect("/badges/applications")


@router.post("/badges/books")
def book_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.manage")],
    section: Annotated[str, Form(max_length=8)],
    title: Annotated[str, Form(min_length=1, max_length=300)],
) -> Response:
    try:
        award_service.add_book(db, who, section, title, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _applications_page(request, db, who, clock, err, status=400)
    db.commit()
    return redirect("/badges/applications")


@router.post("/badges/partners")
def partner_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.centre")],
    centre_pk: Annotated[Id, Form()],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(max_length=16)],
) -> Response:
    heads = {s.centre_pk for s in svc.staff_of(db, who.user_pk, StaffKind.CENTRE_HEAD)}
    c = db.get(Centre, centre_pk)
    ensure(c is not None and (who.can("badges.manage") or c.pk in heads))
    if kind not in ("volunteering", "trip", "work"):
        return _applications_page(
            request, db, who, clock, svc.BadgeError(N_("Choose the kind."), "kind"), status=400
        )
    db.add(Partner(centre_pk=centre_pk, name=name.strip(), kind=kind, created_at_ms=clock.now_ms()))
    audit(db, who, "create", "badge_partner", summary=f"centre {centre_pk}")
    db.commit()
    return redirect("/badges/applications")


@router.post("/badges/staff")
def staff_invite(
    request: Request,
    db: Db,
    clock: ClockDep,
    settings: Settings,
    who: Annotated[Principal, require("badges.centre")],
    centre_pk: Annotated[Id, Form()],
    login: Annotated[str, Form(min_length=1, max_length=100)],
    full_name: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(max_length=16)],
    email: Annotated[str, Form(max_length=200)] = "",
    expert_pk: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Invite a mentor, expert or coordinator of a centre: a console user with a one-time
    link, a password set at first sign-in."""
    heads = {s.centre_pk for s in svc.staff_of(db, who.user_pk, StaffKind.CENTRE_HEAD)}
    c = db.get(Centre, centre_pk)
    ensure(c is not None and (who.can("badges.manage") or c.pk in heads))
    assert c is not None
    try:
        link = award_service.invite_staff(
            db, who, c, login, full_name, kind, email, expert_pk, settings
        )
    except (svc.BadgeError, AccountError) as err:
        db.rollback()
        msg = err if isinstance(err, svc.BadgeError) else svc.BadgeError(str(err), "login")
        return _applications_page(request, db, who, clock, msg, status=400)
    db.commit()
    return _applications_page(request, db, who, clock, invites=[link])


# ------------------------------------------------------------------- awards, commission


def _awards_page(
    request: Request, db: Db, who: Principal, error: Any = None, status: int = 200
) -> Response:
    from server.accounts.models import User

    proposals = list(db.scalars(select(Proposal).order_by(Proposal.pk.desc()).limit(200)))
    ctx = {
        "proposals": [
            (pr, db.get_one(Participant, pr.participant_pk), svc.members_of(db, pr))
            for pr in proposals
        ],
        "names": {u.pk: u.full_name for u in db.scalars(select(User))},
        "credentials": award_service.credentials(db),
        "me": who.user_pk,
        "error": error,
    }
    return _page(request, "badges/awards.html", ctx, status)


@router.get("/badges/awards")
def awards(
    request: Request, db: Db, who: Annotated[Principal, require("badges.manage")]
) -> Response:
    return _awards_page(request, db, who)


def _proposal(db: Db, pk: int) -> Proposal:
    pr = db.get(Proposal, pk)
    if pr is None:
        raise NotFound()
    return pr


@router.post("/badges/proposals/{proposal_pk}/commission")
def proposal_commission(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("badges.manage")],
    proposal_pk: Id,
    members: Annotated[str, Form(max_length=500)],
    interview_at: Annotated[str, Form(max_length=32)],
    interview_link: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    pr = _proposal(db, proposal_pk)
    try:
        pks = award_service.member_pks(db, members)
        svc.set_commission(db, who, pr, pks, interview_at, interview_link)
    except svc.BadgeError as err:
        db.rollback()
        return _awards_page(request, db, who, err, 400)
    db.commit()
    return redirect("/badges/awards")


@router.post("/badges/proposals/{proposal_pk}/vote")
def proposal_vote(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, any_user()],
    proposal_pk: Id,
    vote: Annotated[str, Form(max_length=8)],
) -> Response:
    """A member of the proposal's commission votes (anyone else: 404)."""
    pr = _proposal(db, proposal_pk)
    ensure(any(m.user_pk == who.user_pk for m in svc.members_of(db, pr)))
    try:
        svc.vote(db, who, pr, vote, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return render(request, "error.html", {"code": 400, "message": err.message}, 400)
    db.commit()
    return redirect("/badges/awards" if who.can("badges.manage") else "/")


@router.post("/badges/proposals/{proposal_pk}/decide")
def proposal_decide(
    request: Request,
    db: Db,
    clock: ClockDep,
    settings: Settings,
    who: Annotated[Principal, require("badges.manage")],
    proposal_pk: Id,
) -> Response:
    pr = _proposal(db, proposal_pk)
    try:
        award = svc.decide_proposal(db, who, pr, _today(clock), clock.now_ms())
        if award is not None:
            award_service.issue(db, award, settings.console_base_url, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _awards_page(request, db, who, err, 400)
    db.commit()
    return redirect("/badges/awards")


@router.post("/badges/credentials/{credential_id}/revoke")
def credential_revoke(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("badges.manage")],
    credential_id: str,
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    c = db.get(IssuedCredential, award_service.full_id(credential_id))
    ensure(c is not None)
    assert c is not None
    try:
        award_service.revoke(db, who, c, reason, clock.now_ms())
    except svc.BadgeError as err:
        db.rollback()
        return _awards_page(request, db, who, err, 400)
    db.commit()
    return redirect("/badges/awards")


# ---------------------------------------------------------------- public verification


@router.get("/badges/verify/{credential_id}")
def verify_page(
    request: Request, db: Db, settings: Settings, clock: ClockDep, credential_id: str
) -> Response:
    """Anyone holding the certificate's QR code checks it here, without signing in."""
    c = db.get(IssuedCredential, award_service.full_id(credential_id))
    if c is None:
        return _page(request, "badges/verify.html", {"c": None, "result": None}, 404)
    result = award_service.verify(db, c, settings.console_base_url, clock.now_ms())
    return _page(request, "badges/verify.html", {"c": c, "result": result})


@router.get("/badges/credentials/{credential_id}/credential.json")
def credential_json(db: Db, credential_id: str) -> Response:
    c = db.get(IssuedCredential, award_service.full_id(credential_id))
    if c is None:
        return JSONResponse({"detail": "not found"}, 404)
    return Response(
        c.document,
        media_type="application/vc+jwt" if not c.document.startswith("{") else "application/json",
        headers={"Content-Disposition": 'attachment; filename="credential.jwt"'},
    )


@router.get("/badges/credentials/{credential_id}/certificate.pdf")
def credential_pdf(db: Db, settings: Settings, credential_id: str) -> Response:
    c = db.get(IssuedCredential, award_service.full_id(credential_id))
    if c is None:
        return JSONResponse({"detail": "not found"}, 404)
    pdf = award_service.certificate_pdf(db, c, settings.console_base_url)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": 'attachment; filename="certificate.pdf"'},
    )


@router.get("/badges/status-list")
def status_list(db: Db, settings: Settings) -> Response:
    """The revocation status list (public): which issued credentials are revoked."""
    return JSONResponse(award_service.status_list(db, settings.console_base_url))
