"""The roster import's preview lifecycle: an upload is checked and kept as a preview for its
user; confirming it applies exactly the rows shown, once, if the roster has not changed since.
A preview holds children's data: none outlives its hour (expired ones go at every upload).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.clock import Clock
from server.models import School
from server.roster import rules, service
from server.roster.models import ImportPreview
from server.roster.rules import N_, ParsedRoster, RawRow, RowError
from server.roster.service import ImportPlan, ImportResult

PREVIEW_TTL_MS = 60 * 60_000


class PreviewRefused(Exception):
    """A confirmation that cannot be applied; the message (an msgid) says why."""


@dataclass(frozen=True, slots=True)
class Preview:
    """What the preview page shows: the file, the plan, every error, and the confirm token."""

    parsed: ParsedRoster
    plan: ImportPlan | None
    errors: list[RowError]
    token: str


@dataclass(frozen=True, slots=True)
class Applied:
    result: ImportResult
    school_id: str
    file_name: str


def purge_expired(db: Session, now_ms: int) -> None:
    db.execute(delete(ImportPreview).where(ImportPreview.created_at_ms < now_ms - PREVIEW_TTL_MS))


def preview_upload(
    db: Session,
    who: Principal,
    school_id: str,
    parsed: ParsedRoster,
    today: dt.date,
    now_ms: int,
) -> Preview:
    """Check a parsed upload against the school's roster and keep it for confirmation.

    Stored even with errors (without its rows), so that a confirmation of it is refused by
    what it is rather than by not being found. The caller commits."""
    plan: ImportPlan | None = None
    errors = parsed.errors
    if not parsed.refused:
        _checked, plan = service.check(db, school_id, parsed.rows, today)
        errors = sorted(
            [*parsed.errors, *plan.errors],
            key=lambda e: (
                e.line,
                rules.COLUMNS.index(e.column) if e.column in rules.COLUMNS else -1,
            ),
        )
    purge_expired(db, now_ms)
    token = ""
    if plan is not None:
        token = secrets.token_urlsafe(24)
        db.add(
            ImportPreview(
                token=token,
                user_pk=who.user_pk,
                school_id=school_id,
                file_name=parsed.name,
                file_sha256=parsed.sha256,
                encoding=parsed.encoding,
                rows=[]
                if errors
                else [{"line": r.line, "cells": dict(r.cells)} for r in parsed.rows],
                plan_digest=plan.digest,
                error_count=len(errors),
                created_at_ms=now_ms,
            )
        )
    return Preview(parsed, plan, errors, token)


def confirm_preview(
    db: Session,
    who: Principal,
    token: str,
    sha256: str,
    clock: Clock,
) -> Applied:
    """Apply a preview of this user, all rows or none. ``PreviewRefused`` says why not; a
    preview of a school the user may no longer import into is ``PermissionError``.
    The caller commits."""
    # Locked: the same preview confirmed twice at once is applied once.
    preview = (
        db.execute(
            select(ImportPreview).where(ImportPreview.token == token).with_for_update()
        ).scalar_one_or_none()
        if token
        else None
    )
    if (
        preview is None
        or preview.user_pk != who.user_pk
        or preview.created_at_ms < clock.now_ms() - PREVIEW_TTL_MS
        or not secrets.compare_digest(preview.file_sha256, sha256)
    ):
        raise PreviewRefused(
            N_("This preview is not valid (expired, applied or not yours): upload the file again.")
        )
    if not who.whole_school("roster.import", preview.school_id):
        raise PermissionError(preview.school_id)
    with_errors = N_("A file with errors cannot be imported: fix it and upload it again.")
    if preview.error_count:
        raise PreviewRefused(with_errors)
    raws = [
        RawRow(int(r["line"]), {str(k): str(v) for k, v in r["cells"].items()})
        for r in preview.rows
    ]
    service.lock_school(db, preview.school_id)
    today = clock.school_today(db.get_one(School, preview.school_id))
    _checked, plan = service.check(db, preview.school_id, raws, today)
    if plan.errors:
        raise PreviewRefused(with_errors)
    if plan.digest != preview.plan_digest:
        raise PreviewRefused(N_("The roster changed since the preview: upload the file again."))
    result = service.apply_plan(db, plan, who, summary=f"file sha256 {preview.file_sha256[:16]}; ")
    applied = Applied(result, preview.school_id, preview.file_name)
    db.delete(preview)
    return applied
