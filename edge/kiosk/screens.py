"""The kiosk's screens as types: what the hub builds and the page receives as JSON.

They are TypedDicts, so a screen is the very JSON object the page reads (``kiosk.html``'s
script): the keys, their order and their values on the wire stay as they were when screens were
plain dicts. Kinds are str Enums (they serialise as their value). A key the page tests for
presence (``served_before``, ``offer``, ``tap_id``, ``error``, ``receipt``) is ``NotRequired``
and left out when it does not apply.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, NotRequired, TypedDict

from edge.core.reasons import Screen
from protocol.messages import Reason

IDLE: Literal["idle"] = "idle"  # nothing to show: no tap yet, or the last one was dealt with


class Colour(enum.StrEnum):
    GREEN = "green"
    AMBER = "amber"
    BLUE = "blue"
    RED = "red"
    GREY = "grey"


COLOURS: dict[Screen, Colour] = {
    Screen.FREE_MEAL: Colour.GREEN,
    Screen.SERVED: Colour.GREEN,
    Screen.ALREADY_SERVED: Colour.AMBER,
    Screen.PAY: Colour.BLUE,
    Screen.INSUFFICIENT_BALANCE: Colour.RED,
    Screen.BLOCKED_CARD: Colour.RED,
    Screen.DENIED: Colour.RED,
    Screen.NOT_RECORDED: Colour.RED,
}

Texts = dict[str, str]  # language code ("kk", "ru", "en") -> text

# "class" is a keyword, hence the functional form.
StudentCard = TypedDict(
    "StudentCard", {"name": str, "class": str, "photo": str | None, "initials": str}
)


class ServedBefore(TypedDict):
    at: str  # HH:MM, the school's local time
    terminal: str


class DishView(TypedDict):
    id: str
    name: str
    price_tiyn: int
    allergens: list[str]
    blocked_allergens: list[str]
    allowed: bool


class OfferView(TypedDict):
    spendable_tiyn: int
    cap_left_tiyn: int | None
    overdraft_tiyn: int
    dishes: list[DishView]


class Refusal(TypedDict):
    reason: Reason
    message: Texts


class Receipt(TypedDict):
    seq: int
    student_id: str
    local_date: str
    period: str
    terminal: str
    at_ms: int
    lines: list[Any]  # as the store journaled them: item, name, unit price, portions
    amount_tiyn: int
    balance_after_tiyn: int


class KioskScreen(TypedDict):
    """One screen of one canteen terminal. The idle screen has only the first four keys; every
    other screen has ``headline`` to ``meal_period`` and, depending on the case, the rest."""

    id: int  # increasing per hub; 0 for idle
    terminal: str
    screen: Screen | Literal["idle"]
    colour: Colour
    headline: NotRequired[Texts]
    reason: NotRequired[Reason]
    message: NotRequired[Texts]
    t_ms: NotRequired[int]
    at: NotRequired[str]  # HH:MM, the school's local time of the result
    hold_s: NotRequired[float]  # how long the page shows it before going idle
    error: NotRequired[Refusal]  # a sale refused: the menu again, with why
    receipt: NotRequired[Receipt | None]  # a sale made
    balance_tiyn: NotRequired[int]
    voucher_tiyn: NotRequired[int]  # vouchers usable (PAY) or that paid (SERVED)
    offer: NotRequired[OfferView]  # a PAY (or refused) screen's menu
    tap_id: NotRequired[str | None]  # what the page sends back to confirm a PAY
    seq: NotRequired[int]
    student: NotRequired[StudentCard | None]
    meal_period: NotRequired[str | None]
    served_before: NotRequired[ServedBefore]  # ALREADY SERVED: when and where
