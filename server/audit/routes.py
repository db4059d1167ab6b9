"""The audit log page: who viewed or changed which child's data (operator, school admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import latest_entries
from server.console.params import Id
from server.console.web import Db, nav_item, render, require

router = APIRouter()
nav_item("audit.view", "/audit", "Audit log", 95)


@router.get("/audit")
def audit_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("audit.view")],
    student_pk: Annotated[Id | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    rows = latest_entries(db, who.schools("audit.view"), student_pk, limit)
    return render(request, "audit/list.html", {"rows": rows})
