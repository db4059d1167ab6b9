"""The demo's path: the same planner and workers on SQLite (one machine, no PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from server.db import make_engine, session_factory
from server.migrate import upgrade
from server.notify.delivery import DeliveryWorker
from server.notify.planner import Planner
from server.notify.settings import NotifySettings
from server.people.models import Guardian, SchoolClass, StudentGuardian
from server.people.service import add_school
from simulators.notify_sinks import SmsSink
from tests.support.console import add_student
from tests.support.notify import add_device, consent, outbox, store


def test_planner_and_worker_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(url)
    engine = make_engine(url)
    db: Session = session_factory(engine)()
    add_school(db, "D1", "Demo School")
    c = SchoolClass(school_id="D1", name="1A", grade=1, shift=1)
    db.add(c)
    db.flush()
    st = add_student(db, "D1", c.pk, "d1-1", "Demo", "Айдана")
    g = Guardian(full_name="Parent", phone="+77010000009")
    db.add(g)
    db.flush()
    db.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
    db.commit()
    consent(db, st.pk)
    dev = add_device(db, "D1")
    store(db, dev, "D1", "entry", "d1-1")
    with SmsSink() as sms:
        nset = NotifySettings(sms_url=sms.url())
        assert Planner(engine, nset).run_once() == 1
        assert Planner(engine, nset).run_once() == 0
        assert DeliveryWorker(engine, nset).run_once() == 1
        [got] = sms.delivered
    assert "Айдана" in got.message and got.to == "+77010000009"
    assert [m.status for m in outbox(db)] == ["sent"]
    db.close()
    engine.dispose()


def test_demo_notifications_deliver_from_a_running_service(tmp_path: Path) -> None:
    """What ``qaqpa demo`` would run: the service with both sinks, on the demo's SQLite."""
    from simulators.notify_sinks import demo_notifications

    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade(url)
    engine = make_engine(url)
    db: Session = session_factory(engine)()
    add_school(db, "D1", "Demo School")
    c = SchoolClass(school_id="D1", name="1A", grade=1, shift=1)
    db.add(c)
    db.flush()
    st = add_student(db, "D1", c.pk, "d1-1", "Demo", "Айдана")
    g = Guardian(full_name="Parent", phone="+77010000009")
    db.add(g)
    db.flush()
    db.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
    db.commit()
    consent(db, st.pk)
    dev = add_device(db, "D1")
    with demo_notifications(url) as (sms, _smtp):
        store(db, dev, "D1", "manual_pass", "d1-1", authorised_by="t-1", direction="in")
        [got] = sms.wait_for(1, timeout=30)
    assert "Айдана" in got.message and "картасыз" in got.message
    db.close()
    engine.dispose()
