"""Sign-in, sign-out, invitations, password change, language, the home page, user management."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select

from server.accounts.access import SCOPE_OF_ROLE, Grant, Principal, Role
from server.accounts.models import RoleGrant, User
from server.accounts.passwords import WeakPassword
from server.accounts.service import (
    AccountError,
    accept_invitation,
    change_password,
    close_session,
    create_user,
    invitation_user,
    invite,
    open_session,
    sign_in,
)
from server.accounts.throttle import LoginThrottle
from server.console import i18n
from server.console.scope import schools_in_scope
from server.console.web import (
    LANG_COOKIE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    Db,
    Forbidden,
    Settings,
    nav_item,
    redirect,
    render,
    request_lang,
    require,
    signed_in,
    tr,
)
from server.models import School
from server.people.models import SchoolClass

router = APIRouter()
nav_item("users.manage", "/users", "Users", 90)

# Roles a user of each role may grant (scope still applies: only within their own region/school).
GRANTABLE: dict[Role, set[Role]] = {
    Role.OPERATOR: set(Role),
    Role.REGIONAL_OPERATOR: {
        Role.SCHOOL_ADMIN,
        Role.DUTY_DEPUTY,
        Role.CLASS_TEACHER,
        Role.SOCIAL_PEDAGOGUE,
        Role.SENIOR_COUNSELLOR,
        Role.CANTEEN_MANAGER,
        Role.GIFTED_COORDINATOR,
        Role.LIBRARIAN,
        Role.EQUIPMENT_OFFICER,
    },
    Role.SCHOOL_ADMIN: {
        Role.DUTY_DEPUTY,
        Role.CLASS_TEACHER,
        Role.SOCIAL_PEDAGOGUE,
        Role.SENIOR_COUNSELLOR,
        Role.CANTEEN_MANAGER,
        Role.GIFTED_COORDINATOR,
        Role.LIBRARIAN,
        Role.EQUIPMENT_OFFICER,
    },
}


def _safe_next(target: str | None) -> str:
    """Only a local path: an open redirect would let a phishing link land on a copy of us.
    Browsers read a backslash as ``/`` and drop tabs and newlines, so a slash followed by a
    backslash or a tab and ``/evil.example`` means ``//evil.example``; encoded forms are checked
    decoded too."""
    if not target:
        return "/"
    probe = target
    for _ in range(3):
        probe = unquote(probe)
    if (
        not target.startswith("/")
        or "\\" in probe
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in probe)
        or probe.startswith("//")
    ):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def _set_session(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.console_session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=settings.console_secure_cookies,
    )


def _prelogin_form(request: Request, template: str, context: dict[str, object]) -> Response:
    """A form for someone not signed in: its CSRF token is a double-submit cookie."""
    pre = request.cookies.get(PRELOGIN_COOKIE) or secrets.token_urlsafe(24)
    request.cookies[PRELOGIN_COOKIE] = pre  # render() puts it in the form
    response = render(request, template, context)
    response.set_cookie(PRELOGIN_COOKIE, pre, httponly=True, samesite="strict")
    return response


def _prelogin_ok(request: Request, sent: str) -> bool:
    pre = request.cookies.get(PRELOGIN_COOKIE, "")
    return bool(pre) and secrets.compare_digest(pre, sent)


def _invitation_gone(request: Request) -> Response:
    return render(
        request,
        "error.html",
        {"code": 410, "message": "This invitation link is not valid (used or expired)."},
        410,
    )


@router.get("/login")
def login_page(request: Request, db: Db, next: str = "/") -> Response:
    # A form nobody can sign in with says so before the password is typed: with the database
    # unreachable this raises, and the console answers 503 (server.console.outage).
    db.execute(select(1))
    return _prelogin_form(request, "accounts/login.html", {"next": _safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    db: Db,
    settings: Settings,
    login: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    if not _prelogin_ok(request, csrf):
        return render(
            request,
            "accounts/login.html",
            {"next": _safe_next(next), "error": tr(request, "The form has expired. Try again.")},
            403,
        )
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client is not None else ""
    result = sign_in(db, throttle, login, password, address)
    user = result.user
    if user is None:
        db.commit()  # the audit entry of the failure
        error = tr(request, "Wrong login or password.")
        if result.wait_s:
            error = tr(
                request, "Too many failed sign-ins: wait {seconds} seconds and try again."
            ).format(seconds=result.wait_s)
        return render(
            request,
            "accounts/login.html",
            {"next": _safe_next(next), "error": error},
            429 if result.wait_s else 401,
        )
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LANGS:  # the language picked on the sign-in page stays after signing in
        user.lang = chosen
    token = open_session(db, user, settings.console_session_ttl_s)
    db.commit()
    response = redirect("/account/password" if user.must_change_password else _safe_next(next))
    _set_session(response, token, settings)
    response.delete_cookie(PRELOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, db: Db, _who: Annotated[Principal, Depends(signed_in)]) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        close_session(db, token)
        db.commit()
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/invite/{token}")
def invitation_page(request: Request, db: Db, token: str) -> Response:
    try:
        _inv, user = invitation_user(db, token)
    except AccountError:
        return _invitation_gone(request)
    return _prelogin_form(request, "accounts/invite.html", {"user": user, "error": None})


@router.post("/invite/{token}")
def accept(
    request: Request,
    db: Db,
    settings: Settings,
    token: str,
    password: Annotated[str, Form(max_length=200)],
    password2: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        _inv, user = invitation_user(db, token)
    except AccountError:
        return _invitation_gone(request)
    error = None
    if not _prelogin_ok(request, csrf):
        error = tr(request, "The form has expired. Try again.")
    elif password != password2:
        error = tr(request, "The two passwords differ.")
    else:
        try:
            user = accept_invitation(db, token, password)
        except WeakPassword:
            error = tr(
                request, "The password is too weak: at least 10 characters, letters and digits."
            )
    if error is not None:
        return render(request, "accounts/invite.html", {"user": user, "error": error}, 400)
    session_token = open_session(db, user, settings.console_session_ttl_s)
    db.commit()
    response = redirect("/")
    _set_session(response, session_token, settings)
    return response


@router.get("/account/password")
def password_page(request: Request, who: Annotated[Principal, Depends(signed_in)]) -> Response:
    return render(request, "accounts/password.html", {"error": None}, who=who)


@router.post("/account/password")
def password_change(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, Depends(signed_in)],
    current: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=200)],
    password2: Annotated[str, Form(max_length=200)],
) -> Response:
    from server.accounts.passwords import verify_password

    user = db.get_one(User, who.user_pk)
    error = None
    if not verify_password(user.password_hash, current):
        error = tr(request, "The current password is wrong.")
    elif password != password2:
        error = tr(request, "The two passwords differ.")
    elif password == current:
        error = tr(request, "Choose a new password, not the current one.")
    else:
        try:
            change_password(db, user, password)
        except WeakPassword:
            error = tr(
                request, "The password is too weak: at least 10 characters, letters and digits."
            )
    if error is not None:
        return render(request, "accounts/password.html", {"error": error}, 400, who=who)
    token = open_session(db, user, settings.console_session_ttl_s)
    db.commit()
    response = redirect("/")
    _set_session(response, token, settings)
    return response


@router.post("/lang")
def set_lang(
    request: Request,
    db: Db,
    lang: Annotated[str, Form(max_length=2)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """Anyone may choose the language (the sign-in page too); a signed-in user keeps it."""
    if lang not in i18n.LANGS:
        lang = i18n.DEFAULT_LANG
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        from server.accounts.service import load_principal

        found = load_principal(db, token)
        if found is not None:
            found[1].lang = lang
            db.commit()
    response = redirect(_safe_next(next))
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


# ---------------------------------------------------------------------------------- users


def _grantable(who: Principal) -> set[Role]:
    out: set[Role] = set()
    for r in who.roles:
        out |= GRANTABLE.get(r, set())
    return out


def _visible_schools(db: Db, who: Principal) -> list[School]:
    return schools_in_scope(db, who, "users.manage")


@router.get("/users")
def users_page(
    request: Request, db: Db, who: Annotated[Principal, require("users.manage")]
) -> Response:
    ctx = _users_context(db, who, _visible_schools(db, who))
    return render(request, "accounts/users.html", {**ctx, "invite_url": None, "error": None})


@router.post("/users")
def users_invite(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, require("users.manage")],
    login: Annotated[str, Form(min_length=1, max_length=100)],
    full_name: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[str, Form(max_length=32)],
    school_id: Annotated[str, Form(max_length=64)] = "",
    class_pk: Annotated[str, Form(max_length=20)] = "",
    region_id: Annotated[str, Form(max_length=64)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    error = None
    invite_url = None
    try:
        r = Role(role)
    except ValueError:
        r = None
    if r is None or r not in _grantable(who):
        raise Forbidden()
    scope = SCOPE_OF_ROLE[r]
    cls = db.get(SchoolClass, int(class_pk)) if class_pk.isdigit() else None
    if scope == "class" and cls is not None:
        school_id = cls.school_id
    grant = Grant(
        r,
        region_id=region_id or None if scope == "region" else None,
        school_id=school_id or None if scope in ("school", "class") else None,
        class_pk=cls.pk if scope == "class" and cls is not None else None,
    )
    if grant.school_id is not None and not who.can("users.manage", school_id=grant.school_id):
        raise Forbidden()
    if scope == "region" and Role.OPERATOR not in who.roles:
        raise Forbidden()
    try:
        user = create_user(
            db, login, full_name, [grant], email=email, lang=request_lang(request), created_by=who
        )
        token = invite(db, user, who.user_pk, settings.console_invite_ttl_s)
        db.commit()
        invite_url = f"{settings.console_base_url.rstrip('/')}/invite/{token}"
    except AccountError as err:
        db.rollback()
        error = str(err)
    ctx = _users_context(db, who, _visible_schools(db, who))
    return render(
        request,
        "accounts/users.html",
        {**ctx, "invite_url": invite_url, "error": error},
        400 if error else 200,
    )


def _users_context(db: Db, who: Principal, schools: list[School]) -> dict[str, object]:
    school_ids = [s.id for s in schools]
    q = select(User, RoleGrant).join(RoleGrant, RoleGrant.user_pk == User.pk).order_by(User.login)
    if who.schools("users.manage") is not None:
        q = q.where(RoleGrant.school_id.in_(school_ids))
    classes = list(
        db.execute(
            select(SchoolClass)
            .where(SchoolClass.school_id.in_(school_ids))
            .order_by(SchoolClass.school_id, SchoolClass.name)
        ).scalars()
    )
    return {
        "rows": db.execute(q).all(),
        "schools": schools,
        "classes": classes,
        "roles": sorted(r.value for r in _grantable(who)),
    }
