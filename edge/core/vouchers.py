"""Reduced prices and social-wallet vouchers at the canteen terminal: pure, ``day`` passed in.

- A category's reduced price is policy data with validity dates (``Policy.category_prices``);
  a student in several categories pays the lowest share, and a free meal (grade or free
  category) beats any discount: its share is 0.
- Vouchers pay for an eligible meal before the prepaid balance is touched: the QR voucher shown
  for this meal first (it is single use), then the student's card vouchers, soonest to expire
  first; the balance pays only what is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from edge.core.meals import free_meal_eligible
from edge.core.model import Policy, Student, Voucher

FULL_PRICE = 100


def price_percent(policy: Policy, student: Student, day: dt.date) -> int:
    """The share of the menu price (percent) ``student`` pays on ``day``: 0 for a free meal,
    else the lowest reduced price of the categories they belong to that day, else 100."""
    if free_meal_eligible(policy, student, day):
        return 0
    codes = {c.code for c in student.categories if c.valid_on(day)}
    shares = [p.percent for p in policy.category_prices if p.category in codes and p.valid_on(day)]
    return min([FULL_PRICE, *shares])


def reduced_price(price_tiyn: int, percent: int) -> int:
    """The price a student pays at ``percent`` of ``price_tiyn``, rounded down to the tiyn."""
    return price_tiyn * percent // FULL_PRICE


def usable_vouchers(
    vouchers: Iterable[tuple[Voucher, int]], day: dt.date, period: str
) -> list[tuple[Voucher, int]]:
    """(voucher, tiyn left) of those usable for ``period`` on ``day`` with money left, in the
    order they are spent: soonest to expire first, then by id (so the result is stable)."""
    return sorted(
        ((v, left) for v, left in vouchers if left > 0 and v.usable(day, period)),
        key=lambda vl: (vl[0].valid_to, vl[0].id),
    )


def allocate(amount_tiyn: int, sources: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Spend ``amount_tiyn`` from ``sources`` (id, tiyn available) in order, each as far as it
    goes; returns (id, tiyn spent) for those that paid something. What they cannot cover is
    ``amount_tiyn`` minus the sum (the balance pays it)."""
    out: list[tuple[str, int]] = []
    rest = amount_tiyn
    for vid, available in sources:
        if rest <= 0:
            break
        take = min(rest, available)
        if take > 0:
            out.append((vid, take))
            rest -= take
    return tuple(out)
