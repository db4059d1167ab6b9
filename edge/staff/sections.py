"""Sections of the staff page: the API other modules use to add theirs.

A section is a FastAPI router mounted under ``route_prefix``, shown on the home page and in the
navigation to staff whose roles it names (empty ``roles``: every signed-in member). Add one by
writing a module with a ``SECTION = Section(...)`` and one line in ``edge.staff.registry``::

    def build(ctx: StaffContext) -> APIRouter:
        router = APIRouter()

        @router.get("/", response_class=HTMLResponse)
        async def page(request: Request, user: Annotated[StaffUser, Depends(ctx.viewer(SECTION))]):
            return ctx.render(request, user, "desk/page.html", {"rows": ...})

        @router.post("/do")
        async def do(request: Request, user: Annotated[StaffUser, Depends(ctx.writer(SECTION))]):
            ...  # a form with <input type=hidden name=csrf value="{{ csrf }}">
            return ctx.redirect(SECTION, "/")

        return router

    SECTION = Section("desk", "desk.title", "/desk", frozenset({"school_admin"}), build,
                      strings=DESK_STRINGS, templates=Path(__file__).parent / "templates")

``ctx.viewer(section)`` gives the signed-in member allowed in the section (else a redirect to
the sign-in page, or 403 for a member without the role); ``ctx.writer(section)`` also checks
the form's (or the ``X-CSRF-Token`` header's) CSRF token. Templates extend ``staff/base.html``
and get ``t(key)``, ``lang``, ``user``, ``csrf``, ``nav`` (the sections the member sees) and
``section``; strings go in ``Section.strings`` in kk, ru and en. A section module whose routes
use aliases local to ``build`` (as above) must not use ``from __future__ import annotations``
(FastAPI resolves string annotations in the module's globals only); ``teacher_pass`` is the
example to copy. ``ctx.readers.claim(terminal)`` borrows a reader for its next card (a desk
page asking for a tap of a new card) and ``ctx.gates`` are the daemon's terminals' actuations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from edge.config import TerminalConfig
from edge.core.model import Tap
from edge.core.reasons import Lang
from edge.pipeline import Clock, Outcome, Pipeline
from edge.staff.auth import StaffAuth, StaffUser
from edge.staff.capture import ReaderInput
from edge.staff.i18n import Strings, Texts
from edge.store import EdgeStore
from edge.web.guard import same_secret

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

COOKIE = "qaqpa_staff"  # "<session id>.<secret>"
LANG_COOKIE = "qaqpa_staff_lang"
CSRF_HEADER = "X-CSRF-Token"


class GateOpener(Protocol):
    """A terminal's actuation (``edge.daemon.Actuation``): decide, record, then open."""

    async def tap(self, tap: Tap) -> Outcome | None: ...


@dataclass(frozen=True)
class Section:
    name: str  # unique, [a-z_]
    title_key: str  # a key of ``strings`` (or of the shell's)
    route_prefix: str  # "/pass"
    roles: frozenset[str]  # staff roles that see it; empty: every signed-in member
    build: Callable[[StaffContext], APIRouter]
    strings: Texts = field(default_factory=dict)
    templates: Path | None = None  # a folder with the section's templates (name them "<name>/...")

    def allows(self, user: StaffUser) -> bool:
        return not self.roles or bool(self.roles & user.roles)


@dataclass
class StaffContext:
    """What sections get: the store, the pipeline, the daemon's gates and readers, the clock."""

    store: EdgeStore
    pipeline: Pipeline
    readers: ReaderInput
    gates: Mapping[str, GateOpener]  # terminal id -> its actuation (terminals with a reader)
    terminals: Sequence[TerminalConfig]
    clock: Clock
    language: Lang
    auth: StaffAuth
    strings: Strings
    sections: Sequence[Section] = ()
    templates: Jinja2Templates | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # for sections' own shared objects

    def lang(self, request: Request) -> Lang:
        chosen = request.cookies.get(LANG_COOKIE, "")
        return Lang(chosen) if chosen in {x.value for x in Lang} else self.language

    def t(self, key: str, lang: Lang) -> str:
        return self.strings.get(key, lang)

    def render(
        self,
        request: Request,
        user: StaffUser | None,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        section: Section | None = None,
        status_code: int = 200,
    ) -> Response:
        assert self.templates is not None
        lang = self.lang(request)
        nav = [s for s in self.sections if user is not None and s.allows(user)]
        return self.templates.TemplateResponse(
            request,
            template,
            {
                "t": lambda key: self.strings.get(key, lang),
                "lang": lang.value,
                "langs": [x.value for x in Lang],
                "user": user,
                "csrf": user.csrf if user is not None else "",
                "nav": nav,
                "section": section,
                **(context or {}),
            },
            status_code=status_code,
        )

    def redirect(self, section: Section, path: str = "/") -> Response:
        return RedirectResponse(section.route_prefix.rstrip("/") + path, status_code=303)

    async def current(self, request: Request) -> StaffUser | None:
        return await self.auth.check(request.cookies.get(COOKIE))

    def viewer(self, section: Section) -> Callable[[Request], Awaitable[StaffUser]]:
        async def dependency(request: Request) -> StaffUser:
            user = await self.current(request)
            if user is None:
                raise HTTPException(303, headers={"Location": "/"})
            if not section.allows(user):
                raise HTTPException(403, "this section is not for your role")
            return user

        return dependency

    def writer(self, section: Section) -> Callable[[Request], Awaitable[StaffUser]]:
        view = self.viewer(section)

        async def dependency(request: Request) -> StaffUser:
            user = await view(request)
            given = request.headers.get(CSRF_HEADER, "")
            if not given and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                form = await request.form()
                value = form.get("csrf", "")
                given = value if isinstance(value, str) else ""
            if not same_secret(given, user.csrf):
                raise HTTPException(
                    403, "the page's CSRF token is missing or wrong: reload the page"
                )
            return user

        return dependency
