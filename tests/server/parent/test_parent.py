"""The parent's page and the notifications admin page: scope, content, preferences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from server.audit.models import AuditEntry
from server.clock import now_ms
from server.db import make_engine
from server.notify.delivery import DeliveryWorker
from server.notify.models import NotifyPreference
from server.notify.planner import Planner
from server.notify.settings import NotifySettings
from server.people.models import Guardian
from server.settings import ServerSettings
from simulators.notify_sinks import SmsSink
from tests.support.console import World
from tests.support.notify import add_device, consent, store

CHILD = "s1-3a-1"


@pytest.fixture
def engine(settings: ServerSettings) -> Iterator[Engine]:
    e = make_engine(settings.database_url)
    yield e
    e.dispose()


def _traffic(db: Session, world: World, engine: Engine, sms: SmsSink) -> None:
    """Today: parent1's child entered, ate, left; a child of S3 entered; all notified."""
    nset = NotifySettings(sms_url=sms.url())
    d1, d3 = add_device(db, "S1"), add_device(db, "S3")
    for ref in (CHILD, "s3-3a-1"):
        consent(db, world.students[ref])
    g3 = Guardian(full_name="Parent Three", phone="+77010000003")
    db.add(g3)
    db.flush()
    from server.people.models import StudentGuardian

    db.add(StudentGuardian(student_pk=world.students["s3-3a-1"], guardian_pk=g3.pk))
    db.commit()
    t = now_ms() - 60_000
    store(db, d1, "S1", "entry", CHILD, t)
    store(
        db,
        d1,
        "S1",
        "meal_served",
        CHILD,
        t + 1000,
        period="lunch",
        local_date="2026-11-20",
        meal="lunch",
        amount_tiyn=0,
    )
    store(db, d1, "S1", "manual_pass", CHILD, t + 2000, authorised_by="t-1", direction="out")
    store(db, d3, "S3", "entry", "s3-3a-1", t)
    Planner(engine, nset).run_once()
    w = DeliveryWorker(engine, nset)
    while w.run_once():
        pass


def test_parent_sees_only_their_own_child(
    make_browser,
    world: World,
    db: Session,
    engine: Engine,  # type: ignore[no-untyped-def]
) -> None:
    with SmsSink() as sms:
        _traffic(db, world, engine, sms)
    parent = make_browser("parent1")
    r = parent.get("/parent")
    assert r.status_code == 200
    assert "NameS3A" not in r.text  # sanity: names are Name3AS1 etc.
    assert "Name3AS1" in r.text and "Name3AS3" not in r.text and "Name7BS1" not in r.text
    pk = world.students[CHILD]
    r = parent.get(f"/parent/child/{pk}")
    assert r.status_code == 200
    assert "Name3AS1" in r.text
    # the notifications sent to this parent: the entry and the manual pass (defaults), sent
    assert r.text.count("мектепке кірді") == 1 and "картасыз шықты" in r.text
    # audited: a parent viewed their child's data
    assert db.execute(
        select(AuditEntry).where(AuditEntry.student_pk == pk, AuditEntry.subject == "parent.child")
    ).first()
    # another student, of the same class or another school: not found
    for other in ("s1-3a-2", "s3-3a-1"):
        assert parent.get(f"/parent/child/{world.students[other]}").status_code == 404
        g = db.execute(select(Guardian)).scalars().first()
        assert g is not None
        r = parent.post(
            f"/parent/child/{world.students[other]}/guardian/{g.pk}", {"entry:sms": "on"}
        )
        assert r.status_code == 404
    # staff have no parent page
    assert make_browser("admin1").get("/parent").status_code == 403


def test_parent_edits_preferences_with_precise_errors(
    make_browser, world: World, db: Session
) -> None:  # type: ignore[no-untyped-def]
    parent = make_browser("parent1")
    pk = world.students[CHILD]
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    page = parent.get(f"/parent/child/{pk}")
    assert 'name="entry:sms" aria-label' in page.text and "checked" in page.text  # defaults shown
    r = parent.post(
        f"/parent/child/{pk}/guardian/{g.pk}",
        {"entry:sms": "on", "meal:sms": "on", "quiet_start": "22:00", "quiet_end": "7:5"},
    )
    assert r.status_code == 400 and "22:00" in r.text
    assert db.get(NotifyPreference, (g.pk, pk)) is None  # nothing saved
    r = parent.post(
        f"/parent/child/{pk}/guardian/{g.pk}",
        {"entry:sms": "on", "meal:sms": "on", "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert r.status_code == 303
    db.expire_all()
    row = db.get(NotifyPreference, (g.pk, pk))
    assert row is not None and sorted(row.subscriptions) == [["entry", "sms"], ["meal", "sms"]]
    assert (row.quiet_start_min, row.quiet_end_min) == (22 * 60, 7 * 60)


def test_admin_outbox_is_scoped_and_admin_edits_preferences(
    make_browser,
    world: World,
    db: Session,
    engine: Engine,  # type: ignore[no-untyped-def]
) -> None:
    with SmsSink() as sms:
        _traffic(db, world, engine, sms)
    admin1 = make_browser("admin1")
    r = admin1.get("/notifications")
    assert r.status_code == 200
    assert CHILD in r.text and "s3-3a-1" not in r.text
    assert make_browser("admin3").get("/notifications").text.count("s3-3a-1") >= 1
    assert "s1-3a-1" not in make_browser("admin3").get("/notifications/rows").text
    assert admin1.get("/notifications?school=S3").status_code == 404
    op = make_browser("operator").get("/notifications")
    assert CHILD in op.text and "s3-3a-1" in op.text
    for login in ("teacher1", "duty1", "parent1", "regional"):
        assert make_browser(login).get("/notifications").status_code == 403
    # the admin edits the preferences of a parent of their school, not of another school
    pk = world.students[CHILD]
    g = db.execute(select(Guardian).where(Guardian.user_pk == world.users["parent1"])).scalar_one()
    assert admin1.get(f"/notifications/student/{pk}").status_code == 200
    assert (
        admin1.get("/notifications?student=s1-3a-1").headers["location"]
        == f"/notifications/student/{pk}"
    )
    r = admin1.post(f"/notifications/student/{pk}/guardian/{g.pk}", {"exit:sms": "on"})
    assert r.status_code == 303
    db.expire_all()
    row = db.get(NotifyPreference, (g.pk, pk))
    assert row is not None and row.subscriptions == [["exit", "sms"]]
    admin3 = make_browser("admin3")
    assert admin3.get(f"/notifications/student/{pk}").status_code == 404
    assert (
        admin3.post(f"/notifications/student/{pk}/guardian/{g.pk}", {"entry:sms": "on"}).status_code
        == 404
    )
