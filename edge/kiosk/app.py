"""The canteen kiosk page (FastAPI), served by the edge daemon itself on the school network.

Routes stay thin: the hub builds screens from committed decisions, the pipeline sells. Staff sign
in once per device with the kiosk token (a cookie then, SameSite=Strict); every API call needs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from edge.core.reasons import Lang
from edge.kiosk.hub import KioskError, KioskHub
from edge.kiosk.screens import KioskScreen
from protocol.messages import Id

COOKIE = "qaqpa_kiosk"
KEEPALIVE_S = 15.0
WRONG_TOKEN_DELAY_S = 1.0  # slows guessing from the school network
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def session_value(token: str) -> str:
    return hashlib.sha256(b"qaqpa-kiosk\0" + token.encode()).hexdigest()


def _signed_in(request: Request) -> bool:
    expected: str = request.app.state.session
    return hmac.compare_digest(request.cookies.get(COOKIE, ""), expected)


def _require_staff(request: Request) -> None:
    if not _signed_in(request):
        raise HTTPException(401, "sign in with the kiosk token first")


Staff = Annotated[None, Depends(_require_staff)]


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: Id
    tap_id: Annotated[str, Field(min_length=1, max_length=64)]
    items: Annotated[list[Id], Field(min_length=1, max_length=20)]


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal: Id
    tap_id: Annotated[str, Field(max_length=64)] = ""


def create_app(hub: KioskHub, token: str, language: Lang = Lang.KK) -> FastAPI:
    app = FastAPI(title="Qaqpa canteen kiosk", docs_url=None, redoc_url=None, openapi_url=None)
    expected = session_value(token)
    app.state.session = expected

    def known(terminal: str) -> str:
        if terminal not in hub.terminals:
            raise HTTPException(404, f"terminal {terminal!r} is not shown on this kiosk")
        return terminal

    def with_cookie(response: RedirectResponse) -> RedirectResponse:
        response.set_cookie(
            COOKIE, expected, httponly=True, samesite="strict", max_age=60 * 60 * 24 * 365
        )
        return response

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request, token: str | None = None) -> Any:
        if token is not None:  # a link with the token (the demo prints one): sign in, drop it
            if hmac.compare_digest(session_value(token), expected):
                return with_cookie(RedirectResponse("/", status_code=303))
            await asyncio.sleep(WRONG_TOKEN_DELAY_S)
        if not _signed_in(request):
            return TEMPLATES.TemplateResponse(
                request, "login.html", {"failed": token is not None}, status_code=401
            )
        return TEMPLATES.TemplateResponse(
            request,
            "kiosk.html",
            {"terminals": hub.terminals, "language": language.value},
        )

    @app.post("/login")
    async def login(token: Annotated[str, Form(max_length=200)]) -> Any:
        if hmac.compare_digest(session_value(token), expected):
            return with_cookie(RedirectResponse("/", status_code=303))
        await asyncio.sleep(WRONG_TOKEN_DELAY_S)
        return RedirectResponse("/?token=", status_code=303)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "terminals": len(hub.terminals)}

    # response_model=None: the screen goes out as built (the page reads its keys in order)
    @app.get("/api/screen", response_model=None)
    async def screen(_: Staff, terminal: Annotated[str, Query()]) -> KioskScreen:
        return hub.current(known(terminal))

    @app.get("/api/stream")
    async def stream(_: Staff, terminal: Annotated[str, Query()]) -> StreamingResponse:
        queue = hub.subscribe(known(terminal))

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):
                            shown = await queue.get()
                    except TimeoutError:
                        yield ": keepalive\n\n"
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
    async def purchase(_: Staff, body: PurchaseRequest) -> Any:
        try:
            return await hub.purchase(known(body.terminal), body.tap_id, body.items)
        except KioskError as err:
            return JSONResponse({"error": str(err)}, status_code=409)

    @app.post("/api/cancel", response_model=None)
    async def cancel(_: Staff, body: CancelRequest) -> KioskScreen:
        return hub.cancel(known(body.terminal), body.tap_id)

    return app
