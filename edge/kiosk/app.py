"""The canteen kiosk page (FastAPI), served by the edge daemon itself on the school network.

Routes stay thin: the hub builds screens from committed decisions, the pipeline sells. Staff sign
a device in with the kiosk token (typed, or the ``?token=`` link the demo prints, exchanged at
once for a clean URL); the device gets its own session (``edge.web.sessions``), HttpOnly,
SameSite=Strict, Secure over TLS. Every write carries the session's CSRF token (the page sends it
in ``X-CSRF-Token``; the sign-in form a double-submit token); every response carries the
console's security headers; an open event stream ends when its session is revoked or expires.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from edge.core.reasons import Lang
from edge.kiosk.hub import KioskError, KioskHub
from edge.kiosk.screens import KioskScreen
from edge.web.guard import SecurityHeaders, same_secret
from edge.web.sessions import ActiveSession, SignIn, StaffSessions
from protocol.allergens import ALLERGENS
from protocol.messages import Id

COOKIE = "qaqpa_kiosk"  # the device's session: "<id>.<secret>"
FORM_COOKIE = "qaqpa_kiosk_form"  # the sign-in form's double-submit CSRF token
CSRF_HEADER = "X-CSRF-Token"
KEEPALIVE_S = 15.0
SESSION_RECHECK_S = 2.0  # an open event stream re-reads its session this often
HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


async def _staff(request: Request) -> ActiveSession:
    sessions: StaffSessions = request.app.state.sessions
    session = await sessions.check(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(401, "sign in with the kiosk token first")
    return session


async def _staff_write(request: Request) -> ActiveSession:
    session = await _staff(request)
    if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
        raise HTTPException(403, "the page's CSRF token is missing or wrong: reload the page")
    return session


Staff = Annotated[ActiveSession, Depends(_staff)]
StaffWrite = Annotated[ActiveSession, Depends(_staff_write)]


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: Id
    tap_id: Annotated[str, Field(min_length=1, max_length=64)]
    items: Annotated[list[Id], Field(min_length=1, max_length=20)]


class VoucherRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: Id
    qr: Annotated[str, Field(min_length=1, max_length=600)]  # protocol.vouchers.MAX_TOKEN_CHARS


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: Id
    tap_id: Annotated[str, Field(max_length=64)] = ""


def create_app(
    hub: KioskHub,
    sessions: StaffSessions,
    language: Lang = Lang.KK,
    *,
    secure_cookies: bool = False,
    recheck_s: float = SESSION_RECHECK_S,
) -> FastAPI:
    """The kiosk app; ``secure_cookies`` when served over TLS."""
    app = FastAPI(title="Qaqpa canteen kiosk", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = sessions
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def known(terminal: str) -> str:
        if terminal not in hub.terminals:
            raise HTTPException(404, f"terminal {terminal!r} is not shown on this kiosk")
        return terminal

    def login_page(request: Request, status: int, **context: Any) -> Response:
        form = request.cookies.get(FORM_COOKIE, "")
        if not 20 <= len(form) <= 64:
            form = secrets.token_urlsafe(24)
        page = TEMPLATES.TemplateResponse(
            request, "login.html", {"csrf": form, **context}, status_code=status
        )
        page.set_cookie(
            FORM_COOKIE, form, httponly=True, samesite="strict", secure=secure_cookies, max_age=3600
        )
        if "retry_after" in context:
            page.headers["Retry-After"] = str(context["retry_after"])
        return page

    async def exchange(request: Request, token: str) -> Response:
        """A sign-in with the token: the session's cookie and a redirect to the clean page."""
        agent = request.headers.get("user-agent", "")
        address = request.client.host if request.client else ""
        result: SignIn = await sessions.sign_in(token, address=address, agent=agent)
        if result.retry_after is not None:
            return login_page(request, 429, retry_after=result.retry_after)
        if result.cookie is None or result.session is None:
            return RedirectResponse("/?failed=1", status_code=303)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            result.cookie,
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            max_age=max(1, sessions.lifetime_ms // 1000),
        )
        response.delete_cookie(FORM_COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def page(
        request: Request,
        token: Annotated[str | None, Query(max_length=200)] = None,
        failed: Annotated[int, Query(ge=0, le=1)] = 0,
    ) -> Response:
        if token is not None:  # the link the demo prints: sign in, then drop it from the URL
            return await exchange(request, token)
        session = await sessions.check(request.cookies.get(COOKIE))
        if session is None:
            return login_page(request, 401, failed=bool(failed))
        return TEMPLATES.TemplateResponse(
            request,
            "kiosk.html",
            {
                "terminals": hub.terminals,
                "language": language.value,
                "csrf": session.csrf,
                "allergens": ALLERGENS,
            },
        )

    @app.post("/login")
    async def login(
        request: Request,
        token: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        form = request.cookies.get(FORM_COOKIE, "")
        if not form or not same_secret(csrf, form):
            return login_page(request, 403, expired=True)
        return await exchange(request, token)

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
        session = await _staff(request)
        if not same_secret(csrf, session.csrf):
            raise HTTPException(403, "the page's CSRF token is missing or wrong: reload the page")
        await sessions.end(session.id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "terminals": len(hub.terminals)}

    # response_model=None: the screen goes out as built (the page reads its keys in order)
    @app.get("/api/screen", response_model=None)
    async def screen(_: Staff, terminal: Annotated[str, Query()]) -> KioskScreen:
        return hub.current(known(terminal))

    @app.get("/api/stream")
    async def stream(
        request: Request, _: Staff, terminal: Annotated[str, Query()]
    ) -> StreamingResponse:
        cookie = request.cookies.get(COOKIE)
        queue = hub.subscribe(known(terminal))
        loop = asyncio.get_running_loop()

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                check_at = keepalive_at = loop.time()
                while True:
                    now = loop.time()
                    if now >= check_at:  # revoked or expired: the stream ends here
                        if await sessions.check(cookie) is None:
                            return
                        check_at = now + recheck_s
                    if now >= keepalive_at + KEEPALIVE_S:
                        keepalive_at = now
                        yield ": keepalive\n\n"
                    try:
                        async with asyncio.timeout(max(0.0, check_at - now)):
                            shown = await queue.get()
                    except TimeoutError:
                        continue
                    data = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
                    yield f"event: screen\ndata: {data}\n\n"
            finally:
                hub.unsubscribe(terminal, queue)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post("/api/purchase")
    async def purchase(_: StaffWrite, body: PurchaseRequest) -> Any:
        try:
            return await hub.purchase(known(body.terminal), body.tap_id, body.items)
        except KioskError as err:
            return JSONResponse({"error": str(err)}, status_code=409)

    @app.post("/api/voucher", response_model=None)
    async def voucher(_: StaffWrite, body: VoucherRequest) -> Any:
        """A QR voucher scanned (a scanner types it, or staff paste it): the menu to pay with it."""
        try:
            return hub.scan_voucher(known(body.terminal), body.qr)
        except KioskError as err:
            return JSONResponse({"error": str(err)}, status_code=409)

    @app.post("/api/cancel", response_model=None)
    async def cancel(_: StaffWrite, body: CancelRequest) -> KioskScreen:
        return hub.cancel(known(body.terminal), body.tap_id)

    return app
