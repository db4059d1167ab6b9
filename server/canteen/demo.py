"""The demo school's canteen, entered at the server as in production: the day's menu, the
parents' top-ups and some parents' limits are booked here and reach the school's edge through
the signed downlink (nothing is put into the edge store directly)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Grant, Principal, Role
from server.accounts.models import User
from server.canteen import ledger, service
from server.models import School
from server.people.models import Student


@dataclass(frozen=True, slots=True)
class DemoLimits:
    student_ref: str
    allergens: tuple[str, ...]
    daily_cap_tiyn: int | None


def _manager(db: Session, login: str) -> Principal:
    """The demo's canteen manager books the demo's money (the audit names who did)."""
    u = db.scalar(select(User).where(User.login == login))
    if u is None:
        raise LookupError(f"no account {login!r}: seed the demo's accounts first")
    return Principal(u.pk, u.login, u.full_name, u.lang, "", [Grant(Role.CANTEEN_MANAGER)])


def seed_canteen(
    db: Session,
    school_id: str,
    today: dt.date,
    menu: Sequence[ledger.MenuLine],
    topups: Sequence[tuple[str, int]],
    limits: Sequence[DemoLimits],
    manager: str = "canteen",
) -> int:
    """Menu of ``today``, one cash top-up per (student ref, tiyn) and the limits, each booked
    once (a second run books no top-up twice). Returns the school's change-log head to wait
    for."""
    who = _manager(db, manager)
    service.set_menu(db, who, school_id, today, menu)
    refs = {r for r, _ in topups} | {lim.student_ref for lim in limits}
    students = {
        s.ref: s
        for s in db.scalars(
            select(Student).where(Student.school_id == school_id, Student.ref.in_(refs))
        )
    }
    for ref, amount in topups:
        st = students.get(ref)
        if st is not None:
            service.book_cash_topup(db, who, st, amount, f"demo-topup-{ref}")
    for lim in limits:
        st = students.get(lim.student_ref)
        if st is not None:
            service.set_limits(db, who, st, list(lim.allergens), lim.daily_cap_tiyn)
    db.flush()
    return int(db.scalar(select(School.sync_version).where(School.id == school_id)) or 0)
