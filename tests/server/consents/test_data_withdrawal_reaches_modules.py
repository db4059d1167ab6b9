"""Without data consent nothing of the child stays in the modules: withdrawing it removes the
gifted registry's entry and roadmap and the equipment survey's answers (each module's own consent
withdrawal did already; the data consent, the ground of all, did not)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.clock import now_ms
from server.equipment import service as equipment
from server.equipment.models import SurveyAnswer
from server.gifted import service as gifted
from server.gifted.models import GiftedEntry, Nomination
from server.people.models import Student
from tests.support.consents import give
from tests.support.console import World


def count(db: Session, model: Any) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_withdrawing_data_consent_empties_the_registry_and_the_survey(
    make_browser: Any, world: World, db: Session
) -> None:
    pk = world.students["s1-3a-1"]
    admin = make_browser("admin1")
    for kind in ("data", "gifted", "equipment_survey"):
        assert give(admin, pk, kind=kind).status_code == 200, kind
    st = db.get_one(Student, pk)
    who = Principal(
        world.users["operator"], "operator", "Operator", "en", "", [Grant(Role.OPERATOR)]
    )
    today = dt.date.today()
    form = gifted.parse_nomination(
        "teacher", "Mathematics", "", "", "", "", "", today.isoformat(), today
    )
    gifted.nominate(db, who, st, form)
    gifted.enter(db, who, st, today)
    campaign = equipment.create_campaign(
        db,
        "R1",
        name="One device per child",
        period="2026",
        goal_tiyn=100_000,
        planned_unit_price_tiyn=10_000,
        starts_on=today,
        deadline=today + dt.timedelta(days=90),
        fund_name="Fund",
        now=now_ms(),
    )
    equipment.record_answer(
        db, who, campaign, st, has_computer=False, low_income=True, applied_at_ms=now_ms()
    )
    db.commit()
    assert (count(db, GiftedEntry), count(db, Nomination), count(db, SurveyAnswer)) == (1, 1, 1)

    r = give(admin, pk, kind="data", decision="withdrawn")
    assert r.status_code == 200
    assert (count(db, GiftedEntry), count(db, Nomination), count(db, SurveyAnswer)) == (0, 0, 0)
