"""Canteen money rules as pure functions: double-entry postings, balances, validation of money
and menus, reconciliation with the school, and the social-wallet QR token. No clock, no I/O,
no database: ``now`` is passed in.

Convention: a posting's ``amount_tiyn`` is signed, positive = credit, negative = debit. Every
entry's postings sum to zero; an account's balance is credits − debits = the sum of its
postings. A student's balance account holds what the canteen owes the student (money they can
spend); a top-up credits it and debits the payment provider's clearing account.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from server.console.params import FIRST_DAY, LAST_DAY

MAX_AMOUNT_TIYN = 10**9  # one booking (10 million tenge): the wire's BalanceCredit bound


class AccountKind(enum.StrEnum):
    STUDENT_BALANCE = "student_balance"  # prepaid money the student spends at the canteen
    STUDENT_VOUCHER = "student_voucher"  # social-wallet meal money of the student
    PROVIDER_CLEARING = "provider_clearing"  # parents' money in transit from the payment provider
    CANTEEN_REVENUE = "canteen_revenue"  # meals sold (paid and voucher)
    WALLET_FUNDING = "wallet_funding"  # the state's social wallet, paying vouchers
    CORRECTIONS = "corrections"  # manager's corrections with a reason
    SUSPENSE = "suspense"  # a sale for a student the server does not know (shown, never lost)


STUDENT_ACCOUNTS = frozenset({AccountKind.STUDENT_BALANCE, AccountKind.STUDENT_VOUCHER})


class EntryKind(enum.StrEnum):
    TOPUP = "topup"
    REFUND = "refund"
    CORRECTION = "correction"
    MEAL = "meal"
    VOUCHER_FUND = "voucher_fund"
    VOUCHER_MEAL = "voucher_meal"


# Entries whose effect on the student's balance is sent to the school as a BalanceCredit.
CREDIT_KINDS = frozenset({EntryKind.TOPUP, EntryKind.REFUND, EntryKind.CORRECTION})


@dataclass(frozen=True, slots=True)
class Account:
    kind: AccountKind
    student_pk: int | None = None  # only for the student accounts

    def __post_init__(self) -> None:
        if (self.kind in STUDENT_ACCOUNTS) != (self.student_pk is not None):
            raise ValueError(f"account {self.kind} with student {self.student_pk}")


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    amount_tiyn: int  # + credit, − debit


class UnbalancedEntry(ValueError):
    pass


class MoneyError(ValueError):
    """A money amount that cannot be booked; ``code`` is stable, the message is English."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_amount(amount: int) -> int:
    """A positive whole number of tiyn within one booking's bound."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError("not_integer", "The amount must be a whole number of tiyn.")
    if amount <= 0:
        raise MoneyError("not_positive", "The amount must be greater than zero.")
    if amount > MAX_AMOUNT_TIYN:
        raise MoneyError("too_large", "The amount is larger than one booking may be.")
    return amount


_TENGE = re.compile(r"^\s*(-?)\s*(\d{1,8})(?:[.,](\d{1,2}))?\s*(?:₸)?\s*$")


def parse_tenge(text: str, *, allow_negative: bool = False) -> int:
    """A form's "1 234,50" (tenge, comma or dot, spaces grouping) -> 123450 tiyn."""
    m = _TENGE.match(text.replace("\u00a0", "").replace(" ", ""))
    if m is None:
        raise MoneyError("not_a_number", "Enter an amount in tenge, e.g. 1500 or 1500,50.")
    sign, whole, frac = m.groups()
    tiyn = int(whole) * 100 + int((frac or "0").ljust(2, "0"))
    if sign:
        if not allow_negative:
            raise MoneyError("not_positive", "The amount must be greater than zero.")
        tiyn = -tiyn
    if tiyn == 0:
        raise MoneyError("zero", "The amount must not be zero.")
    if abs(tiyn) > MAX_AMOUNT_TIYN:
        raise MoneyError("too_large", "The amount is larger than one booking may be.")
    return tiyn


# ------------------------------------------------------------------------------- postings


def balanced(postings: Sequence[Posting]) -> Sequence[Posting]:
    if not postings:
        raise UnbalancedEntry("an entry has at least one posting")
    total = sum(p.amount_tiyn for p in postings)
    if total != 0:
        raise UnbalancedEntry(f"postings sum to {total}, not 0")
    return postings


def _pair(credit: Account, debit: Account, amount: int) -> list[Posting]:
    check_amount(amount)
    return list(balanced([Posting(credit, amount), Posting(debit, -amount)]))


def topup(student_pk: int, amount: int) -> list[Posting]:
    """A parent's payment arrived through the provider: the student may spend it."""
    return _pair(
        Account(AccountKind.STUDENT_BALANCE, student_pk),
        Account(AccountKind.PROVIDER_CLEARING),
        amount,
    )


def refund(student_pk: int, amount: int) -> list[Posting]:
    """A meal's money given back to the student's balance (a credit at the school)."""
    return _pair(
        Account(AccountKind.STUDENT_BALANCE, student_pk),
        Account(AccountKind.CANTEEN_REVENUE),
        amount,
    )


def refundable(paid_meals: int, refunded: int) -> int:
    """What a refund may still give back: what the student's balance paid for meals, less the
    refunds already made (never negative)."""
    return max(0, paid_meals - refunded)


def correction(student_pk: int, amount: int) -> list[Posting]:
    """A manager's correction, + adds to the student's balance, − takes from it."""
    if amount == 0:
        raise MoneyError("zero", "The amount must not be zero.")
    student = Account(AccountKind.STUDENT_BALANCE, student_pk)
    other = Account(AccountKind.CORRECTIONS)
    return _pair(student, other, amount) if amount > 0 else _pair(other, student, -amount)


def meal(student_pk: int | None, amount: int) -> list[Posting]:
    """A paid meal served at the school (its balance was debited there)."""
    payer = (
        Account(AccountKind.SUSPENSE)
        if student_pk is None
        else Account(AccountKind.STUDENT_BALANCE, student_pk)
    )
    return _pair(Account(AccountKind.CANTEEN_REVENUE), payer, amount)


def voucher_fund(student_pk: int, amount: int) -> list[Posting]:
    """The social wallet paid meal money into the child's voucher."""
    return _pair(
        Account(AccountKind.STUDENT_VOUCHER, student_pk),
        Account(AccountKind.WALLET_FUNDING),
        amount,
    )


def split_meal(student_pk: int | None, amount: int, from_vouchers: int) -> list[Posting]:
    """A meal the school paid partly from the child's vouchers, the rest from the balance (the
    school spends vouchers first). ``from_vouchers`` = 0 is ``meal``; = amount is
    ``voucher_meal``."""
    if not 0 <= from_vouchers <= amount:
        raise MoneyError("bad_split", "The vouchers paid more than the meal cost.")
    if from_vouchers == 0:
        return meal(student_pk, amount)
    if from_vouchers == amount:
        return voucher_meal(student_pk, amount)
    check_amount(amount)
    if student_pk is None:
        return list(
            balanced(
                [
                    Posting(Account(AccountKind.CANTEEN_REVENUE), amount),
                    Posting(Account(AccountKind.SUSPENSE), -amount),
                ]
            )
        )
    return list(
        balanced(
            [
                Posting(Account(AccountKind.CANTEEN_REVENUE), amount),
                Posting(Account(AccountKind.STUDENT_BALANCE, student_pk), from_vouchers - amount),
                Posting(Account(AccountKind.STUDENT_VOUCHER, student_pk), -from_vouchers),
            ]
        )
    )


def voucher_meal(student_pk: int | None, amount: int) -> list[Posting]:
    """A meal paid from the voucher (QR code or card)."""
    payer = (
        Account(AccountKind.SUSPENSE)
        if student_pk is None
        else Account(AccountKind.STUDENT_VOUCHER, student_pk)
    )
    return _pair(Account(AccountKind.CANTEEN_REVENUE), payer, amount)


def balances(postings: Iterable[Posting]) -> dict[Account, int]:
    out: dict[Account, int] = {}
    for p in postings:
        out[p.account] = out.get(p.account, 0) + p.amount_tiyn
    return out


def crossed_low(before: int, after: int, threshold: int) -> bool:
    """A balance that fell below the threshold with this booking (not one already below)."""
    return after < threshold <= before


# -------------------------------------------------------------------------------- menus


@dataclass(frozen=True, slots=True)
class MenuLine:
    id: str
    name: str
    price_tiyn: int
    allergens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FormError:
    line: int  # 1-based line of the menu text
    field: str
    message: str  # English msgid


_ITEM_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ALLERGEN = re.compile(r"^[a-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class DishInput:
    """One row of the menu form as typed (``line``: its 1-based row)."""

    line: int
    id: str
    name: str
    price: str
    allergens: tuple[str, ...]


def parse_menu(text: str) -> tuple[list[MenuLine], list[FormError]]:
    """One dish a line: ``id; name; price in tenge; allergens separated by commas`` (what
    scripts send; the console's form sends rows, ``parse_dishes``).

    Every bad line is reported with its line number and the field at fault; nothing is kept
    from a menu with errors (the caller shows the text back unchanged).
    """
    rows: list[DishInput] = []
    errors: list[FormError] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        parts = [p.strip() for p in raw.split(";")]
        if len(parts) < 3 or len(parts) > 4:
            errors.append(FormError(n, "line", "Expected: id; name; price; allergens."))
            continue
        allergens = tuple(
            a.strip().lower() for a in (parts[3] if len(parts) == 4 else "").split(",") if a.strip()
        )
        rows.append(DishInput(n, parts[0], parts[1], parts[2], allergens))
    items, more = parse_dishes(rows, empty_ok=bool(errors))
    return items, sorted(errors + more, key=lambda e: e.line)


def parse_dishes(
    rows: Iterable[DishInput], *, empty_ok: bool = False
) -> tuple[list[MenuLine], list[FormError]]:
    """Check each dish; every problem is reported once with its row and field, and nothing is
    kept from a menu with errors."""
    items: list[MenuLine] = []
    errors: list[FormError] = []
    seen: set[str] = set()
    for row in rows:
        n, item_id, name, price_text = row.line, row.id, row.name.strip(), row.price.strip()
        allergens = row.allergens
        bad = False
        if not _ITEM_ID.match(item_id):
            errors.append(FormError(n, "id", "The id may hold only letters, digits and _ . : -"))
            bad = True
        elif item_id in seen:
            errors.append(FormError(n, "id", "This id is already on the menu."))
            bad = True
        if not name or len(name) > 200:
            errors.append(FormError(n, "name", "The dish needs a name (up to 200 characters)."))
            bad = True
        price = 0
        if not price_text:
            errors.append(FormError(n, "price", "The dish has no price."))
            bad = True
        else:
            try:
                price = parse_tenge(price_text, allow_negative=True)
            except MoneyError as err:
                if err.code == "zero":
                    price = 0  # a free dish (e.g. bread) is allowed
                else:
                    errors.append(FormError(n, "price", str(err)))
                    bad = True
            if not bad and price < 0:
                errors.append(FormError(n, "price", "The price must not be negative."))
                bad = True
        for a in allergens:
            if not _ALLERGEN.match(a):
                errors.append(
                    FormError(n, "allergens", "An allergen is a short word: a-z, 0-9, _ -")
                )
                bad = True
                break
        if not bad:
            seen.add(item_id)
            items.append(MenuLine(item_id, name, price, allergens))
    if not items and not errors and not empty_ok:
        errors.append(FormError(0, "menu", "The menu has no dishes."))
    return items, errors


def menu_text(items: Iterable[Mapping[str, object]]) -> str:
    lines = []
    for it in items:
        price = int(str(it["price_tiyn"]))
        tenge = f"{price // 100}" + (f",{price % 100:02d}" if price % 100 else "")
        allergens = it.get("allergens") or []
        assert isinstance(allergens, list)
        lines.append(f"{it['id']}; {it['name']}; {tenge}; {', '.join(str(a) for a in allergens)}")
    return "\n".join(lines)


def parse_allergens(text: str) -> list[str]:
    out = sorted({a.strip().lower() for a in text.replace(";", ",").split(",") if a.strip()})
    for a in out:
        if not _ALLERGEN.match(a):
            raise MoneyError("bad_allergen", "An allergen is a short word: a-z, 0-9, _ -")
    return out


# ------------------------------------------------------------------------------ reconcile


@dataclass(frozen=True, slots=True)
class Difference:
    code: str  # stable
    label: str  # English msgid
    amount_tiyn: int


@dataclass(frozen=True, slots=True)
class Reconciliation:
    ledger_tiyn: int
    school_tiyn: int | None
    differences: tuple[Difference, ...] = field(default=())

    @property
    def difference_tiyn(self) -> int | None:
        return None if self.school_tiyn is None else self.ledger_tiyn - self.school_tiyn

    @property
    def unexplained_tiyn(self) -> int:
        return sum(d.amount_tiyn for d in self.differences if d.code == "unexplained")

    @property
    def agrees(self) -> bool:
        return self.difference_tiyn in (None, 0) or self.unexplained_tiyn == 0


def reconcile(
    *,
    ledger_tiyn: int,
    school_tiyn: int | None,
    unacked_credits_tiyn: int,
    acked_credits_tiyn: int,
    unposted_meals_tiyn: int,
    unsent_debits_tiyn: int,
) -> Reconciliation:
    """Explain ledger − school for one student.

    ``school_tiyn`` is the balance the school reported with its newest paid meal (None: no
    paid meal yet). With C the credits the server published, D the meals it has posted and N
    its debits that never go to the school (negative corrections: there is no debit op on the
    wire), ledger = C − D − N while the school's last balance = (credits applied there by then)
    − (all its sales by then). So ledger − school = (credits not in that balance) + (sales not
    yet posted) − N. Credits not in it are first those not yet acknowledged by the edge (one
    may be applied already, its ack in flight, so they explain at most what is missing), then
    acknowledged ones applied after that sale (at most the acknowledged credits); anything else
    is unexplained.
    """
    if school_tiyn is None:
        diffs = []
        if unacked_credits_tiyn:
            diffs.append(
                Difference(
                    "unacked", "Credits not yet acknowledged by the school", unacked_credits_tiyn
                )
            )
        return Reconciliation(ledger_tiyn, None, tuple(diffs))
    diff = ledger_tiyn - school_tiyn
    parts: list[Difference] = []
    if unposted_meals_tiyn:
        parts.append(
            Difference("unposted", "Meals sold at the school, not yet posted", unposted_meals_tiyn)
        )
    if unsent_debits_tiyn:
        parts.append(
            Difference(
                "unsent",
                "Debits not yet in the school's last balance",
                -unsent_debits_tiyn,
            )
        )
    # credits not in the school's last balance; an unacknowledged credit may already be applied
    # (its ack in flight), so it explains at most what is missing
    missing = diff - sum(p.amount_tiyn for p in parts)
    unacked = min(max(missing, 0), unacked_credits_tiyn)
    after = min(max(missing - unacked, 0), acked_credits_tiyn)
    rest = missing - unacked - after
    if unacked:
        parts.insert(
            0, Difference("unacked", "Credits not yet acknowledged by the school", unacked)
        )
    if after:
        parts.append(
            Difference("after_sale", "Credits applied at the school after its last sale", after)
        )
    if rest:
        parts.append(Difference("unexplained", "Unexplained", rest))
    return Reconciliation(ledger_tiyn, school_tiyn, tuple(parts))


# ------------------------------------------------------------------------------- QR token


class QrError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class QrClaim:
    student_ref: str
    amount_tiyn: int
    nonce: str  # the redemption id: one QR code pays one meal, once
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def qr_sign(claim: QrClaim, key: bytes) -> str:
    body = json.dumps(
        {"s": claim.student_ref, "a": claim.amount_tiyn, "n": claim.nonce, "e": claim.expires_ms},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    mac = hmac.new(key, b"qaqpa-voucher-qr\x00" + body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def qr_verify(token: str, key: bytes, now_ms: int) -> QrClaim:
    """The claim of a genuine, unexpired token; a precise QrError otherwise."""
    try:
        body_text, mac_text = token.strip().split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (ValueError, binascii.Error) as err:
        raise QrError("malformed", "This is not a voucher QR code.") from err
    good = hmac.new(key, b"qaqpa-voucher-qr\x00" + body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, good):
        raise QrError("bad_signature", "The QR code's signature is wrong.")
    try:
        raw = json.loads(body)
        claim = QrClaim(str(raw["s"]), int(raw["a"]), str(raw["n"]), int(raw["e"]))
    except (ValueError, KeyError, TypeError) as err:
        raise QrError("malformed", "This is not a voucher QR code.") from err
    if now_ms >= claim.expires_ms:
        raise QrError("expired", "The QR code has expired: ask for a new one.")
    return claim


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """ "2026-11" -> (2026-11-01, 2026-12-01)."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError as err:
        raise MoneyError("bad_month", "A month is written YYYY-MM.") from err
    if not FIRST_DAY <= first <= LAST_DAY:
        raise MoneyError("bad_month", "A month is written YYYY-MM.")
    nxt = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first, nxt
