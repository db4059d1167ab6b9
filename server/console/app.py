"""Mount the console on the FastAPI app: static files, module routers, error pages, headers."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from server.console.web import (
    CsrfFailed,
    Forbidden,
    LoginRequired,
    NotFound,
    PasswordChangeRequired,
    redirect,
    render,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

# Each module owns ``server/<module>/routes.py`` with a ``router``; a module not built yet is
# simply absent.
MODULES = (
    "server.accounts.routes",
    "server.audit.routes",
    "server.roster.routes",
    "server.consents.routes",
    "server.cards.routes",
    "server.policy.routes",
    "server.reports.routes",
    "server.notify.routes",
    "server.parent.routes",
    "server.canteen.routes",
    "server.vouchers.routes",
    "server.edges.routes",
    "server.dashboard.routes",
    "server.gifted.routes",
    "server.badges.routes",
    "server.duty.routes",
    "server.cardfee.routes",
    "server.trustees.routes",
    "server.staffpins.routes",
    "server.equipment.routes",
    "server.tutoring.routes",
    "server.rollups.routes",
)


def install_console(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    from server.console import outage

    outage.install(app)  # the database unreachable: 503 pages, /healthz
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and name.startswith(err.name):
                continue
            raise
        app.include_router(module.router)
        install = getattr(module, "install", None)
        if callable(install):  # a module's collaborators, built once at start
            install(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        # Where, what and why, but not the value sent: it may be a secret (a token), and a NaN
        # or an infinity in it cannot be written back as JSON (it was a 500).
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, 422)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect(f"/login?next={quote(target)}")
        return render(request, "error.html", {"code": 401, "message": "Please sign in again."}, 401)

    @app.exception_handler(PasswordChangeRequired)
    async def _password(_request: Request, _exc: PasswordChangeRequired) -> Response:
        return redirect("/account/password")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        return render(
            request, "error.html", {"code": 403, "message": "Your role does not allow this."}, 403
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, _exc: NotFound) -> Response:
        return render(request, "error.html", {"code": 404, "message": "Not found."}, 404)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return render(
            request,
            "error.html",
            {
                "code": 403,
                "message": "The form has expired. Go back, reload the page and try again.",
            },
            403,
        )

    @app.middleware("http")
    async def _headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        h = response.headers
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        if not request.url.path.startswith("/static/"):
            # Pages carry children's personal data: no shared or disk caches.
            h.setdefault("Cache-Control", "no-store")
        return response
