"""What the audit log records besides children's records: sign-ins (tests/server/accounts),
password changes, user creation, the students list, the notification outbox, the canteen XLSX;
and a consent's document is named in the log, never copied into it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from tests.support.console import World, password_of


def _entries(db: Session) -> list[tuple[str, str, int | None, str]]:
    db.expire_all()
    return [
        (a, s, u, m)
        for a, s, u, m in db.execute(
            select(
                AuditEntry.action, AuditEntry.subject, AuditEntry.user_pk, AuditEntry.summary
            ).order_by(AuditEntry.pk)
        ).all()
        if a != "sign_in"
    ]


def test_views_exports_and_account_changes_are_audited(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    start = len(_entries(db))
    assert admin.get("/students?school=S1").status_code == 200
    assert admin.get("/notifications?school=S1").status_code == 200
    canteen = make_browser("canteen1")
    assert canteen.get("/canteen/reports?school=S1&format=xlsx").status_code == 200
    r = admin.post(
        "/users",
        {"login": "newduty", "full_name": "New Duty", "role": "duty_deputy", "school_id": "S1"},
    )
    assert r.status_code == 200
    admin.get("/account/password")
    r = admin.post(
        "/account/password",
        {
            "current": password_of("admin1"),
            "password": "Kettle-orbit-42",
            "password2": "Kettle-orbit-42",
        },
    )
    assert r.status_code == 303
    # (signing in opens the home page, whose day view is audited too: not what this test is about)
    got = [e for e in _entries(db)[start:] if e[1] != "dashboard"]
    admin_pk, canteen_pk = world.users["admin1"], world.users["canteen1"]
    assert [(a, s, u) for a, s, u, _m in got] == [
        ("view", "students", admin_pk),
        ("view", "outbox", admin_pk),
        ("export", "canteen", canteen_pk),
        ("create", "user", admin_pk),
        ("password", "account", admin_pk),
    ]
    assert "New Duty" not in " ".join(m for *_x, m in got)


def test_a_consent_document_is_named_not_copied(make_browser, world: World, db: Session) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    pk = world.students["s1-3a-1"]
    admin.get(f"/students/{pk}/consents")
    r = admin.post(
        f"/students/{pk}/consents",
        {
            "kind": "notifications",
            "decision": "given",
            "given_by": "Ахметова Гүлнар",
            "document": "Өтініш №77 Ахметова",
            "signed_on": "2025-09-01",
        },
    )
    assert r.status_code in (200, 303), r.text[:300]
    summaries = [m for a, s, _u, m in _entries(db) if s == "consent"]
    assert summaries and all("Ахметова" not in m and "№77" not in m for m in summaries)
    assert "document" in summaries[-1]
