"""Demo data of the duty, card fee and trustees modules: the demo deputy director named for both shifts of this week,
the school's card price, and two parents' concerns (one answered) for the board's report."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.models import User
from server.cardfee.models import CardPrice
from server.clock import Clock, now_ms
from server.duty import rules
from server.duty.models import DutyShift
from server.models import School
from server.trustees.models import ParentConcern


def seed_demo(db: Session, school: str) -> None:
    duty = db.execute(select(User).where(User.login == "duty")).scalar_one_or_none()
    row = db.get(School, school)
    if duty is None or row is None:
        return
    now = now_ms()
    today = Clock().school_today(row)
    duty.full_name = "Абдрахманова П.К."  # seed 002: the deputy director for emergencies
    duty.phone = duty.phone or "+77010000777"
    for day in rules.week_of(today):
        for shift, (starts, ends) in rules.DEFAULT_WINDOWS.items():
            db.add(
                DutyShift(
                    school_id=school,
                    day=day,
                    shift=shift,
                    starts=starts,
                    ends=ends,
                    user_pk=duty.pk,
                    updated_at_ms=now,
                )
            )
    if db.get(CardPrice, school) is None:
        db.add(CardPrice(school_id=school, price_tiyn=10_000, updated_at_ms=now))
        row.card_price_tiyn = 10_000
    db.add_all(
        [
            ParentConcern(
                school_id=school,
                raised_on=today - dt.timedelta(days=20),
                topic="biometrics",
                text="Are the children's face photos sent to the centre?",
                answer="No: face templates are made and kept only at the school; a card instead.",
                answered_on=today - dt.timedelta(days=18),
                recorded_at_ms=now,
            ),
            ParentConcern(
                school_id=school,
                raised_on=today - dt.timedelta(days=2),
                topic="cards",
                text="How much does a new card cost if it is lost?",
                recorded_at_ms=now,
            ),
        ]
    )
    db.flush()
