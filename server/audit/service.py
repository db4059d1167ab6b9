"""Record who viewed or changed a child's personal data. Call in the same transaction as the
change (or the read), so an audited change cannot commit without its entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.accounts.models import User
from server.audit.models import AuditEntry
from server.clock import now_ms


def audit(
    session: Session,
    who: Principal | None,
    action: str,
    subject: str,
    *,
    student_pk: int | None = None,
    school_id: str | None = None,
    summary: str = "",
    user_pk: int | None = None,
) -> None:
    """``summary`` names what was touched (fields, counts, document numbers), never the values
    of personal fields such as names or birth dates."""
    session.add(
        AuditEntry(
            at_ms=now_ms(),
            # ``user_pk``: the account concerned when nobody is signed in (a sign-in).
            user_pk=who.user_pk if who is not None else user_pk,
            action=action,
            subject=subject,
            student_pk=student_pk,
            school_id=school_id,
            summary=summary[:500],
        )
    )


def latest_entries(
    db: Session, schools: set[str] | None, student_pk: int | None, limit: int
) -> list[Any]:
    """The newest entries (with the user's login) of these schools (None: all, including the
    entries of no school), optionally about one student."""
    return list(db.execute(entries_query(schools, student_pk).limit(limit)).all())


def entries_query(schools: set[str] | None, student_pk: int | None) -> Select[AuditEntry, str]:
    """Entries (with the user's login), newest first, of these schools, optionally about one
    student: the audit page shows it a page at a time."""
    q: Select[AuditEntry, str] = (
        select(AuditEntry, User.login)
        .outerjoin(User, User.pk == AuditEntry.user_pk)
        .order_by(AuditEntry.pk.desc())
    )
    if schools is not None:
        q = q.where(AuditEntry.school_id.in_(sorted(schools)))
    if student_pk is not None:
        q = q.where(AuditEntry.student_pk == student_pk)
    return q
