"""The school's day, not the server's: at 20:30 UTC it is already tomorrow in Almaty (UTC+5),
so a consent signed "today" at the school is not "in the future" for the roster's checks.
The routes read the app's clock (``server.clock.get_clock``), which a test can stop."""

from __future__ import annotations

import datetime as dt
from typing import Any

import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import Clock, get_clock
from server.people.models import Student
from tests.support.console import World

UTC = dt.UTC
ALMATY = dt.timezone(dt.timedelta(hours=5))


def _new_student(surname: str, consent_date: dt.date) -> dict[str, str]:
    return {
        "school": "S1",
        "surname": surname,
        "given_name": "Оқушы",
        "class_name": "3A",
        "birth_date": "2016-01-01",
        "consent_given_by": "Ата-анасы",
        "consent_document": "№7",
        "consent_date": consent_date.isoformat(),
    }


def _added(db: Session, surname: str) -> bool:
    db.expire_all()
    return db.scalars(select(Student).where(Student.surname == surname)).first() is not None


def test_a_consent_signed_today_at_the_school_is_accepted_while_utc_is_still_yesterday(
    make_browser: Any, world: World, db: Session
) -> None:
    instant = dt.datetime(2026, 3, 1, 20, 30, tzinfo=UTC)
    school_day = instant.astimezone(ALMATY).date()
    assert school_day == dt.date(2026, 3, 2) != instant.date()  # the two dates differ
    with time_machine.travel(instant, tick=True):
        admin = make_browser("admin1")
        r = admin.post("/students", _new_student("Ертеңгі", school_day))
        assert r.status_code == 303, r.text
        assert _added(db, "Ертеңгі")
        # The day after the school's today is still refused.
        r = admin.post("/students", _new_student("Арғы", school_day + dt.timedelta(days=1)))
        assert r.status_code == 400
        assert not _added(db, "Арғы")


def test_routes_read_the_apps_clock(make_browser: Any, world: World, db: Session, app: Any) -> None:
    """The clock is a dependency: stopped at 2031-06-01 20:30 UTC (2031-06-02 at the school),
    a consent dated 2031-06-02 is today's."""
    instant = dt.datetime(2031, 6, 1, 20, 30, tzinfo=UTC)
    app.dependency_overrides[get_clock] = lambda: Clock(
        wall=lambda: int(instant.timestamp() * 1000)
    )
    try:
        admin = make_browser("admin1")
        r = admin.post("/students", _new_student("Болашақ", dt.date(2031, 6, 2)))
        assert r.status_code == 303, r.text
        assert _added(db, "Болашақ")
    finally:
        app.dependency_overrides.pop(get_clock)
