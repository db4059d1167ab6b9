"""Canteen money at the school: pure decisions over (policy, state, purchase), ``now`` passed in.

The balance held at the school is authoritative for spending until the server reconciles: a
purchase is granted only if the balance minus the price stays at or above ``-overdraft``
(``Policy.overdraft_tiyn``, 0 by default), within the parent's daily cap, and with no item holding
an allergen the parent blocked. All amounts are integer tiyn.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from edge.core.meals import free_meal_eligible, meal_period_at
from edge.core.model import Dish, Policy, Purchase, StateView
from protocol.messages import ConsentKind, MealKind, Reason

MAX_PORTIONS = 20  # per purchase: a slip of the finger, not a class party


@dataclass(frozen=True, slots=True)
class OfferedDish:
    dish: Dish
    blocked_allergens: frozenset[str]  # the parent blocked these; the dish cannot be sold
    affordable: bool  # alone, within the balance + overdraft and the cap left today

    @property
    def allowed(self) -> bool:
        return not self.blocked_allergens and self.affordable


@dataclass(frozen=True, slots=True)
class Offer:
    """What the PAY screen shows a paying student: today's menu against their money rules."""

    balance_tiyn: int
    overdraft_tiyn: int
    spent_today_tiyn: int
    cap_left_tiyn: int | None  # None: no daily cap
    dishes: tuple[OfferedDish, ...]

    @property
    def spendable_tiyn(self) -> int:
        """What can be spent now: balance + overdraft, bounded by the cap left today."""
        room = max(0, self.balance_tiyn + self.overdraft_tiyn)
        return room if self.cap_left_tiyn is None else min(room, self.cap_left_tiyn)


def offer(policy: Policy, state: StateView, student_id: str, day: dt.date) -> Offer:
    balance = state.balance(student_id)
    limits = state.limits(student_id)
    spent = state.spent(student_id, day)
    cap_left = None if limits.daily_cap_tiyn is None else max(0, limits.daily_cap_tiyn - spent)
    room = balance + policy.overdraft_tiyn
    dishes = tuple(
        OfferedDish(
            dish=d,
            blocked_allergens=d.allergens & limits.allergen_blocks,
            affordable=d.price_tiyn <= room and (cap_left is None or d.price_tiyn <= cap_left),
        )
        for d in state.menu(day)
    )
    return Offer(balance, policy.overdraft_tiyn, spent, cap_left, dishes)


def pay_reason(o: Offer) -> Reason:
    """PAY when at least one dish can be bought now; else why none can."""
    if any(d.allowed for d in o.dishes):
        return Reason.PAY
    sellable = [d for d in o.dishes if not d.blocked_allergens]
    if not sellable:
        return Reason.ALLERGEN_BLOCKED
    cheapest = min(d.dish.price_tiyn for d in sellable)
    if o.cap_left_tiyn is not None and cheapest > o.cap_left_tiyn:
        return Reason.DAILY_CAP_EXCEEDED
    return Reason.INSUFFICIENT_BALANCE


@dataclass(frozen=True, slots=True)
class PurchaseDecision:
    granted: bool
    reason: Reason
    local_date: dt.date
    student_id: str
    meal_period: str | None = None
    meal: MealKind | None = None  # PAID when granted
    items: tuple[str, ...] = ()
    amount_tiyn: int = 0
    balance_before_tiyn: int = 0
    balance_after_tiyn: int = 0  # equals before unless granted
    blocked_allergens: frozenset[str] = frozenset()


def decide_purchase(policy: Policy, state: StateView, purchase: Purchase) -> PurchaseDecision:
    """Sell ``purchase.items`` to a paying student, or say why not. Pure: ``purchase.at`` is now."""
    local = purchase.at.astimezone(policy.timezone)
    day = local.date()
    sid = purchase.student_id
    balance = state.balance(sid)

    def refuse(reason: Reason, **kw: object) -> PurchaseDecision:
        return PurchaseDecision(
            False,
            reason,
            day,
            sid,
            items=purchase.items,
            balance_before_tiyn=balance,
            balance_after_tiyn=balance,
            **kw,  # type: ignore[arg-type]
        )

    student = state.student(sid)
    if student is None:
        return refuse(Reason.UNKNOWN_STUDENT)
    if ConsentKind.DATA not in student.consents:
        return refuse(Reason.NO_CONSENT)
    period = meal_period_at(policy, student.shift, local.time())
    if period is None:
        return refuse(Reason.OUTSIDE_MEAL_PERIOD)
    if free_meal_eligible(policy, student, day):
        # the free meal covers this student; the terminal sells only to paying students
        return refuse(Reason.NOT_ALLOWED_HERE, meal_period=period.name)
    menu = {d.id: d for d in state.menu(day)}
    if not purchase.items or len(purchase.items) > MAX_PORTIONS:
        return refuse(Reason.NOT_ON_MENU, meal_period=period.name)
    if any(i not in menu for i in purchase.items):
        return refuse(Reason.NOT_ON_MENU, meal_period=period.name)
    limits = state.limits(sid)
    blocked = frozenset().union(*(menu[i].allergens for i in purchase.items))
    blocked &= limits.allergen_blocks
    if blocked:
        return refuse(Reason.ALLERGEN_BLOCKED, meal_period=period.name, blocked_allergens=blocked)
    amount = sum(menu[i].price_tiyn * n for i, n in Counter(purchase.items).items())
    spent = state.spent(sid, day)
    if limits.daily_cap_tiyn is not None and spent + amount > limits.daily_cap_tiyn:
        return refuse(Reason.DAILY_CAP_EXCEEDED, meal_period=period.name, amount_tiyn=amount)
    after = balance - amount
    if after < -policy.overdraft_tiyn:
        return refuse(Reason.INSUFFICIENT_BALANCE, meal_period=period.name, amount_tiyn=amount)
    return PurchaseDecision(
        True,
        Reason.OK,
        day,
        sid,
        meal_period=period.name,
        meal=MealKind.PAID,
        items=purchase.items,
        amount_tiyn=amount,
        balance_before_tiyn=balance,
        balance_after_tiyn=after,
    )
