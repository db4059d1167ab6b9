"""The centre's voucher rules, pure: what an issue may hold, the settlement against the meals
served (overspending, unknown vouchers, a QR voucher redeemed twice), and a meal split between
vouchers and balance posting as one balanced entry."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.canteen import ledger
from server.vouchers.rules import Issued, IssueForm, Use, VoucherError, check_issue, settle

TODAY = dt.date(2026, 12, 7)


def form(
    amount: int = 100_000, start: int = 0, end: int = 30, periods: tuple[str, ...] = ()
) -> IssueForm:
    return IssueForm(
        amount, TODAY + dt.timedelta(days=start), TODAY + dt.timedelta(days=end), periods
    )


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (form(amount=0), "bad_amount"),
        (form(amount=10**9 + 1), "bad_amount"),
        (form(start=5, end=1), "bad_dates"),
        (form(start=-40, end=-1), "ended"),
        (form(end=500), "too_long"),
        (form(periods=("lunch time",)), "bad_periods"),
    ],
)
def test_a_wrong_issue_is_refused_precisely(bad: IssueForm, code: str) -> None:
    with pytest.raises(VoucherError) as err:
        check_issue(bad, TODAY)
    assert err.value.code == code


def test_meal_periods_are_cleaned() -> None:
    assert check_issue(form(periods=(" lunch", "breakfast", "lunch", "")), TODAY).meal_periods == (
        "breakfast",
        "lunch",
    )


def use(
    vid: str, amount: int, seq: int, school: str = "S1", student: str = "s1", qr: bool = False
) -> Use:
    return Use(vid, student, amount, school, 1 if school == "S1" else 2, seq, qr)


def test_settlement_matches_the_meals_served() -> None:
    issued = [Issued("V-1", "card", "s1", 50_000), Issued("Q-1", "qr", "s1", 8_000)]
    uses = [use("V-1", 30_000, 1), use("V-1", 10_000, 2), use("Q-1", 5_000, 3, qr=True)]
    s = settle(issued, uses, meals_tiyn=45_000)
    assert s.matches and s.problems == ()
    assert (s.issued_tiyn, s.spent_tiyn, s.remaining_tiyn) == (58_000, 45_000, 10_000)
    lines = {v.voucher_id: v for v in s.lines}
    assert lines["Q-1"].remaining_tiyn == 0 and lines["Q-1"].lapsed_tiyn == 3_000
    assert lines["V-1"].remaining_tiyn == 10_000 and lines["V-1"].meals == 2


def test_settlement_flags_what_does_not_add_up() -> None:
    issued = [Issued("V-1", "card", "s1", 10_000), Issued("Q-1", "qr", "s1", 8_000)]
    uses = [
        use("V-1", 20_000, 1),  # overspent
        use("Q-1", 5_000, 2, qr=True),
        use("Q-1", 5_000, 7, school="S2", qr=True),  # a copy of the QR at another school
        use("V-9", 1_000, 3),  # never issued
    ]
    s = settle(issued, uses, meals_tiyn=26_000)
    assert not s.matches
    assert "voucher V-1 spent 20000 of 10000 tiyn" in s.problems
    assert "QR voucher Q-1 redeemed 2 times (schools S1, S2)" in s.problems
    assert "meals name voucher V-9, which was never issued" in s.problems
    other = settle([Issued("V-2", "card", "s1", 9)], [use("V-2", 5, 1, student="s2")], 5)
    assert other.problems == ("voucher V-2 used for another student",)


def test_a_settlement_whose_meals_disagree_does_not_match() -> None:
    s = settle([Issued("V-1", "card", "s1", 10_000)], [use("V-1", 5_000, 1)], meals_tiyn=6_000)
    assert s.problems == () and not s.matches


@given(st.integers(1, 10**9), st.data())
def test_a_split_meal_balances_and_takes_each_part_from_its_account(
    amount: int, data: st.DataObject
) -> None:
    part = data.draw(st.integers(0, amount))
    postings = ledger.split_meal(7, amount, part)
    assert sum(p.amount_tiyn for p in postings) == 0
    by = ledger.balances(postings)
    assert by.get(ledger.Account(ledger.AccountKind.STUDENT_VOUCHER, 7), 0) == -part
    assert by.get(ledger.Account(ledger.AccountKind.STUDENT_BALANCE, 7), 0) == -(amount - part)
    assert by[ledger.Account(ledger.AccountKind.CANTEEN_REVENUE)] == amount


def test_vouchers_cannot_pay_more_than_the_meal() -> None:
    with pytest.raises(ledger.MoneyError):
        ledger.split_meal(7, 100, 101)
