"""Typed state the decision core reads. Built by the shell from the store or a replay roster."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.core.cardkey import CardKeyOf, plain
from protocol.messages import (
    AntiPassback,
    ConsentKind,
    Direction,
    OwnerKind,
    PolicyDoc,
    TerminalKind,
)


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    valid_from: dt.date
    valid_to: dt.date  # inclusive
    document: str

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True, slots=True)
class Student:
    id: str
    grade: int
    class_name: str
    shift: int
    consents: frozenset[ConsentKind] = frozenset()
    categories: tuple[Category, ...] = ()


@dataclass(frozen=True, slots=True)
class Staff:
    id: str
    roles: frozenset[str]
    classes: frozenset[str] = frozenset()
    pin_hash: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    credential: str  # as the store keeps it: a keyed hash (edge.core.cardkey) or the number
    owner_kind: OwnerKind
    owner_id: str
    blocked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Shift:
    number: int
    entry_from: dt.time
    entry_to: dt.time
    starts_at: dt.time | None = None


@dataclass(frozen=True, slots=True)
class MealPeriod:
    name: str
    shifts: frozenset[int]
    start: dt.time
    end: dt.time  # exclusive

    def covers(self, t: dt.time) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class CategoryPrice:
    """Members of ``category`` pay ``percent`` of the menu price on days in the validity."""

    category: str
    percent: int
    valid_from: dt.date
    valid_to: dt.date  # inclusive

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_to


@dataclass(frozen=True, slots=True)
class Voucher:
    """A social-wallet voucher of a student held at the school (spent by card tap)."""

    id: str
    issuer: str
    student_id: str
    amount_tiyn: int
    valid_from: dt.date
    valid_to: dt.date  # inclusive
    meal_periods: frozenset[str] = frozenset()  # empty: any meal period

    def usable(self, day: dt.date, period: str) -> bool:
        return self.valid_from <= day <= self.valid_to and (
            not self.meal_periods or period in self.meal_periods
        )


@dataclass(frozen=True, slots=True)
class Policy:
    timezone: ZoneInfo
    free_meal_grades: frozenset[int]
    free_meal_categories: frozenset[str]
    anti_passback: AntiPassback
    manual_pass_roles: frozenset[str]
    shifts: Mapping[int, Shift]
    meal_periods: tuple[MealPeriod, ...]
    # how far below zero a paying student's balance may go (tiyn); 0: no overdraft
    overdraft_tiyn: int = 0
    category_prices: tuple[CategoryPrice, ...] = ()  # reduced prices (order No. 456)

    @classmethod
    def from_doc(cls, doc: PolicyDoc, *, overdraft_tiyn: int = 0) -> Policy:
        def hm(s: str) -> dt.time:
            return dt.time.fromisoformat(s)

        return cls(
            timezone=ZoneInfo(doc.timezone),
            free_meal_grades=frozenset(doc.free_meal_grades),
            free_meal_categories=frozenset(doc.free_meal_categories),
            anti_passback=doc.anti_passback,
            manual_pass_roles=frozenset(doc.manual_pass_roles),
            shifts={
                s.number: Shift(
                    s.number,
                    hm(s.entry_from),
                    hm(s.entry_to),
                    hm(s.starts_at) if s.starts_at else None,
                )
                for s in doc.shifts
            },
            meal_periods=tuple(
                MealPeriod(p.name, frozenset(p.shifts), hm(p.from_), hm(p.to))
                for p in doc.meal_periods
            ),
            overdraft_tiyn=overdraft_tiyn,
            category_prices=tuple(
                CategoryPrice(
                    c.category,
                    c.percent,
                    dt.date.fromisoformat(c.valid_from),
                    dt.date.fromisoformat(c.valid_to),
                )
                for c in doc.category_prices
            ),
        )


class Presence(enum.StrEnum):
    """Anti-passback state of a person for one local day."""

    INSIDE = "inside"
    OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class Tap:
    """A credential presented at a terminal (or a manual pass keyed in by staff, or a face).

    ``face_student``: the student a face-only terminal identified (1:N, computed by the shell).
    ``face_verified``: at a card + face terminal, whether the face matched the card's student
    (None when no face check applies: card-only terminal, staff card, no biometric consent).
    ``signed_in_staff``: a manual pass from the staff page: the member the shell signed in with
    their own card and PIN (keyed verifier, ``edge.staff``); the core then checks their roles
    and classes, not a card and PIN again.
    ``clock_in_doubt``: the edge's wall clock jumped and ``at`` is its corrected time (the last
    trusted moment plus the monotonic time since, ``edge.clock_guard``): the entry hours are not
    checked (a school is never refused for a clock), meals stay keyed to ``at``'s day and period.
    """

    at: dt.datetime  # timezone-aware
    terminal: str
    kind: TerminalKind
    direction: Direction | None = None
    credential: str | None = None
    manual_student: str | None = None
    staff_credential: str | None = None
    pin: str | None = None
    face_student: str | None = None
    face_verified: bool | None = None
    signed_in_staff: str | None = None
    clock_in_doubt: bool = False

    @property
    def is_manual(self) -> bool:
        return self.manual_student is not None

    @property
    def is_face_only(self) -> bool:
        return self.credential is None and self.face_student is not None and not self.is_manual


@dataclass(frozen=True, slots=True)
class MealKey:
    student_id: str
    local_date: dt.date
    period: str


@dataclass(frozen=True, slots=True)
class ServedMeal:
    at: dt.datetime
    terminal: str


@dataclass(frozen=True, slots=True)
class Dish:
    """One item of a day's menu."""

    id: str
    name: str
    price_tiyn: int
    allergens: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ParentLimits:
    """What a parent set for their child at the canteen."""

    allergen_blocks: frozenset[str] = frozenset()
    daily_cap_tiyn: int | None = None  # None: no cap


NO_LIMITS = ParentLimits()


@dataclass(frozen=True, slots=True)
class Purchase:
    """Canteen staff confirm the items a paying student chose (after a PAY decision).

    ``items`` holds one menu item id per portion (an id twice: two portions)."""

    at: dt.datetime  # timezone-aware: "now"
    terminal: str
    student_id: str
    items: tuple[str, ...]
    qr_token: str | None = None  # a dynamic QR voucher shown for this meal (its text)


class StateView(Protocol):
    """Read access to what a decision needs."""

    def card(self, credential: str) -> Card | None: ...

    def student(self, student_id: str) -> Student | None: ...

    def staff(self, staff_id: str) -> Staff | None: ...

    def presence(self, person_id: str, day: dt.date) -> Presence | None: ...

    def served(self, key: MealKey) -> ServedMeal | None: ...

    def balance(self, student_id: str) -> int: ...

    def spent(self, student_id: str, day: dt.date) -> int: ...

    def limits(self, student_id: str) -> ParentLimits: ...

    def menu(self, day: dt.date) -> tuple[Dish, ...]: ...

    def vouchers(self, student_id: str) -> tuple[Voucher, ...]: ...

    def voucher_left(self, voucher: Voucher) -> int: ...

    def token_redeemed(self, token_id: str) -> bool: ...

    def issuer_keys(self) -> Mapping[str, Ed25519PublicKey]: ...


@dataclass
class SchoolState:
    """The whole decision state in memory: roster, cards, today's presence and meal ledger."""

    students: dict[str, Student] = field(default_factory=dict)
    staff_by_id: dict[str, Staff] = field(default_factory=dict)
    cards: dict[str, Card] = field(default_factory=dict)
    presence_by_person: dict[str, tuple[dt.date, Presence]] = field(default_factory=dict)
    meals: dict[MealKey, ServedMeal] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)  # tiyn, authoritative for spending
    spending: dict[tuple[str, dt.date], int] = field(default_factory=dict)  # paid per local day
    parent_limits: dict[str, ParentLimits] = field(default_factory=dict)
    menus: dict[dt.date, tuple[Dish, ...]] = field(default_factory=dict)
    # how a tapped number is looked up in ``cards`` (the store's keyed hash, or the number)
    card_key: CardKeyOf = plain
    vouchers_by_student: dict[str, tuple[Voucher, ...]] = field(default_factory=dict)
    voucher_spent: dict[str, int] = field(default_factory=dict)  # tiyn per voucher id
    redeemed_tokens: set[str] = field(default_factory=set)  # QR voucher ids used here
    issuer_public_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    def card(self, credential: str) -> Card | None:
        return self.cards.get(self.card_key(credential))

    def student(self, student_id: str) -> Student | None:
        return self.students.get(student_id)

    def staff(self, staff_id: str) -> Staff | None:
        return self.staff_by_id.get(staff_id)

    def presence(self, person_id: str, day: dt.date) -> Presence | None:
        got = self.presence_by_person.get(person_id)
        return got[1] if got is not None and got[0] == day else None

    def served(self, key: MealKey) -> ServedMeal | None:
        return self.meals.get(key)

    def balance(self, student_id: str) -> int:
        return self.balances.get(student_id, 0)

    def spent(self, student_id: str, day: dt.date) -> int:
        return self.spending.get((student_id, day), 0)

    def limits(self, student_id: str) -> ParentLimits:
        return self.parent_limits.get(student_id, NO_LIMITS)

    def menu(self, day: dt.date) -> tuple[Dish, ...]:
        return self.menus.get(day, ())

    def vouchers(self, student_id: str) -> tuple[Voucher, ...]:
        return self.vouchers_by_student.get(student_id, ())

    def voucher_left(self, voucher: Voucher) -> int:
        return voucher.amount_tiyn - self.voucher_spent.get(voucher.id, 0)

    def token_redeemed(self, token_id: str) -> bool:
        return token_id in self.redeemed_tokens

    def issuer_keys(self) -> Mapping[str, Ed25519PublicKey]:
        return self.issuer_public_keys
