"""Card fee rules as pure functions (seed 002: a card costs 50 to 200 tenge; the first one is
free). Money in tiyn (1 tenge = 100 tiyn)."""

from __future__ import annotations

import re

N_ = str

MIN_PRICE_TIYN = 5_000  # 50 tenge
MAX_PRICE_TIYN = 20_000  # 200 tenge
DEFAULT_PRICE_TIYN = 10_000  # 100 tenge: the product default until the school sets its price
PAID_BY = ("cash", "balance")
_TENGE = re.compile(r"^[0-9]{1,3}([.,][0-9]{1,2})?$")


class CardFeeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_price(price_tiyn: int) -> int:
    if not MIN_PRICE_TIYN <= price_tiyn <= MAX_PRICE_TIYN:
        raise CardFeeError("price", N_("A card costs from 50 to 200 tenge."))
    return price_tiyn


def parse_price(text: str) -> int:
    """ "150" or "150,50" tenge -> tiyn, within 50-200 tenge."""
    value = text.strip()
    if not _TENGE.match(value):
        raise CardFeeError("price", N_("A price in tenge, e.g. 150."))
    whole, _, frac = value.replace(",", ".").partition(".")
    return check_price(int(whole) * 100 + int((frac + "00")[:2]))


def card_fee(previous_cards: int, price_tiyn: int) -> int:
    """The fee of a student's next card: the first is free, each later one costs the school's
    price (which must be within 50-200 tenge)."""
    if previous_cards < 0:
        raise ValueError("previous_cards < 0")
    if previous_cards == 0:
        return 0
    return check_price(price_tiyn)


def check_paid_by(paid_by: str) -> str:
    if paid_by not in PAID_BY:
        raise CardFeeError(
            "paid_by", N_("Choose: paid in cash at the school, or from the balance.")
        )
    return paid_by
