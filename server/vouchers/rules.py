"""Voucher rules as pure functions: what an issue may hold, and the settlement of a school's
vouchers against the meals it served. No clock, no I/O: ``today`` is passed in."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_VOUCHER_TIYN = 10**9  # the wire's bound (VoucherGrant.amount_tiyn)
MAX_DAYS = 400  # a voucher runs at most a school year and a bit
MAX_PERIODS = 10
_PERIOD = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class VoucherError(ValueError):
    """A voucher that cannot be issued; ``code`` is stable, the message is English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class IssueForm:
    amount_tiyn: int
    valid_from: dt.date
    valid_to: dt.date
    meal_periods: tuple[str, ...] = ()


def check_issue(form: IssueForm, today: dt.date) -> IssueForm:
    """The form, checked: a positive amount within the wire's bound, dates in order, not ended
    already, at most ``MAX_DAYS`` long, known-shaped meal period names (sorted, once each)."""
    if isinstance(form.amount_tiyn, bool) or not 1 <= form.amount_tiyn <= MAX_VOUCHER_TIYN:
        raise VoucherError("bad_amount", "The amount must be between 0.01 and 10,000,000 tenge.")
    if form.valid_to < form.valid_from:
        raise VoucherError("bad_dates", "The voucher ends before it starts.")
    if form.valid_to < today:
        raise VoucherError("ended", "The voucher would have ended already.")
    if (form.valid_to - form.valid_from).days > MAX_DAYS:
        raise VoucherError("too_long", "A voucher runs at most 400 days.")  # MAX_DAYS
    periods = tuple(sorted({p.strip() for p in form.meal_periods if p.strip()}))
    if len(periods) > MAX_PERIODS or any(not _PERIOD.match(p) for p in periods):
        raise VoucherError("bad_periods", "Meal periods are short names, e.g. breakfast, lunch.")
    return IssueForm(form.amount_tiyn, form.valid_from, form.valid_to, periods)


@dataclass(frozen=True, slots=True)
class Issued:
    voucher_id: str
    kind: str  # card | qr
    student_ref: str
    amount_tiyn: int


@dataclass(frozen=True, slots=True)
class Use:
    voucher_id: str
    student_ref: str
    amount_tiyn: int
    school_id: str
    device_pk: int
    seq: int
    qr: bool


@dataclass(frozen=True, slots=True)
class VoucherLine:
    voucher_id: str
    kind: str
    student_ref: str
    issued_tiyn: int
    spent_tiyn: int
    meals: int

    @property
    def remaining_tiyn(self) -> int:
        """What is left to spend (a QR voucher is single use: nothing once redeemed)."""
        if self.kind == "qr" and self.meals:
            return 0
        return max(0, self.issued_tiyn - self.spent_tiyn)

    @property
    def lapsed_tiyn(self) -> int:
        """A redeemed QR voucher's part its meal did not need (not paid to the canteen)."""
        if self.kind != "qr" or not self.meals:
            return 0
        return max(0, self.issued_tiyn - self.spent_tiyn)


@dataclass(frozen=True, slots=True)
class Settlement:
    lines: tuple[VoucherLine, ...]
    meals_tiyn: int  # the voucher part of the meals the school reported
    problems: tuple[str, ...] = field(default=())  # English, one per finding

    @property
    def issued_tiyn(self) -> int:
        return sum(v.issued_tiyn for v in self.lines)

    @property
    def spent_tiyn(self) -> int:
        return sum(v.spent_tiyn for v in self.lines)

    @property
    def remaining_tiyn(self) -> int:
        return sum(v.remaining_tiyn for v in self.lines)

    @property
    def matches(self) -> bool:
        """Every tiyn the meals took from vouchers is a voucher's spend, none is overspent,
        no QR voucher was redeemed twice, and no meal names an unknown voucher."""
        return not self.problems and self.spent_tiyn == self.meals_tiyn


def settle(issued: Iterable[Issued], uses: Sequence[Use], meals_tiyn: int) -> Settlement:
    """Vouchers issued, spent (from the meals served) and remaining, with what does not add up."""
    lines: list[VoucherLine] = []
    problems: list[str] = []
    by_voucher: dict[str, list[Use]] = {}
    for u in uses:
        by_voucher.setdefault(u.voucher_id, []).append(u)
    known: set[str] = set()
    for v in sorted(issued, key=lambda v: v.voucher_id):
        known.add(v.voucher_id)
        mine = by_voucher.get(v.voucher_id, [])
        spent = sum(u.amount_tiyn for u in mine)
        lines.append(
            VoucherLine(v.voucher_id, v.kind, v.student_ref, v.amount_tiyn, spent, len(mine))
        )
        if spent > v.amount_tiyn:
            problems.append(f"voucher {v.voucher_id} spent {spent} of {v.amount_tiyn} tiyn")
        if v.kind == "qr" and len({(u.school_id, u.device_pk, u.seq) for u in mine}) > 1:
            schools = sorted({u.school_id for u in mine})
            problems.append(
                f"QR voucher {v.voucher_id} redeemed {len(mine)} times (schools {', '.join(schools)})"
            )
        if any(u.student_ref != v.student_ref for u in mine):
            problems.append(f"voucher {v.voucher_id} used for another student")
    for vid in sorted(set(by_voucher) - known):
        problems.append(f"meals name voucher {vid}, which was never issued")
    return Settlement(tuple(lines), meals_tiyn, tuple(problems))
