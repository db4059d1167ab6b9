"""Consent helpers of the console tests: the change log a school's edges receive, a consent
given through the console."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import ChangeLogEntry
from tests.support.console import Browser


def changes(db: Session, school: str, since: int = 0) -> list[dict[str, Any]]:
    db.expire_all()
    rows = db.execute(
        select(ChangeLogEntry.changes)
        .where(ChangeLogEntry.school_id == school, ChangeLogEntry.version > since)
        .order_by(ChangeLogEntry.version)
    ).scalars()
    return [c for row in rows for c in row]


def give(b: Browser, pk: int, kind: str = "data", decision: str = "given", **kw: str):  # type: ignore[no-untyped-def]
    b.get(f"/students/{pk}/consents")
    form = {
        "kind": kind,
        "decision": decision,
        "given_by": "Parent One (mother)",
        "document": "Application No. 17 of 2026-02-20",
        "signed_on": "2026-02-20",
    } | kw
    r = b.post(f"/students/{pk}/consents", form)
    if r.status_code == 303:  # recorded: the consents page, with what was done, once
        assert r.headers["location"] == f"/students/{pk}/consents", r.headers["location"]
        return b.get(r.headers["location"])
    return r
