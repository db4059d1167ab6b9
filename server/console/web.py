"""What every console page shares: the database session, the signed-in principal with CSRF
checking on every write, rendering in the user's language, and the navigation.

Routes stay thin: ``def page(who: Annotated[Principal, require("reports.meals")], db: Db)``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape
from sqlalchemy.orm import Session, sessionmaker

from protocol.allergens import allergen_names
from server.accounts.access import Principal
from server.accounts.models import User
from server.accounts.service import load_principal
from server.clock import DEFAULT_ZONE
from server.console import i18n
from server.settings import ServerSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"
SESSION_COOKIE = "qaqpa_session"
PRELOGIN_COOKIE = "qaqpa_prelogin"
LANG_COOKIE = "qaqpa_lang"
# A change's outcome, shown once on the page a POST redirects to (redirect after POST).
FLASH_COOKIE = "qaqpa_flash"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(Exception):
    """No valid session: the console redirects to the sign-in page."""


class PasswordChangeRequired(Exception):
    """First sign-in (or a reset): the user must choose a password before anything else."""


class Forbidden(Exception):
    """Signed in, but this role / scope may not see or do this."""


class CsrfFailed(Exception):
    """A write without the session's CSRF token (another site's form, or a stale page)."""


class NotFound(Exception):
    """A record that does not exist, or that this user may not know exists."""


# ------------------------------------------------------------------------------------- nav


@dataclass(frozen=True, slots=True)
class NavItem:
    perm: str
    url: str
    label: str  # an English msgid, translated at render time
    order: int
    group: str = ""  # the menu group (an English msgid); "" stands alone


# The menu by task: a page's group follows from the first part of its address, so a module's
# pages gather under one heading (a module may name its own group).
GROUP_OF: dict[str, str] = {
    "students": "People",
    "classes": "People",
    "staff": "People",
    "roster": "People",
    "consents": "Cards and consents",
    "cards": "Cards and consents",
    "categories": "Cards and consents",
    "canteen": "Canteen",
    "policy": "Canteen",
    "reports": "Reports",
    "refused": "Today",
    "status": "Today",
    "duty": "Today",
    "trustees": "Reports",
    "concerns": "Reports",
    "cardfees": "Canteen",
    "vouchers": "Canteen",
    "notifications": "Settings",
    "devices": "Settings",
    "users": "Settings",
    "audit": "Settings",
    "gifted": "Gifted children",
    "tutoring": "Tutoring",
    "badges": "Youth award",
    "equipment": "Equipment",
}

NAV: list[NavItem] = []


def nav_item(perm: str, url: str, label: str, order: int = 50, group: str | None = None) -> None:
    """Modules add their pages to the menu; the menu shows an item only to who may open it."""
    if group is None:
        group = GROUP_OF.get(url.strip("/").split("/")[0], "")
    if all(n.url != url for n in NAV):
        NAV.append(NavItem(perm, url, label, order, group))
        NAV.sort(key=lambda n: n.order)


def nav_groups(items: list[NavItem]) -> list[tuple[str, list[NavItem]]]:
    """The visible items by group, groups in the order of their first item."""
    groups: dict[str, list[NavItem]] = {}
    for n in items:
        groups.setdefault(n.group or n.url, []).append(n)
    return [(items[0].group, items) for items in groups.values()]


# -------------------------------------------------------------------------------- templates

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
# Jinja marks what _() returns as safe markup; escape it first, so that a message built from a
# variable (an error quoting what the user typed) can never inject HTML. Catalogues hold text only.
env.install_gettext_callables(  # type: ignore[attr-defined]
    lambda m: str(escape(i18n.gettext(str(m)))),
    lambda s, p, n: str(escape(i18n.ngettext(str(s), str(p), n))),
    newstyle=True,
)


def tr(request: Request, message: str) -> str:
    """Translate a message outside a template (errors shown to the user)."""
    return i18n.gettext(message, request_lang(request))


def request_lang(request: Request) -> str:
    lang = getattr(request.state, "lang", None)
    if isinstance(lang, str):
        return lang
    # Kazakh unless the user chose otherwise (the browser's Accept-Language is not a choice).
    return i18n.pick_lang(request.cookies.get(LANG_COOKIE))


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    who: Principal | None = None,
) -> HTMLResponse:
    lang = request_lang(request)
    token = i18n.current_lang.set(lang)
    try:
        who = who if who is not None else getattr(request.state, "principal", None)
        flash = read_flash(request, who)
        nav = [n for n in NAV if who is not None and who.can(n.perm)]
        menu = nav_groups(nav)
        html = env.get_template(template).render(
            request=request,
            who=who,
            nav=nav,
            menu=menu,
            lang=lang,
            langs=i18n.LANG_NAMES,
            csrf=who.csrf_token if who is not None else request.cookies.get(PRELOGIN_COOKIE, ""),
            flash=flash,
            **(context or {}),
        )
    finally:
        i18n.current_lang.reset(token)
    response = HTMLResponse(html, status_code=status_code)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(
            FLASH_COOKIE, path="/"
        )  # shown once: a refresh does not show it again
    return response


# ------------------------------------------------------------------------------ dependencies


def _db(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


Db = Annotated[Session, Depends(_db)]


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


Settings = Annotated[ServerSettings, Depends(_settings)]


async def _sent_csrf(request: Request) -> str | None:
    """The CSRF token the client sent: ``X-CSRF-Token`` header (scripts) or a ``csrf`` form field."""
    if request.method not in UNSAFE:
        return None
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()  # cached on the request: the route reads it again
        value = form.get("csrf")
        return value if isinstance(value, str) else None
    return None


def _principal(request: Request, db: Db) -> tuple[Principal, User]:
    token = request.cookies.get(SESSION_COOKIE)
    found = load_principal(db, token) if token else None
    if found is None:
        raise LoginRequired()
    principal, user = found
    request.state.principal = principal
    request.state.lang = principal.lang
    return principal, user


def signed_in(
    request: Request, db: Db, sent: Annotated[str | None, Depends(_sent_csrf)]
) -> Principal:
    """Any signed-in user (writes CSRF-checked), before the first-login password change."""
    principal, _user = _principal(request, db)
    check_csrf(request, principal, sent)
    return principal


def check_csrf(request: Request, principal: Principal, sent: str | None) -> None:
    if request.method in UNSAFE and (
        sent is None or not hmac.compare_digest(sent, principal.csrf_token)
    ):
        raise CsrfFailed()


def require(perm: str) -> Any:
    """A dependency: the signed-in principal if they hold ``perm`` somewhere; scope checks on a
    particular school, class or student are the scope dependencies' (``server.console.scope``).
    """
    return Depends(require_dep(perm))


@functools.cache
def require_dep(perm: str) -> Callable[..., Principal]:
    """One function per permission, so that a route and its scope dependencies share one
    principal per request (FastAPI caches a dependency's result by its function)."""

    def dep(
        request: Request, db: Db, sent: Annotated[str | None, Depends(_sent_csrf)]
    ) -> Principal:
        principal, user = _principal(request, db)
        if user.must_change_password:
            raise PasswordChangeRequired()
        check_csrf(request, principal, sent)
        if not principal.can(perm):
            raise Forbidden()
        return principal

    dep.__name__ = f"require_{perm.replace('.', '_')}"
    return dep


def any_user() -> Any:
    """A dependency: any signed-in user who has set their password."""
    return Depends(any_user_dep)


def any_user_dep(
    request: Request, db: Db, sent: Annotated[str | None, Depends(_sent_csrf)]
) -> Principal:
    principal, user = _principal(request, db)
    if user.must_change_password:
        raise PasswordChangeRequired()
    check_csrf(request, principal, sent)
    return principal


def ensure(condition: bool) -> None:
    """Scope check inside a route: 404 rather than 403, so ids of other schools leak nothing."""
    if not condition:
        raise NotFound()


def redirect(url: str) -> Response:
    return Response(status_code=303, headers={"location": url})


def _flash_mac(who: Principal, payload: str) -> str:
    # keyed by the session's own secret: only this server, for this session, makes a flash
    key = ("flash:" + who.csrf_token).encode()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:32]


def redirect_done(
    request: Request, url: str, *messages: str | tuple[str, str], detail: str = ""
) -> Response:
    """Redirect after a POST that changed something (303 to the page to show), carrying what
    was done: each message is a catalogue message id (``N_``), or a pair of one and a plain
    value shown after it (a count, an inventory number); ``detail`` is the first message's
    value. The next page shows them once; a refresh of that page repeats nothing."""
    response = redirect(url)
    who = getattr(request.state, "principal", None)
    if isinstance(who, Principal):
        items = [[m, ""] if isinstance(m, str) else [m[0], m[1][:200]] for m in messages[:10]]
        if items and detail:
            items[0][1] = detail[:200]
        payload = json.dumps(items)
        value = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        response.set_cookie(
            FLASH_COOKIE,
            f"{value}.{_flash_mac(who, payload)}",
            max_age=300,
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    return response


@dataclass(frozen=True, slots=True)
class Flash:
    items: list[tuple[str, str]]  # (message id, value shown after it)


def read_flash(request: Request, who: Principal | None) -> Flash | None:
    """The outcome a redirect carried, if it is this session's (a forged one is ignored)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or who is None or "." not in raw or len(raw) > 3000:
        return None
    value, mac = raw.rsplit(".", 1)
    try:
        payload = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if not hmac.compare_digest(mac, _flash_mac(who, payload)):
            return None
        items = [(str(m), str(d)) for m, d in json.loads(payload)]
    except (ValueError, TypeError):
        return None
    return Flash(items)


# --------------------------------------------------------------------------------- filters


def _datetime(ms: int | None, zone: str = DEFAULT_ZONE, fmt: str = "%Y-%m-%d %H:%M") -> str:
    import datetime as dt
    import zoneinfo

    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, zoneinfo.ZoneInfo(zone)).strftime(fmt)


def _money(tiyn: int | None) -> str:
    """1234550 tiyn -> "12 345,50 ₸" (Kazakh and Russian both group with spaces)."""
    if tiyn is None:
        return ""
    sign = "-" if tiyn < 0 else ""
    tenge, rest = divmod(abs(tiyn), 100)
    return f"{sign}{tenge:,}".replace(",", "\u00a0") + f",{rest:02d}\u00a0₸"


env.filters["datetime"] = _datetime
# ``{{ text | t }}``: translate text that may come from a variable. Unlike ``_()``, whose result
# Jinja marks safe (translations are trusted markup), the result is escaped like any value.
env.filters["t"] = lambda message: i18n.gettext(str(message))
env.filters["money"] = _money

# Meal periods are names the school admin typed into the policy ("breakfast", "lunch"): the usual
# ones are shown in the reader's language, any other as typed.
MEAL_PERIODS = ("breakfast", "second_breakfast", "lunch", "snack", "afternoon_snack", "dinner")


def _meal_period(name: str | None) -> str:
    if not name:
        return ""
    key = name.strip().casefold().replace(" ", "_")
    return i18n.gettext(f"meal-period:{key}") if key in MEAL_PERIODS else name


def _allergens(codes: Iterable[str] | None) -> str:
    return ", ".join(allergen_names(codes or (), i18n.current_lang.get()))


def _audit_term(value: str | None) -> str:
    """An audit entry's action or subject in the reader's language: ``view`` -> "қарау",
    ``student:12`` -> "оқушы 12"; a term without a translation is shown as recorded."""
    if not value:
        return ""
    word, _sep, ref = value.partition(":")
    key = f"audit:{word}"
    said = i18n.gettext(key)
    if said == key:
        return value
    return f"{said} {ref}" if ref else said


env.filters["meal_period"] = _meal_period
env.filters["audit_term"] = _audit_term
env.filters["allergens"] = _allergens
