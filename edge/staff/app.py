"""The staff page (FastAPI): sign-in by card + PIN, the home page, and the sections' routers.

No token and no shared password: each member signs in with their own card and PIN, and gets a
short session of their own. Forms carry the session's CSRF token; the sign-in form a
double-submit token; every response carries the console's security headers."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader
from starlette.responses import Response

from edge.core.reasons import Lang
from edge.staff.auth import SignInResult
from edge.staff.sections import COOKIE, LANG_COOKIE, StaffContext
from edge.web.guard import SecurityHeaders, same_secret

FORM_COOKIE = "qaqpa_staff_form"  # the sign-in form's double-submit CSRF token
HERE = Path(__file__).parent


def create_app(ctx: StaffContext, *, secure_cookies: bool = False) -> FastAPI:
    app = FastAPI(title="Qaqpa staff page", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    names = [s.name for s in ctx.sections]
    if len(set(names)) != len(names):
        raise ValueError(f"staff page sections repeat: {names}")
    loaders = [FileSystemLoader(str(HERE / "templates"))]
    loaders += [FileSystemLoader(str(s.templates)) for s in ctx.sections if s.templates]
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.loader = ChoiceLoader(loaders)
    ctx.templates = templates
    for section in ctx.sections:
        ctx.strings.add(section.strings)

    def login_page(request: Request, status: int, **context: Any) -> Response:
        form = request.cookies.get(FORM_COOKIE, "")
        if not 20 <= len(form) <= 64:
            form = secrets.token_urlsafe(24)
        page = ctx.render(
            request,
            None,
            "staff/login.html",
            {"form_csrf": form, "readers": ctx.auth.terminals, **context},
            status_code=status,
        )
        page.set_cookie(
            FORM_COOKIE, form, httponly=True, samesite="strict", secure=secure_cookies, max_age=3600
        )
        if context.get("retry_after"):
            page.headers["Retry-After"] = str(context["retry_after"])
        return page

    @app.get("/", response_class=HTMLResponse)
    async def home(
        request: Request, lang: Annotated[str | None, Query(max_length=4)] = None
    ) -> Response:
        if lang is not None and lang in {x.value for x in Lang}:
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(
                LANG_COOKIE, lang, httponly=True, samesite="strict", secure=secure_cookies
            )
            return response
        user = await ctx.current(request)
        if user is None:
            return login_page(request, 401)
        return ctx.render(request, user, "staff/home.html")

    @app.post("/login")
    async def login(
        request: Request,
        reader: Annotated[str, Form(max_length=64)],
        pin: Annotated[str, Form(max_length=12)] = "",
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        form = request.cookies.get(FORM_COOKIE, "")
        if not form or not same_secret(csrf, form):
            return login_page(request, 403, refusal="expired")
        result: SignInResult = await ctx.auth.sign_in(
            reader,
            pin.strip(),
            address=request.client.host if request.client else "",
            agent=request.headers.get("user-agent", ""),
        )
        if result.cookie is None or result.user is None:
            refusal = result.refusal.value if result.refusal else "wrong_pin"
            status = 429 if result.retry_after else 401
            return login_page(
                request, status, refusal=refusal, retry_after=result.retry_after, chosen=reader
            )
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            result.cookie,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            max_age=max(1, ctx.auth.lifetime_ms // 1000),
        )
        response.delete_cookie(FORM_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
        user = await ctx.current(request)
        if user is not None and same_secret(csrf, user.csrf):
            await ctx.auth.end(user.session_id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "sections": names}

    for section in ctx.sections:
        app.include_router(section.build(ctx), prefix=section.route_prefix.rstrip("/"))
    return app
