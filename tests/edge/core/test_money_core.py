"""The pure canteen money decisions: tap -> FREE / ALREADY SERVED / PAY / INSUFFICIENT BALANCE /
BLOCKED CARD, and purchases against balance, overdraft, allergens and the daily cap."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.decide import decide
from edge.core.model import (
    Card,
    Dish,
    MealKey,
    ParentLimits,
    Policy,
    Purchase,
    SchoolState,
    ServedMeal,
    Student,
    Tap,
)
from edge.core.money import decide_purchase, offer, pay_reason
from edge.core.reasons import HEADLINES, MESSAGES, Lang, Screen
from protocol.messages import ConsentKind, MealKind, OwnerKind, PolicyDoc, Reason, TerminalKind

ALMATY = ZoneInfo("Asia/Almaty")
DAY = dt.date(2025, 10, 6)
LUNCH = dt.datetime(2025, 10, 6, 12, 30, tzinfo=ALMATY)
DATA = frozenset({ConsentKind.DATA})
MENU = (
    Dish("soup", "Сорпа", 30_000, frozenset()),
    Dish("porridge", "Ботқа", 35_000, frozenset({"milk"})),
    Dish("bun", "Бәліш", 15_000, frozenset({"gluten", "nuts"})),
    Dish("tea", "Шай", 5_000, frozenset()),
)


def policy(overdraft: int = 0) -> Policy:
    doc = PolicyDoc.model_validate(
        {
            "timezone": "Asia/Almaty",
            "free_meal_grades": [1, 2, 3, 4],
            "shift": [{"number": 1, "entry_from": "07:00", "entry_to": "13:00"}],
            "meal_period": [
                {"name": "breakfast", "shifts": [1], "from": "09:30", "to": "10:30"},
                {"name": "lunch", "shifts": [1], "from": "12:00", "to": "14:00"},
            ],
        },
        strict=False,
    )
    return Policy.from_doc(doc, overdraft_tiyn=overdraft)


def school(balance: int = 100_000, menu: tuple[Dish, ...] = MENU) -> SchoolState:
    state = SchoolState()
    state.students = {
        "free": Student("free", 2, "2A", 1, DATA),
        "pay": Student("pay", 8, "8B", 1, DATA),
        "nocons": Student("nocons", 8, "8B", 1, frozenset()),
    }
    state.cards = {
        "EM:1": Card("EM:1", OwnerKind.STUDENT, "free"),
        "EM:2": Card("EM:2", OwnerKind.STUDENT, "pay"),
        "EM:3": Card("EM:3", OwnerKind.STUDENT, "pay", blocked_reason="lost"),
        "EM:4": Card("EM:4", OwnerKind.STUDENT, "nocons"),
    }
    state.balances = {"pay": balance}
    state.menus = {DAY: menu}
    return state


def tap(card: str, at: dt.datetime = LUNCH) -> Tap:
    return Tap(at=at, terminal="canteen-1", kind=TerminalKind.CANTEEN, credential=card)


def buy(*items: str, student: str = "pay", at: dt.datetime = LUNCH) -> Purchase:
    return Purchase(at=at, terminal="canteen-1", student_id=student, items=items)


def test_tap_decisions_free_already_served_pay_insufficient_blocked() -> None:
    pol, state = policy(), school()
    d = decide(pol, state, tap("EM:1"))
    assert (d.granted, d.reason, d.meal) == (True, Reason.OK, MealKind.FREE)
    state.meals[MealKey("free", DAY, "lunch")] = ServedMeal(LUNCH, "canteen-2")
    d = decide(pol, state, tap("EM:1"))
    assert d.reason is Reason.ALREADY_SERVED and d.served_before == ServedMeal(LUNCH, "canteen-2")
    d = decide(pol, state, tap("EM:2"))
    assert (d.granted, d.reason, d.balance_tiyn) == (False, Reason.PAY, 100_000)
    assert decide(pol, school(balance=4_999), tap("EM:2")).reason is Reason.INSUFFICIENT_BALANCE
    assert decide(pol, state, tap("EM:3")).reason is Reason.CARD_BLOCKED
    assert decide(pol, state, tap("EM:4")).reason is Reason.NO_CONSENT
    # no menu today: the canteen sells nothing, as before money came to the school
    assert decide(pol, school(menu=()), tap("EM:2")).reason is Reason.NOT_ELIGIBLE


def test_overdraft_is_the_only_way_below_zero() -> None:
    state = school(balance=10_000)
    assert decide_purchase(policy(), state, buy("soup")).reason is Reason.INSUFFICIENT_BALANCE
    d = decide_purchase(policy(overdraft=20_000), state, buy("soup"))
    assert (d.granted, d.amount_tiyn, d.balance_after_tiyn) == (True, 30_000, -20_000)
    d = decide_purchase(policy(overdraft=20_000), state, buy("soup", "tea"))
    assert d.reason is Reason.INSUFFICIENT_BALANCE and d.balance_after_tiyn == 10_000
    assert decide(policy(overdraft=20_000), school(balance=-15_000), tap("EM:2")).reason is (
        Reason.PAY
    )


def test_parent_allergen_blocks_and_daily_cap() -> None:
    state = school()
    state.parent_limits["pay"] = ParentLimits(frozenset({"milk", "nuts"}), daily_cap_tiyn=40_000)
    d = decide_purchase(policy(), state, buy("porridge"))
    assert d.reason is Reason.ALLERGEN_BLOCKED and d.blocked_allergens == {"milk"}
    assert decide_purchase(policy(), state, buy("bun", "tea")).blocked_allergens == {"nuts"}
    assert decide_purchase(policy(), state, buy("soup", "soup")).reason is (
        Reason.DAILY_CAP_EXCEEDED
    )
    assert decide_purchase(policy(), state, buy("soup", "tea")).granted
    state.spending[("pay", DAY)] = 30_000
    assert decide_purchase(policy(), state, buy("soup")).reason is Reason.DAILY_CAP_EXCEEDED
    o = offer(policy(), state, "pay", DAY)
    assert o.cap_left_tiyn == 10_000
    assert [d.dish.id for d in o.dishes if d.allowed] == ["tea"]
    state.spending[("pay", DAY)] = 36_000
    assert pay_reason(offer(policy(), state, "pay", DAY)) is Reason.DAILY_CAP_EXCEEDED
    state.menus[DAY] = (MENU[1],)
    assert pay_reason(offer(policy(), state, "pay", DAY)) is Reason.ALLERGEN_BLOCKED


def test_purchase_refusals() -> None:
    pol, state = policy(), school()
    assert decide_purchase(pol, state, buy("cake")).reason is Reason.NOT_ON_MENU
    assert decide_purchase(pol, state, buy()).reason is Reason.NOT_ON_MENU
    assert decide_purchase(pol, state, buy("soup", student="ghost")).reason is (
        Reason.UNKNOWN_STUDENT
    )
    assert decide_purchase(pol, state, buy("soup", student="nocons")).reason is Reason.NO_CONSENT
    assert decide_purchase(pol, state, buy("soup", student="free")).reason is (
        Reason.NOT_ALLOWED_HERE
    )
    late = dt.datetime(2025, 10, 6, 15, 0, tzinfo=ALMATY)
    assert decide_purchase(pol, state, buy("soup", at=late)).reason is Reason.OUTSIDE_MEAL_PERIOD
    d = decide_purchase(pol, state, buy("soup", "tea", "tea"))
    assert (d.granted, d.meal, d.meal_period, d.amount_tiyn) == (
        True,
        MealKind.PAID,
        "lunch",
        40_000,
    )


def test_every_new_reason_and_screen_speaks_three_languages() -> None:
    for reason in (
        Reason.PAY,
        Reason.INSUFFICIENT_BALANCE,
        Reason.ALLERGEN_BLOCKED,
        Reason.DAILY_CAP_EXCEEDED,
        Reason.NOT_ON_MENU,
    ):
        assert set(MESSAGES[reason]) == set(Lang)
    assert set(HEADLINES) == set(Screen)
    assert all(set(h) == set(Lang) for h in HEADLINES.values())


# --------------------------------------------------------------------------------- properties

ITEM_IDS = [d.id for d in MENU]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("buy"), st.lists(st.sampled_from(ITEM_IDS), min_size=0, max_size=4)),
        st.tuples(st.just("credit"), st.integers(min_value=1, max_value=60_000)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(min_value=0, max_value=200_000),
    overdraft=st.integers(min_value=0, max_value=50_000),
    cap=st.one_of(st.none(), st.integers(min_value=0, max_value=300_000)),
    blocks=st.sets(st.sampled_from(["milk", "nuts", "gluten"])),
    script=ops,
)
def test_money_properties(
    start: int,
    overdraft: int,
    cap: int | None,
    blocks: set[str],
    script: list[tuple[str, object]],
) -> None:
    """Applying granted purchases: the balance never goes below -overdraft (unless it started
    there), debits equal receipts equal the sum of granted amounts, the cap and the parent's
    allergen blocks are never broken, and a refusal changes nothing."""
    pol = policy(overdraft)
    state = school(balance=start)
    state.parent_limits["pay"] = ParentLimits(frozenset(blocks), cap)
    credits = debits = 0
    receipts: list[int] = []
    menu = {d.id: d for d in MENU}
    for i, (kind, arg) in enumerate(script):
        at = LUNCH + dt.timedelta(seconds=i)
        if kind == "credit":
            assert isinstance(arg, int)
            state.balances["pay"] += arg
            credits += arg
            continue
        assert isinstance(arg, list)
        before = dataclasses.replace(state)
        d = decide_purchase(pol, state, buy(*arg, at=at))
        if not d.granted:
            assert d.balance_after_tiyn == d.balance_before_tiyn == state.balance("pay")
            assert state == before
            continue
        assert d.amount_tiyn == sum(menu[x].price_tiyn for x in arg)
        assert not any(menu[x].allergens & blocks for x in arg)
        state.balances["pay"] = d.balance_after_tiyn
        state.spending[("pay", DAY)] = state.spent("pay", DAY) + d.amount_tiyn
        debits += d.amount_tiyn
        receipts.append(d.amount_tiyn)
        assert state.balance("pay") >= -overdraft
        assert cap is None or state.spent("pay", DAY) <= cap
    assert debits == sum(receipts)
    assert state.balance("pay") == start + credits - debits
