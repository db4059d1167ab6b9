"""The audit log page: who viewed or changed which child's data (operator, school admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from server.accounts.access import Principal
from server.accounts.models import User
from server.audit.models import AuditEntry
from server.console.web import Db, nav_item, render, require

router = APIRouter()
nav_item("audit.view", "/audit", "Audit log", 95)


@router.get("/audit")
def audit_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("audit.view")],
    student_pk: Annotated[int | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    q = (
        select(AuditEntry, User.login)
        .outerjoin(User, User.pk == AuditEntry.user_pk)
        .order_by(AuditEntry.pk.desc())
        .limit(limit)
    )
    schools = who.schools("audit.view")
    if schools is not None:
        q = q.where(AuditEntry.school_id.in_(schools))
    if student_pk is not None:
        q = q.where(AuditEntry.student_pk == student_pk)
    return render(request, "audit/list.html", {"rows": db.execute(q).all()})
