"""Pure canteen money rules: double entry (every entry sums to zero, balance = credits − debits),
amounts, menus, the reconciliation's explanations and the voucher QR token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.canteen import ledger
from server.canteen.ledger import Account, AccountKind, MoneyError, QrClaim, QrError

amounts = st.integers(min_value=1, max_value=ledger.MAX_AMOUNT_TIYN)
students = st.integers(min_value=1, max_value=5)
ops = st.one_of(
    st.tuples(st.just("topup"), students, amounts),
    st.tuples(st.just("refund"), students, amounts),
    st.tuples(st.just("meal"), students, amounts),
    st.tuples(st.just("correction"), students, amounts.flatmap(lambda a: st.sampled_from([a, -a]))),
    st.tuples(st.just("voucher_fund"), students, amounts),
    st.tuples(st.just("voucher_meal"), students, amounts),
)


def postings_of(op: tuple[str, int, int]) -> list[ledger.Posting]:
    kind, student, amount = op
    fn = getattr(ledger, kind)
    out: list[ledger.Posting] = fn(student, amount)
    return out


@given(st.lists(ops, max_size=60))
def test_every_entry_balances_and_balance_is_credits_minus_debits(
    seq: list[tuple[str, int, int]],
) -> None:
    all_postings: list[ledger.Posting] = []
    expected: dict[int, int] = {}
    for op in seq:
        entry = postings_of(op)
        assert sum(p.amount_tiyn for p in entry) == 0
        all_postings += entry
        kind, student, amount = op
        if kind in ("topup", "refund", "correction"):
            expected[student] = expected.get(student, 0) + amount
        elif kind == "meal":
            expected[student] = expected.get(student, 0) - amount
    assert sum(p.amount_tiyn for p in all_postings) == 0
    bal = ledger.balances(all_postings)
    assert sum(bal.values()) == 0
    for student, value in expected.items():
        acct = Account(AccountKind.STUDENT_BALANCE, student)
        credits = sum(
            p.amount_tiyn for p in all_postings if p.account == acct and p.amount_tiyn > 0
        )
        debits = -sum(
            p.amount_tiyn for p in all_postings if p.account == acct and p.amount_tiyn < 0
        )
        assert bal.get(acct, 0) == credits - debits == value


def test_an_unbalanced_entry_is_refused() -> None:
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.balanced([ledger.Posting(Account(AccountKind.CANTEEN_REVENUE), 5)])


@pytest.mark.parametrize("bad", [0, -1, True, 10**9 + 1])
def test_bad_amounts(bad: int) -> None:
    with pytest.raises(MoneyError):
        ledger.topup(1, bad)


def test_parse_tenge() -> None:
    assert ledger.parse_tenge("1 234,50") == 123450
    assert ledger.parse_tenge("15.5") == 1550
    assert ledger.parse_tenge("-300", allow_negative=True) == -30000
    for bad in ("-300", "abc", "", "0", "1,234"):
        with pytest.raises(MoneyError):
            ledger.parse_tenge(bad)


def test_menu_errors_are_precise() -> None:
    items, errors = ledger.parse_menu(
        "soup; Сорпа; 300\nbun; Бәліш;\ntea; Шай; -5\nsoup; Again; 1\nbread; Нан; 0; gluten"
    )
    assert [i.id for i in items] == ["soup", "bread"]
    assert items[1].price_tiyn == 0 and items[1].allergens == ("gluten",)
    assert [(e.line, e.field, e.message) for e in errors] == [
        (2, "price", "The dish has no price."),
        (3, "price", "The price must not be negative."),
        (4, "id", "This id is already on the menu."),
    ]
    assert ledger.parse_menu("")[1][0].field == "menu"


def test_reconcile_explains_each_difference() -> None:
    r = ledger.reconcile(
        ledger_tiyn=100,
        school_tiyn=100,
        unacked_credits_tiyn=0,
        acked_credits_tiyn=500,
        unposted_meals_tiyn=0,
        unsent_debits_tiyn=0,
    )
    assert r.agrees and r.differences == ()
    # credits 1000 applied + 100 applied after the last sale + 300 not yet acknowledged; sales
    # 50 posted + 50 not yet posted; 20 taken at the server only
    r = ledger.reconcile(
        ledger_tiyn=1400 - 50 - 20,
        school_tiyn=1000 - 100,
        unacked_credits_tiyn=300,
        acked_credits_tiyn=1100,
        unposted_meals_tiyn=50,
        unsent_debits_tiyn=20,
    )
    assert {d.code: d.amount_tiyn for d in r.differences} == {
        "unacked": 300,
        "unposted": 50,
        "unsent": -20,
        "after_sale": 100,
    }
    assert r.agrees
    r = ledger.reconcile(
        ledger_tiyn=100,
        school_tiyn=250,
        unacked_credits_tiyn=0,
        acked_credits_tiyn=0,
        unposted_meals_tiyn=0,
        unsent_debits_tiyn=0,
    )
    assert not r.agrees and r.unexplained_tiyn == -150


def test_low_balance_is_a_crossing() -> None:
    assert ledger.crossed_low(600, 400, 500)
    assert not ledger.crossed_low(400, 300, 500)
    assert not ledger.crossed_low(600, 500, 500)


def test_qr_token() -> None:
    key = b"k" * 32
    claim = QrClaim("s1-3a-1", 60000, "n1", 2_000)
    token = ledger.qr_sign(claim, key)
    assert ledger.qr_verify(token, key, 1_999) == claim
    with pytest.raises(QrError) as e:
        ledger.qr_verify(token, key, 2_000)
    assert e.value.code == "expired"
    with pytest.raises(QrError) as e:
        ledger.qr_verify(token, b"x" * 32, 0)
    assert e.value.code == "bad_signature"
    with pytest.raises(QrError) as e:
        ledger.qr_verify("garbage", key, 0)
    assert e.value.code == "malformed"


@given(
    credits=st.lists(st.tuples(amounts, st.booleans(), st.booleans()), max_size=8),
    sales=st.lists(st.tuples(st.integers(1, 10**6), st.booleans()), max_size=8),
    taken=st.lists(st.integers(1, 10**6), max_size=3),
)
def test_reconcile_explains_any_honest_history(
    credits: list[tuple[int, bool, bool]], sales: list[tuple[int, bool]], taken: list[int]
) -> None:
    """Credits (amount, applied at the school before its last sale, acknowledged), sales
    (amount, posted at the server) and server-only debits: every difference is explained."""
    credits = [
        (a, before, acked or before) for a, before, acked in credits
    ]  # applied => acked or in flight
    school = sum(a for a, before, _ in credits if before) - sum(a for a, _ in sales)
    ledger_total = (
        sum(a for a, _, _ in credits) - sum(a for a, posted in sales if posted) - sum(taken)
    )
    r = ledger.reconcile(
        ledger_tiyn=ledger_total,
        school_tiyn=school if sales else None,
        unacked_credits_tiyn=sum(a for a, _, acked in credits if not acked),
        acked_credits_tiyn=sum(a for a, _, acked in credits if acked),
        unposted_meals_tiyn=sum(a for a, posted in sales if not posted),
        unsent_debits_tiyn=sum(taken),
    )
    assert r.agrees, r
    if sales:
        assert sum(d.amount_tiyn for d in r.differences) == ledger_total - school
