"""Money paid in at the school's office and the demo's canteen: booked in the server's ledger,
sent to the school by the change log (issue 14: the demo's money entered the edge directly)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import BalanceCredit, MenuSet, ParentLimitsSet
from server.accounts.access import Principal
from server.audit.models import AuditEntry
from server.canteen import service
from server.canteen.demo import DemoLimits, seed_canteen
from server.canteen.ledger import MenuLine
from server.canteen.models import LedgerEntry, Posting
from server.people.models import Student
from tests.server.canteen.test_canteen import changes, ledger_balance
from tests.support.console import World


def manager(world: World) -> Principal:
    return Principal(world.users["canteen1"], "canteen1", "Canteen", "en", "x", [])


def test_cash_topup_is_booked_once_audited_and_sent(world: World, db: Session) -> None:
    st = db.get(Student, world.students["s1-3a-1"])
    assert st is not None
    first = service.book_cash_topup(db, manager(world), st, 150_000, "r-1")
    again = service.book_cash_topup(db, manager(world), st, 150_000, "r-1")
    db.commit()
    assert not first.duplicate and again.duplicate and again.entry_id == first.entry_id
    assert ledger_balance(db, st.pk) == 150_000
    assert db.scalar(select(func.sum(Posting.amount_tiyn))) == 0  # balanced
    credits = [c for c in changes(db, "S1") if isinstance(c, BalanceCredit)]
    assert [(c.student_id, c.amount_tiyn) for c in credits] == [("s1-3a-1", 150_000)]
    audited = db.scalars(select(AuditEntry.summary).where(AuditEntry.action == "canteen.book"))
    assert [s for s in audited if "cash" in s] and len(list(changes(db, "S1"))) == 1


@pytest.mark.parametrize("amount", [0, -100])
def test_cash_topup_refuses_a_non_positive_amount(world: World, db: Session, amount: int) -> None:
    st = db.get(Student, world.students["s1-3a-1"])
    assert st is not None
    with pytest.raises(service.CanteenError) as err:
        service.book_cash_topup(db, manager(world), st, amount, "r-2")
    assert err.value.code == "bad_amount"
    db.rollback()
    assert db.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_cash_topup_refuses_the_same_reference_for_another_amount(
    world: World, db: Session
) -> None:
    st = db.get(Student, world.students["s1-3a-1"])
    assert st is not None
    service.book_cash_topup(db, manager(world), st, 150_000, "r-3")
    with pytest.raises(service.CanteenError) as err:
        service.book_cash_topup(db, manager(world), st, 160_000, "r-3")
    assert err.value.code == "txid_conflict"


def test_demo_canteen_enters_at_the_server(world: World, db: Session) -> None:
    day = dt.date(2026, 10, 8)
    menu = [MenuLine("plov", "Палау", 65_000, ()), MenuLine("shai", "Шай", 5_000, ())]
    topups = [("s1-3a-1", 1_500_000), ("s1-3a-2", 2_000), ("nobody", 100)]
    limits = [DemoLimits("s1-3a-2", ("milk",), 80_000)]
    head = seed_canteen(db, "S1", day, menu, topups, limits, "canteen1")
    db.commit()
    again = seed_canteen(db, "S1", day, menu, topups, limits, "canteen1")  # no top-up booked twice
    db.commit()
    assert again > head > 0
    assert ledger_balance(db, world.students["s1-3a-1"]) == 1_500_000
    assert ledger_balance(db, world.students["s1-3a-2"]) == 2_000
    sent = changes(db, "S1")
    assert [(c.student_id, c.amount_tiyn) for c in sent if isinstance(c, BalanceCredit)] == [
        ("s1-3a-1", 1_500_000),
        ("s1-3a-2", 2_000),
    ]
    menus = [c for c in sent if isinstance(c, MenuSet)]
    assert menus and [i.id for i in menus[-1].items] == ["plov", "shai"]
    lims = [c for c in sent if isinstance(c, ParentLimitsSet)]
    assert lims[-1].student_id == "s1-3a-2" and lims[-1].daily_cap_tiyn == 80_000
