"""Canteen money at the school: pure decisions over (policy, state, purchase), ``now`` passed in.

The balance held at the school is authoritative for spending until the server reconciles: a
purchase is granted only if the balance minus the price stays at or above ``-overdraft``
(``Policy.overdraft_tiyn``, 0 by default), within the parent's daily cap, and with no item holding
an allergen the parent blocked. All amounts are integer tiyn.

Reduced prices and vouchers (``edge.core.vouchers``): the student pays the lowest share of the
menu price their categories give; a QR voucher shown for the meal pays first, then the card
vouchers usable for this meal, and the balance (with its overdraft rule) only the rest. The
parent's daily cap counts the whole price of what the child ate, whoever paid.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from edge.core.meals import free_meal_eligible, meal_period_at
from edge.core.model import Dish, Policy, Purchase, StateView
from edge.core.vouchers import allocate, price_percent, reduced_price, usable_vouchers
from protocol.messages import ConsentKind, MealKind, Reason
from protocol.vouchers import TokenError, VoucherToken, verify_token

MAX_PORTIONS = 20  # per purchase: a slip of the finger, not a class party


@dataclass(frozen=True, slots=True)
class OfferedDish:
    dish: Dish
    blocked_allergens: frozenset[str]  # the parent blocked these; the dish cannot be sold
    affordable: bool  # alone, within vouchers + balance + overdraft and the cap left today
    price_tiyn: int = -1  # what this student pays for it (a reduced price); -1: the menu's

    @property
    def pays_tiyn(self) -> int:
        return self.dish.price_tiyn if self.price_tiyn < 0 else self.price_tiyn

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
    voucher_tiyn: int = 0  # social-wallet vouchers usable for this meal (card + QR shown)
    percent: int = 100  # the share of menu prices this student pays (reduced price)

    @property
    def spendable_tiyn(self) -> int:
        """What can be spent now: vouchers + balance + overdraft, bounded by the cap left."""
        room = self.voucher_tiyn + max(0, self.balance_tiyn + self.overdraft_tiyn)
        return room if self.cap_left_tiyn is None else min(room, self.cap_left_tiyn)


def voucher_money(state: StateView, student_id: str, day: dt.date, period: str | None) -> int:
    """What the student's card vouchers can pay for a meal of ``period`` on ``day``."""
    if period is None:
        return 0
    held = ((v, state.voucher_left(v)) for v in state.vouchers(student_id))
    return sum(left for _, left in usable_vouchers(held, day, period))


def offer(
    policy: Policy,
    state: StateView,
    student_id: str,
    day: dt.date,
    period: str | None = None,
    token_tiyn: int = 0,
) -> Offer:
    """The PAY screen's figures; ``period`` (the meal period now) lets vouchers count, and
    ``token_tiyn`` is the value of a QR voucher shown for this meal."""
    balance = state.balance(student_id)
    limits = state.limits(student_id)
    spent = state.spent(student_id, day)
    cap_left = None if limits.daily_cap_tiyn is None else max(0, limits.daily_cap_tiyn - spent)
    vouchers = token_tiyn + voucher_money(state, student_id, day, period)
    student = state.student(student_id)
    percent = 100 if student is None else price_percent(policy, student, day)
    dishes = []
    for d in state.menu(day):
        price = reduced_price(d.price_tiyn, percent)
        dishes.append(
            OfferedDish(
                dish=d,
                blocked_allergens=d.allergens & limits.allergen_blocks,
                affordable=price <= vouchers + max(0, balance + policy.overdraft_tiyn)
                and (cap_left is None or price <= cap_left),
                price_tiyn=price,
            )
        )
    return Offer(balance, policy.overdraft_tiyn, spent, cap_left, tuple(dishes), vouchers, percent)


def pay_reason(o: Offer) -> Reason:
    """PAY when at least one dish can be bought now; else why none can."""
    if any(d.allowed for d in o.dishes):
        return Reason.PAY
    sellable = [d for d in o.dishes if not d.blocked_allergens]
    if not sellable:
        return Reason.ALLERGEN_BLOCKED
    cheapest = min(d.pays_tiyn for d in sellable)
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
    meal: MealKind | None = None  # granted: PAID when the balance paid some, else VOUCHER
    items: tuple[str, ...] = ()
    amount_tiyn: int = 0  # the price paid (reduced price applied), vouchers + balance
    balance_before_tiyn: int = 0
    balance_after_tiyn: int = 0  # equals before unless granted
    blocked_allergens: frozenset[str] = frozenset()
    vouchers: tuple[tuple[str, int], ...] = ()  # (voucher id, tiyn) paid before the balance
    token: VoucherToken | None = None  # the QR voucher redeemed (its id is in ``vouchers``)
    percent: int = 100  # the share of the menu price charged

    @property
    def voucher_tiyn(self) -> int:
        return sum(t for _, t in self.vouchers)

    @property
    def balance_paid_tiyn(self) -> int:
        return self.amount_tiyn - self.voucher_tiyn


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
    token: VoucherToken | None = None
    if purchase.qr_token is not None:
        try:
            token = verify_token(purchase.qr_token, state.issuer_keys(), day)
        except TokenError:
            return refuse(Reason.VOUCHER_INVALID, meal_period=period.name)
        if token.student_id != sid or (
            token.meal_periods and period.name not in token.meal_periods
        ):
            return refuse(Reason.VOUCHER_INVALID, meal_period=period.name)
        if state.token_redeemed(token.token_id):
            return refuse(Reason.VOUCHER_USED, meal_period=period.name)
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
    percent = price_percent(policy, student, day)
    amount = sum(
        reduced_price(menu[i].price_tiyn, percent) * n for i, n in Counter(purchase.items).items()
    )
    spent = state.spent(sid, day)
    if limits.daily_cap_tiyn is not None and spent + amount > limits.daily_cap_tiyn:
        return refuse(Reason.DAILY_CAP_EXCEEDED, meal_period=period.name, amount_tiyn=amount)
    # the QR voucher first (single use: what it does not cover lapses), then card vouchers
    sources: list[tuple[str, int]] = []
    if token is not None:
        sources.append((token.token_id, token.amount_tiyn))
    held = ((v, state.voucher_left(v)) for v in state.vouchers(sid))
    sources.extend((v.id, left) for v, left in usable_vouchers(held, day, period.name))
    paid_by_vouchers = allocate(amount, sources)
    if token is not None and not paid_by_vouchers:
        paid_by_vouchers = ((token.token_id, 0),)  # a free dish: the token is still used up
    from_balance = amount - sum(t for _, t in paid_by_vouchers)
    after = balance - from_balance
    if from_balance > 0 and after < -policy.overdraft_tiyn:
        return refuse(Reason.INSUFFICIENT_BALANCE, meal_period=period.name, amount_tiyn=amount)
    return PurchaseDecision(
        True,
        Reason.OK,
        day,
        sid,
        meal_period=period.name,
        meal=MealKind.PAID if from_balance > 0 or not paid_by_vouchers else MealKind.VOUCHER,
        items=purchase.items,
        amount_tiyn=amount,
        balance_before_tiyn=balance,
        balance_after_tiyn=after,
        vouchers=tuple((v, t) for v, t in paid_by_vouchers if t > 0),
        token=token,
        percent=percent,
    )
