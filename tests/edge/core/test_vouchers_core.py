"""The pure rules of reduced prices, vouchers and QR vouchers at the canteen terminal: the
lowest category price wins and a free meal beats any discount; vouchers pay an eligible meal
before the balance, never beyond what they hold; a QR voucher is checked with the issuer's
public key only, and used once."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.model import (
    Category,
    Dish,
    Policy,
    Purchase,
    SchoolState,
    Student,
    Voucher,
)
from edge.core.money import decide_purchase, offer
from edge.core.vouchers import allocate, price_percent, reduced_price, usable_vouchers
from protocol.messages import ConsentKind, MealKind, PolicyDoc, Reason
from protocol.vouchers import TokenError, VoucherToken, peek_token, sign_token, verify_token

ALMATY = ZoneInfo("Asia/Almaty")
DAY = dt.date(2025, 10, 6)
LUNCH = dt.datetime(2025, 10, 6, 12, 30, tzinfo=ALMATY)
DATA = frozenset({ConsentKind.DATA})
MENU = (Dish("soup", "Сорпа", 30_000), Dish("tea", "Шай", 5_000))
ISSUER = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def policy(prices: list[dict[str, object]] | None = None, free: list[str] | None = None) -> Policy:
    doc = PolicyDoc.model_validate(
        {
            "timezone": "Asia/Almaty",
            "free_meal_grades": [1, 2, 3, 4],
            "free_meal_categories": free or ["orphan"],
            "shift": [{"number": 1, "entry_from": "07:00", "entry_to": "13:00"}],
            "meal_period": [
                {"name": "breakfast", "shifts": [1], "from": "09:30", "to": "10:30"},
                {"name": "lunch", "shifts": [1], "from": "12:00", "to": "14:00"},
            ],
            "category_prices": prices or [],
        },
        strict=False,
    )
    return Policy.from_doc(doc)


def cat(code: str, start: dt.date = DAY, end: dt.date = DAY) -> Category:
    return Category(code, start, end, "doc")


def price(
    category: str, percent: int, start: str = "2025-09-01", end: str = "2026-05-31"
) -> dict[str, object]:
    return {"category": category, "percent": percent, "valid_from": start, "valid_to": end}


def voucher(
    vid: str, amount: int, end: dt.date = DAY, periods: frozenset[str] = frozenset()
) -> Voucher:
    return Voucher(vid, "wallet", "pay", amount, dt.date(2025, 10, 1), end, periods)


def school(
    balance: int = 100_000, vouchers: tuple[Voucher, ...] = (), **students: Student
) -> SchoolState:
    state = SchoolState()
    state.students = {"pay": Student("pay", 8, "8B", 1, DATA), **students}
    state.balances = {"pay": balance}
    state.menus = {DAY: MENU}
    state.vouchers_by_student = {"pay": vouchers}
    state.issuer_public_keys = {"wallet": ISSUER.public_key()}
    return state


def token(
    tid: str = "Q-1", amount: int = 20_000, student: str = "pay", **kw: object
) -> VoucherToken:
    base = VoucherToken(tid, "wallet", student, amount, DAY, DAY)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def buy(*items: str, student: str = "pay", qr: str | None = None) -> Purchase:
    return Purchase(LUNCH, "canteen-1", student, items, qr_token=qr)


# ------------------------------------------------------------------------- reduced prices


def test_reduced_price_is_policy_data_with_dates() -> None:
    p = policy([price("large_family", 50, "2025-10-01", "2025-10-31")])
    member = Student("s", 8, "8B", 1, DATA, (cat("large_family"),))
    assert price_percent(p, member, DAY) == 50
    assert price_percent(p, member, dt.date(2025, 11, 1)) == 100  # the price's dates ended
    late = Student("s", 8, "8B", 1, DATA, (cat("large_family", end=dt.date(2025, 10, 5)),))
    assert price_percent(p, late, DAY) == 100  # the membership ended
    assert price_percent(p, Student("s", 8, "8B", 1, DATA), DAY) == 100


def test_free_beats_discounted() -> None:
    p = policy([price("large_family", 50)])
    both = Student("s", 8, "8B", 1, DATA, (cat("large_family"), cat("orphan")))
    assert price_percent(p, both, DAY) == 0
    assert price_percent(p, Student("s", 3, "3A", 1, DATA, (cat("large_family"),)), DAY) == 0


@settings(max_examples=200)
@given(
    shares=st.lists(st.integers(0, 100), min_size=1, max_size=5),
    member=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_several_categories_give_the_lowest_price(shares: list[int], member: list[bool]) -> None:
    codes = [f"c{i}" for i in range(len(shares))]
    p = policy([price(c, s) for c, s in zip(codes, shares, strict=True)], free=["none"])
    cats = tuple(cat(c) for c, m in zip(codes, member, strict=False) if m)
    got = price_percent(p, Student("s", 8, "8B", 1, DATA, cats), DAY)
    mine = [s for s, m in zip(shares, member, strict=False) if m]
    assert got == min([100, *mine])


@given(st.integers(0, 10**9), st.integers(0, 100))
def test_a_reduced_price_never_exceeds_the_price(price_tiyn: int, percent: int) -> None:
    got = reduced_price(price_tiyn, percent)
    assert 0 <= got <= price_tiyn
    assert got == price_tiyn if percent == 100 else True


def test_the_terminal_charges_the_reduced_price() -> None:
    p = policy([price("large_family", 50)])
    state = school(pay=Student("pay", 8, "8B", 1, DATA, (cat("large_family"),)))
    d = decide_purchase(p, state, buy("soup", "tea"))
    assert d.granted and d.amount_tiyn == 17_500 and d.percent == 50
    assert d.balance_after_tiyn == 100_000 - 17_500
    shown = offer(p, state, "pay", DAY, "lunch")
    assert [x.pays_tiyn for x in shown.dishes] == [15_000, 2_500]


# ------------------------------------------------------------------------------- vouchers


@settings(max_examples=300)
@given(
    amount=st.integers(0, 200_000),
    available=st.lists(st.integers(0, 100_000), max_size=6),
)
def test_allocation_pays_in_order_never_beyond_what_each_holds(
    amount: int, available: list[int]
) -> None:
    sources = [(f"v{i}", a) for i, a in enumerate(available)]
    got = allocate(amount, sources)
    paid = sum(t for _, t in got)
    assert paid == min(amount, sum(available))
    held = dict(sources)
    assert all(0 < t <= held[v] for v, t in got)
    # a later source pays only once every earlier one is used up
    ids = [v for v, _ in got]
    for v, t in got[:-1]:
        assert t == held[v]
    assert ids == sorted(ids, key=lambda v: int(v[1:]))


def test_vouchers_are_spent_soonest_to_expire_first_and_only_for_their_meals() -> None:
    late = voucher("v-late", 10_000, end=dt.date(2025, 10, 31))
    soon = voucher("v-soon", 10_000, end=dt.date(2025, 10, 7))
    breakfast = voucher("v-bf", 10_000, periods=frozenset({"breakfast"}))
    expired = voucher("v-old", 10_000, end=dt.date(2025, 10, 5))
    got = usable_vouchers(
        [(late, 10_000), (soon, 10_000), (breakfast, 10_000), (expired, 10_000)], DAY, "lunch"
    )
    assert [v.id for v, _ in got] == ["v-soon", "v-late"]


@settings(max_examples=200)
@given(
    balance=st.integers(-50_000, 200_000),
    left=st.lists(st.integers(1, 60_000), max_size=3),
    items=st.lists(st.sampled_from(["soup", "tea"]), min_size=1, max_size=4),
    overdraft=st.integers(0, 20_000),
)
def test_vouchers_pay_before_the_balance(
    balance: int, left: list[int], items: list[str], overdraft: int
) -> None:
    vs = tuple(voucher(f"v{i}", a) for i, a in enumerate(left))
    p = dataclasses.replace(policy(), overdraft_tiyn=overdraft)
    d = decide_purchase(p, school(balance, vs), buy(*items))
    price_ = sum(30_000 if i == "soup" else 5_000 for i in items)
    covered = min(price_, sum(left))
    if not d.granted:
        assert d.reason is Reason.INSUFFICIENT_BALANCE
        assert balance - (price_ - covered) < -overdraft
        return
    assert d.amount_tiyn == price_
    assert d.voucher_tiyn == covered  # vouchers first, as far as they go
    assert d.balance_after_tiyn == balance - (price_ - covered)
    assert d.meal is (MealKind.PAID if price_ > covered else MealKind.VOUCHER)


def test_a_voucher_pays_even_when_the_balance_is_below_the_overdraft() -> None:
    d = decide_purchase(policy(), school(-5_000, (voucher("v", 30_000),)), buy("soup"))
    assert d.granted and d.balance_after_tiyn == -5_000 and d.meal is MealKind.VOUCHER


# ------------------------------------------------------------------------------ QR voucher


def test_a_token_round_trips_and_is_verified_with_the_public_key_only() -> None:
    text = sign_token(token(), ISSUER)
    assert text.startswith("QV1.") and len(text) < 300
    assert verify_token(text, {"wallet": ISSUER.public_key()}, DAY) == token()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("forged", "bad_signature"),
        ("tampered", "bad_signature"),
        ("unknown_issuer", "unknown_issuer"),
        ("expired", "expired"),
        ("early", "not_yet_valid"),
        ("garbage", "malformed"),
    ],
)
def test_a_bad_token_is_refused_precisely(case: str, code: str) -> None:
    keys = {"wallet": ISSUER.public_key()}
    good = sign_token(token(), ISSUER)
    text, today = good, DAY
    if case == "forged":  # signed by someone else's key (an edge cannot mint)
        text = sign_token(token(), Ed25519PrivateKey.generate())
    elif case == "tampered":  # a bigger amount pasted into a genuine token
        other = sign_token(token(amount=999_999), Ed25519PrivateKey.generate())
        text = ".".join([good.split(".")[0], other.split(".")[1], good.split(".")[2]])
    elif case == "unknown_issuer":
        keys = {}
    elif case == "expired":
        today = DAY + dt.timedelta(days=1)
    elif case == "early":
        today = DAY - dt.timedelta(days=1)
    else:
        text = "QV1.!!!.???"
    with pytest.raises(TokenError) as err:
        verify_token(text, keys, today)
    assert err.value.code == code


@given(st.text(max_size=700))
def test_any_text_is_refused_or_parsed_never_crashes(text: str) -> None:
    with contextlib.suppress(TokenError):
        peek_token(text)


def test_the_terminal_uses_a_qr_voucher_once_and_refuses_forged_or_foreign_ones() -> None:
    state = school(0)
    good = sign_token(token(amount=30_000), ISSUER)
    d = decide_purchase(policy(), state, buy("soup", qr=good))
    assert d.granted and d.vouchers == (("Q-1", 30_000),) and d.token is not None
    state.redeemed_tokens.add("Q-1")
    assert decide_purchase(policy(), state, buy("soup", qr=good)).reason is Reason.VOUCHER_USED
    forged = sign_token(token("Q-2"), Ed25519PrivateKey.generate())
    assert decide_purchase(policy(), state, buy("soup", qr=forged)).reason is Reason.VOUCHER_INVALID
    theirs = sign_token(token("Q-3", student="other"), ISSUER)
    assert decide_purchase(policy(), state, buy("soup", qr=theirs)).reason is Reason.VOUCHER_INVALID
    breakfast = sign_token(token("Q-4", meal_periods=("breakfast",)), ISSUER)
    assert (
        decide_purchase(policy(), state, buy("soup", qr=breakfast)).reason is Reason.VOUCHER_INVALID
    )
