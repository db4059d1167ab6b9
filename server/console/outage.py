"""The centre's database is unreachable: a translated 503 page (or JSON under ``/api/``) with a
``Retry-After``, instead of a 500, and ``/healthz``, the readiness that says which part is down.

Nothing is written while the database is away; the schools' edges keep their events in their
outboxes (and the broker in its queue) until ingest can store them (README, operations)."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from server.console.web import render
from server.db import is_unreachable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30
# One literal, so that the catalogue test finds it (tests/server/console/test_catalogues.py).
CONTEXT = {
    "code": 503,
    "message": "The centre's database cannot be reached just now. Nothing is lost: the schools' gates keep working and their events wait to be stored. Try again in a minute.",
}

router = APIRouter()


def unavailable(request: Request) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": "database unreachable"}, 503, headers=headers)
    response = render(request, "error.html", CONTEXT, 503)
    response.headers.update(headers)
    return response


async def _database_error(request: Request, exc: Exception) -> Response:
    if not is_unreachable(exc):
        raise exc  # an error of the work itself stays a 500, with its traceback in the log
    log.warning("console: the database is unreachable (%s): 503", type(exc).__name__)
    return unavailable(request)


@router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> Response:
    """Readiness: 200 when every part this process needs answers, else 503 naming the part."""
    factory: sessionmaker[Session] = request.app.state.sessions
    database = "ok"
    with factory() as session:
        try:
            session.execute(select(1))
        except Exception as err:  # any failure is "not ready"
            if not is_unreachable(err):
                log.exception("healthz: the database check failed")
            database = "unreachable"
    ready = database == "ok"
    return JSONResponse(
        {"ready": ready, "parts": {"database": database}},
        200 if ready else 503,
        headers={} if ready else {"Retry-After": str(RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    for cls in (DBAPIError, PoolTimeout, psycopg.Error):
        app.add_exception_handler(cls, _database_error)
    app.include_router(router)
