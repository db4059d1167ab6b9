"""The audit log page: who viewed or changed which child's data (operator, school admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from server.accounts.access import Principal
from server.audit.service import entries_query
from server.console.paging import paginate
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
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """Newest first, a page at a time."""
    found = paginate(db, entries_query(who.schools("audit.view"), student_pk), page)
    base = "/audit" + (f"?student_pk={student_pk}" if student_pk is not None else "")
    return render(request, "audit/list.html", {"rows": found.rows, "found": found, "base": base})
