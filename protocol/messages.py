"""Typed messages for everything that crosses the wire between an edge and the server.

All times are integer milliseconds since the Unix epoch (UTC), local dates are ``YYYY-MM-DD`` in
the school's policy timezone, money is integer tiyn. No floats, so the canonical encoding of a
message is unique (see ``protocol.codec``).

Identification data rules (DESIGN invariant 5) are visible in the types: uplink events name a
student by the roster id only; a raw card number never appears in an uplink message, and there is
no field anywhere that could carry a face template. Cards are bound at the school: the centre
knows a card *record* (``CardRecord``: ref, owner, status, fee, dates) and addresses it by its
``card_ref``; the only downlink fields that carry a number (``CardBinding.credential`` in
``card_bind``, ``card_block``, ``card_unbind`` and a snapshot's ``cards``) serve schools whose
numbers the centre still holds from before the move (README, "Identification data").
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)


def _real_date(value: str) -> str:
    dt.date.fromisoformat(value)  # ValueError (e.g. 2025-02-30) becomes a validation error
    return value


Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Seq = Annotated[int, Field(ge=1, le=2**62)]
Millis = Annotated[int, Field(ge=0, le=2**53)]
# ASCII digits only: the regex engine's \d also matches other scripts' digits.
LocalDate = Annotated[
    str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), AfterValidator(_real_date)
]
ClockTime = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Credential = Annotated[str, Field(min_length=3, max_length=128, pattern=r"^[A-Z0-9]+:[A-Z0-9:]+$")]
Text = Annotated[str, Field(max_length=500)]


class Message(BaseModel):
    """Base of all wire messages: immutable, strict types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class _OmitsNewFields(Message):
    """A message that gained optional fields after release: while such a field is empty (its
    default) it is left out of the encoding, so the bytes are the previous release's and a
    reader of that release (which refuses unknown fields) still reads them."""

    omit_when_empty: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self.omit_when_empty:
                if key in data and data[key] in (None, [], ()):
                    del data[key]
        return data


# ---------------------------------------------------------------------------------- vocabulary


class TerminalKind(enum.StrEnum):
    TURNSTILE = "turnstile"
    CANTEEN = "canteen"
    LIBRARY = "library"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class Reason(enum.StrEnum):
    """Stable reason codes of decisions. Never renumber or rename: reports and replays use them."""

    OK = "ok"
    UNKNOWN_CARD = "unknown_card"
    CARD_BLOCKED = "card_blocked"
    NO_CONSENT = "no_consent"
    OUTSIDE_HOURS = "outside_hours"
    PASSBACK = "passback"
    NOT_ELIGIBLE = "not_eligible"
    ALREADY_SERVED = "already_served"
    OUTSIDE_MEAL_PERIOD = "outside_meal_period"
    NOT_AUTHORISED = "not_authorised"
    UNKNOWN_STUDENT = "unknown_student"
    NOT_ALLOWED_HERE = "not_allowed_here"
    FACE_MISMATCH = "face_mismatch"  # card + face: the face is not the card owner's
    NO_BIOMETRIC_CONSENT = "no_biometric_consent"  # face only: no biometric consent on record
    # canteen money (a student who does not eat free pays from the balance held at the school)
    PAY = "pay"  # not a free meal: choose from the day's menu and pay (records the tap)
    INSUFFICIENT_BALANCE = "insufficient_balance"  # balance + overdraft below the price
    ALLERGEN_BLOCKED = "allergen_blocked"  # an item holds an allergen the parent blocked
    DAILY_CAP_EXCEEDED = "daily_cap_exceeded"  # over the parent's daily spending cap
    NOT_ON_MENU = "not_on_menu"  # an item not on today's menu (or no menu today)
    # social-wallet vouchers (servers older than these codes refuse batches carrying them)
    VOUCHER_INVALID = "voucher_invalid"  # a voucher QR code forged, expired, not for this meal
    VOUCHER_USED = "voucher_used"  # a voucher QR code already redeemed (single use)


class MealKind(enum.StrEnum):
    FREE = "free"
    PAID = "paid"
    VOUCHER = "voucher"


class ConsentKind(enum.StrEnum):
    DATA = "data"
    BIOMETRIC = "biometric"
    NOTIFICATIONS = "notifications"
    GIFTED = "gifted"  # the gifted-children registry (decree No. 997); never sent to an edge
    # A parent's answers for the equipment survey (computer at home, family income).
    EQUIPMENT_SURVEY = "equipment_survey"
    # taking part in a tutoring project (server only: the edges are never sent it)
    TUTORING = "tutoring"


class AntiPassback(enum.StrEnum):
    OFF = "off"
    SOFT = "soft"  # grant, but log the violation
    HARD = "hard"  # deny


# Consents that only the centre acts on: never sent to an edge (least data).
CENTRE_ONLY_CONSENTS = frozenset(
    {ConsentKind.GIFTED, ConsentKind.TUTORING, ConsentKind.EQUIPMENT_SURVEY}
)


class OwnerKind(enum.StrEnum):
    STUDENT = "student"
    STAFF = "staff"


class AlarmCode(enum.StrEnum):
    READER_OFFLINE = "reader_offline"
    OUTBOX_HIGH_WATER = "outbox_high_water"
    SECURE_CHANNEL_REFUSED = "secure_channel_refused"
    GATE_FAULT = "gate_fault"
    # the link to the centre: a downlink message or ack refused (unsigned, wrongly signed, for
    # another device, replayed, an ack beyond what was sent). Servers older than this code
    # refuse batches carrying it: upgrade the servers first (README, link security).
    DOWNLINK_REFUSED = "downlink_refused"
    # school faults (README, "Operations: faults and what staff see"); servers older than these
    # codes refuse batches carrying them: upgrade the servers first.
    CLOCK_IN_DOUBT = "clock_in_doubt"  # the wall clock jumped; events carry clock_in_doubt
    STORE_FULL = "store_full"  # the store could not write (journaled once it can again)
    FIRE_ALARM = "fire_alarm"  # the fire-alarm input: every turnstile released (evacuation)


# Enum fields accept their string value from a decoder even though the models are strict.
TerminalKindW = Annotated[TerminalKind, Field(strict=False)]
DirectionW = Annotated[Direction, Field(strict=False)]
ReasonW = Annotated[Reason, Field(strict=False)]
MealKindW = Annotated[MealKind, Field(strict=False)]
ConsentKindW = Annotated[ConsentKind, Field(strict=False)]
AntiPassbackW = Annotated[AntiPassback, Field(strict=False)]
OwnerKindW = Annotated[OwnerKind, Field(strict=False)]
AlarmCodeW = Annotated[AlarmCode, Field(strict=False)]


# ------------------------------------------------------------------------------ uplink events


def _is_none(value: object) -> bool:
    return value is None


class _EventBase(Message):
    """``clock_in_doubt``: True when the event was journaled while the edge's wall clock was in
    doubt (it jumped; ``at_ms`` is then the edge's corrected time, see ``edge.clock_guard``).
    Left out of the bytes when None, so an event of a trusted clock is the previous release's;
    servers older than the field refuse a batch that carries it (upgrade the servers first)."""

    seq: Seq
    at_ms: Millis
    terminal: Id
    clock_in_doubt: Annotated[Literal[True] | None, Field(exclude_if=_is_none)] = None


class EntryEvent(_EventBase):
    """A person was let in at a turnstile by a card (or face)."""

    kind: Literal["entry"] = "entry"
    student_id: Id | None = None
    staff_id: Id | None = None
    passback_violation: bool = False  # soft anti-passback: granted, logged


class ExitEvent(_EventBase):
    kind: Literal["exit"] = "exit"
    student_id: Id | None = None
    staff_id: Id | None = None
    passback_violation: bool = False


class NotPassedEvent(_EventBase):
    """A turnstile was released but nobody went through before the timeout."""

    kind: Literal["not_passed"] = "not_passed"
    granted_seq: Seq
    student_id: Id | None = None
    staff_id: Id | None = None


class DeniedEvent(_EventBase):
    kind: Literal["denied"] = "denied"
    terminal_kind: TerminalKindW
    direction: DirectionW | None = None
    reason: ReasonW
    student_id: Id | None = None  # None when the card is unknown: the raw card stays at the school


class VoucherSpend(Message):
    """Part of a meal's price paid from one social-wallet voucher (by card or by QR code)."""

    voucher_id: Id
    amount_tiyn: Annotated[int, Field(ge=1, le=10**9)]


class MealServedEvent(_EventBase, _OmitsNewFields):
    omit_when_empty: ClassVar[tuple[str, ...]] = ("vouchers", "qr_token")

    kind: Literal["meal_served"] = "meal_served"
    student_id: Id
    period: Id
    local_date: LocalDate
    meal: MealKindW
    amount_tiyn: Annotated[int, Field(ge=0)] = 0
    # a paid meal: the menu item ids bought (one entry per portion) and the student's balance
    # at the school right after the debit (negative only within the configured overdraft)
    items: Annotated[list[Id], Field(max_length=50)] = Field(default_factory=list)
    balance_after_tiyn: int | None = None
    # vouchers that paid part (or all) of ``amount_tiyn`` before the balance was touched; the
    # balance paid the rest. ``qr_token``: the single-use QR voucher redeemed (its id is also
    # in ``vouchers``). Both left out of the bytes when empty (older servers read them).
    # (``default_factory``: a literal ``[]`` default is deep-copied on every construction,
    # and the canteen's terminals make one of these per meal)
    vouchers: Annotated[list[VoucherSpend], Field(max_length=10)] = Field(default_factory=list)
    qr_token: Id | None = None

    @property
    def voucher_tiyn(self) -> int:
        return sum(v.amount_tiyn for v in self.vouchers)


class LibraryVisitEvent(_EventBase):
    kind: Literal["library_visit"] = "library_visit"
    student_id: Id


class ManualPassEvent(_EventBase):
    """A staff member let a student through personally (a lost card): who authorised it."""

    kind: Literal["manual_pass"] = "manual_pass"
    student_id: Id
    authorised_by: Id
    direction: DirectionW


class CardsBlockedEvent(_EventBase):
    """A staff member blocked a student's cards at the school (a lost card, from the staff
    page): the server blocks the student's active cards for every edge of the school. No card
    number travels: the student, who, why and how many were blocked here."""

    kind: Literal["cards_blocked"] = "cards_blocked"
    student_id: Id
    authorised_by: Id
    reason: Literal["lost", "damaged"]
    cards: Annotated[int, Field(ge=0, le=100)]


InventoryNo = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]+$")]


class LendingActEvent(_EventBase):
    """A lending act at the school's library desk (``edge.lending``): an item named by its
    inventory number handed over to, given back by, or reported lost or damaged by a student,
    who was identified by a tap of their card (no card number travels). ``terminal`` names the
    desk, ``staff_id`` the member who did it."""

    kind: Literal["lending"] = "lending"
    act: Literal["lend", "return", "lost", "damaged"]
    inventory_no: InventoryNo
    student_id: Id
    staff_id: Id


class AlarmEvent(_EventBase):
    kind: Literal["alarm"] = "alarm"
    code: AlarmCodeW
    active: bool  # True raises, False clears
    detail: Text = ""


class CardIssuedEvent(_EventBase):
    """A card was bound at the school's desk (``edge.cards``): its record, never its number.

    ``card_ref`` is made at the school (the number is not derivable from it); ``replaces_ref``
    names the record it replaces (lost, damaged). ``terminal`` names the desk.
    """

    kind: Literal["card_issued"] = "card_issued"
    card_ref: Id
    student_id: Id | None = None
    staff_id: Id | None = None
    replaces_ref: Id | None = None

    @model_validator(mode="after")
    def _one_owner(self) -> CardIssuedEvent:
        if (self.student_id is None) == (self.staff_id is None):
            raise ValueError("a card has exactly one owner: student_id or staff_id")
        return self


class CardChangedEvent(_EventBase):
    """A card record was blocked or unbound at the school's desk (by record, never by number)."""

    kind: Literal["card_changed"] = "card_changed"
    card_ref: Id
    change: Literal["blocked", "unbound"]
    reason: Annotated[str, Field(max_length=32)] | None = None
    student_id: Id | None = None
    staff_id: Id | None = None


class FaceTemplatesDeletedEvent(_EventBase):
    """The school deleted a student's face templates (consent withdrawn or student removed).

    A count and a reason only: no template, encoding, distance or image, ever (invariant 5).
    ``terminal`` names the edge component that deleted them, not a door.
    """

    kind: Literal["face_templates_deleted"] = "face_templates_deleted"
    student_id: Id
    templates: Annotated[int, Field(ge=0)]
    reason: Literal["consent_withdrawn", "student_removed"]


Event = Annotated[
    EntryEvent
    | ExitEvent
    | NotPassedEvent
    | DeniedEvent
    | MealServedEvent
    | LibraryVisitEvent
    | ManualPassEvent
    | CardsBlockedEvent
    | AlarmEvent
    | FaceTemplatesDeletedEvent
    | CardIssuedEvent
    | CardChangedEvent
    | LendingActEvent,
    Field(discriminator="kind"),
]


class EventBatch(Message):
    """Uplink: consecutive-or-not events of one device, seq strictly increasing."""

    school: Id
    device: Id
    sent_at_ms: Millis
    events: Annotated[list[Event], Field(min_length=1, max_length=10_000)]

    @model_validator(mode="after")
    def _increasing(self) -> EventBatch:
        seqs = [e.seq for e in self.events]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise ValueError("event seq must be strictly increasing within a batch")
        return self


class SeqRange(Message):
    first: Seq
    last: Seq

    @model_validator(mode="after")
    def _ordered(self) -> SeqRange:
        if self.last < self.first:
            raise ValueError("range last < first")
        return self


class EventAck(Message):
    """Server -> edge: every seq <= ``committed_through`` is stored; ``missing`` are gaps above it."""

    school: Id
    device: Id
    committed_through: Annotated[int, Field(ge=0)]
    missing: list[SeqRange] = []


class DeviceStatus(Message):
    """Edge -> server, retained. The broker publishes the offline form as the last will."""

    school: Id
    device: Id
    online: bool
    at_ms: Millis
    backlog: Annotated[int, Field(ge=0)] = 0
    oldest_unsent_ms: Millis | None = None
    outbox_capacity: Annotated[int, Field(ge=0)] = 0
    readers_offline: list[Id] = []


# --------------------------------------------------------------------------------- downlink


class CategoryMembership(Message):
    """A social category (free meals) with its document and inclusive validity dates."""

    code: Id
    valid_from: LocalDate
    valid_to: LocalDate
    document: Text

    @model_validator(mode="after")
    def _dates(self) -> CategoryMembership:
        if dt.date.fromisoformat(self.valid_to) < dt.date.fromisoformat(self.valid_from):
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class ConsentRecord(Message):
    kind: ConsentKindW
    granted: bool
    given_by: Text  # the parent or legal representative, as written on the document
    at_ms: Millis
    document: Text


class StudentRecord(Message):
    id: Id
    grade: Annotated[int, Field(ge=0, le=12)]
    class_name: Annotated[str, Field(min_length=1, max_length=16)]
    shift: Annotated[int, Field(ge=1, le=3)]
    display_name: Text = ""  # shown to canteen staff at this school only
    consents: list[ConsentRecord] = []
    categories: list[CategoryMembership] = []


class StaffRecord(Message):
    id: Id
    roles: list[Id]
    classes: list[Annotated[str, Field(min_length=1, max_length=16)]] = []
    pin_hash: Text = ""  # see edge.core.pin: never the PIN itself
    display_name: Text = ""


class CardBinding(Message):
    """A card number bound to a person: only from a centre that still holds the school's numbers
    (before the move of its cards to the school)."""

    credential: Credential
    owner_kind: OwnerKindW
    owner_id: Id
    blocked_reason: Text | None = None


class CardRefAssign(Message):
    """During the move: the record that a number the edge already holds belongs to."""

    credential: Credential
    card_ref: Id


class CardRecord(Message):
    """A card as the centre knows it: owner, status, fee and dates; never the number."""

    card_ref: Id
    owner_kind: OwnerKindW
    owner_id: Id
    status: Literal["active", "blocked"] = "active"
    blocked_reason: Text | None = None
    fee_tiyn: Annotated[int, Field(ge=0, le=10**9)] = 0
    issued_at_ms: Millis
    replaces_ref: Id | None = None


class ShiftDoc(Message):
    number: Annotated[int, Field(ge=1, le=3)]
    entry_from: ClockTime
    entry_to: ClockTime
    starts_at: ClockTime | None = None  # lessons start: late arrivals are counted against it

    @model_validator(mode="after")
    def _window(self) -> ShiftDoc:
        if self.entry_to <= self.entry_from:
            raise ValueError(
                f"shift {self.number}: entry_to {self.entry_to} is not after entry_from"
            )
        return self


class MealPeriodDoc(Message):
    name: Id
    shifts: Annotated[list[Annotated[int, Field(ge=1, le=3)]], Field(min_length=1)]
    from_: Annotated[ClockTime, Field(alias="from")]
    to: ClockTime

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _window(self) -> MealPeriodDoc:
        if self.to <= self.from_:
            raise ValueError(f"meal period {self.name}: 'to' {self.to} is not after 'from'")
        return self


class CategoryPrice(Message):
    """A reduced price (order No. 456): members of ``category`` pay ``percent`` of the menu price
    (rounded down to the tiyn) from ``valid_from`` to ``valid_to`` inclusive. 0 % is free."""

    category: Id
    percent: Annotated[int, Field(ge=0, le=100)]
    valid_from: LocalDate
    valid_to: LocalDate

    @model_validator(mode="after")
    def _dates(self) -> CategoryPrice:
        if dt.date.fromisoformat(self.valid_to) < dt.date.fromisoformat(self.valid_from):
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class PolicyDoc(_OmitsNewFields):
    """The school's rules as data (DESIGN invariant 7). Times are local to ``timezone``."""

    omit_when_empty: ClassVar[tuple[str, ...]] = ("category_prices",)

    timezone: Annotated[str, Field(min_length=1, max_length=64)]
    free_meal_grades: list[Annotated[int, Field(ge=0, le=12)]] = []
    free_meal_categories: list[Id] = []
    anti_passback: AntiPassbackW = AntiPassback.OFF
    manual_pass_roles: list[Id] = ["class_teacher"]
    shifts: Annotated[list[ShiftDoc], Field(alias="shift", min_length=1)]
    meal_periods: Annotated[list[MealPeriodDoc], Field(alias="meal_period")] = []
    valid_from: LocalDate | None = None
    # reduced prices by category; empty: everyone who pays pays the menu price (left out of the
    # bytes when empty, so edges of the release before read the policy unchanged)
    category_prices: Annotated[list[CategoryPrice], Field(max_length=100)] = []

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown timezone {value!r}") from err
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDoc:
        numbers = [s.number for s in self.shifts]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"shift numbers repeat: {numbers}")
        names = [p.name for p in self.meal_periods]
        if len(set(names)) != len(names):
            raise ValueError(f"meal period names repeat: {names}")
        for p in self.meal_periods:
            unknown = set(p.shifts) - set(numbers)
            if unknown:
                raise ValueError(f"meal period {p.name} serves unknown shift(s) {sorted(unknown)}")
        for i, a in enumerate(self.meal_periods):
            for b in self.meal_periods[i + 1 :]:
                common = set(a.shifts) & set(b.shifts)
                if common and a.from_ < b.to and b.from_ < a.to:
                    raise ValueError(
                        f"meal periods {a.name} ({a.from_}-{a.to}) and {b.name} "
                        f"({b.from_}-{b.to}) overlap for shift(s) {sorted(common)}"
                    )
        return self


class MenuItem(Message):
    id: Id
    name: Text
    price_tiyn: Annotated[int, Field(ge=0)]
    allergens: list[Id] = []


class StudentUpsert(Message):
    op: Literal["student_upsert"] = "student_upsert"
    student: StudentRecord


class StudentRemove(Message):
    op: Literal["student_remove"] = "student_remove"
    student_id: Id


class StaffUpsert(Message):
    op: Literal["staff_upsert"] = "staff_upsert"
    staff: StaffRecord


class StaffRemove(Message):
    op: Literal["staff_remove"] = "staff_remove"
    staff_id: Id


class CardBind(Message):
    op: Literal["card_bind"] = "card_bind"
    card: CardBinding


class CardBlock(Message):
    op: Literal["card_block"] = "card_block"
    credential: Credential
    reason: Text


class CardUnbind(Message):
    op: Literal["card_unbind"] = "card_unbind"
    credential: Credential


class CardRefsAssign(Message):
    """The move of a school's cards to the school: names the record of every number the edge
    already holds. Once every edge of the school has applied this version, the centre deletes
    its copy of the numbers and rewrites this change to ``refs=[]`` (the mark of the move)."""

    op: Literal["card_refs"] = "card_refs"
    refs: Annotated[list[CardRefAssign], Field(max_length=200_000)]


class CardRecordSet(Message):
    """A card record as the centre has it (issued at the school, its fee, a status): the edge
    updates the card it holds under that ref, and ignores a ref it does not hold."""

    op: Literal["card_record"] = "card_record"
    record: CardRecord


class CardRecordBlock(Message):
    op: Literal["card_record_block"] = "card_record_block"
    card_ref: Id
    reason: Text


class CardRecordUnbind(Message):
    op: Literal["card_record_unbind"] = "card_record_unbind"
    card_ref: Id


class ConsentSet(Message):
    """A consent given or withdrawn. Withdrawal of biometric consent deletes templates at the school."""

    op: Literal["consent_set"] = "consent_set"
    student_id: Id
    consent: ConsentRecord


class CategoriesSet(Message):
    op: Literal["categories_set"] = "categories_set"
    student_id: Id
    categories: list[CategoryMembership]


class PolicySet(Message):
    op: Literal["policy_set"] = "policy_set"
    policy: PolicyDoc


class MenuSet(Message):
    op: Literal["menu_set"] = "menu_set"
    local_date: LocalDate
    items: list[MenuItem]


class BalanceCredit(Message):
    """Money put on a student's canteen balance at the school (a parent's top-up, a refund, a
    voucher), named by the server's ledger entry: applying the same ``ledger_id`` twice credits
    once."""

    op: Literal["balance_credit"] = "balance_credit"
    ledger_id: Id
    student_id: Id
    amount_tiyn: Annotated[int, Field(ge=1, le=10**9)]


class ParentLimitsSet(Message):
    """A parent's canteen limits for their child: allergens never sold to them and a daily
    spending cap (None: no cap). Replaces the previous limits."""

    op: Literal["parent_limits_set"] = "parent_limits_set"
    student_id: Id
    allergen_blocks: Annotated[list[Id], Field(max_length=50)] = []
    daily_cap_tiyn: Annotated[int, Field(ge=0, le=10**9)] | None = None


class BalanceDebit(Message):
    """Money taken from a student's canteen balance at the school (a canteen manager's negative
    correction at the server), named by the server's ledger entry: applied once per
    ``ledger_id``. Applied in full, even below the overdraft (the server's ledger has already
    booked it); a balance below the overdraft sells nothing until topped up."""

    op: Literal["balance_debit"] = "balance_debit"
    ledger_id: Id
    student_id: Id
    amount_tiyn: Annotated[int, Field(ge=1, le=10**9)]


class BalanceTotal(Message):
    """The net of every credit less every server debit the centre has sent for a student through
    a version (its opening balance at the school before sales): the edge adds the difference
    from what it has applied so far."""

    student_id: Id
    net_tiyn: Annotated[int, Field(ge=-(10**15), le=10**15)]


class BalanceTotalsSet(Message):
    """Per listed student, the net money the centre has sent through this version (credits less
    server debits): the edge moves the balance by the difference from the net it has applied
    and keeps that net; students not listed are untouched. What a snapshot's ``balance_totals``
    carries, as a change (the server's compacted log holds it; an edge of the release before
    does not know it, so it is never sent to one in a delta)."""

    op: Literal["balance_totals"] = "balance_totals"
    totals: Annotated[list[BalanceTotal], Field(max_length=200_000)]


class VoucherGrant(Message):
    """A social-wallet voucher of a student, issued by ``issuer``: ``amount_tiyn`` to spend on
    meals of ``meal_periods`` (empty: any) from ``valid_from`` to ``valid_to`` inclusive. The
    school spends it by card, offline, before the prepaid balance; applied once per id."""

    op: Literal["voucher_grant"] = "voucher_grant"
    voucher_id: Id
    issuer: Id
    student_id: Id
    amount_tiyn: Annotated[int, Field(ge=1, le=10**9)]
    valid_from: LocalDate
    valid_to: LocalDate
    meal_periods: Annotated[list[Id], Field(max_length=10)] = []

    @model_validator(mode="after")
    def _dates(self) -> VoucherGrant:
        if dt.date.fromisoformat(self.valid_to) < dt.date.fromisoformat(self.valid_from):
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


class VoucherIssuerKey(Message):
    """The PUBLIC key of a voucher issuer (the social wallet): the school verifies QR vouchers
    with it and can never mint one. ``public_key``: raw 32-byte Ed25519, standard base64."""

    op: Literal["voucher_issuer_key"] = "voucher_issuer_key"
    issuer: Id
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]
    revoked: bool = False


class LendingItem(Message):
    """An item of the school's balance that the library desk lends: a device of a campaign, a
    textbook or a book; ``holder`` is the student who holds it as the centre knows it."""

    inventory_no: InventoryNo
    kind: Literal["device", "textbook", "book"]
    title: Annotated[str, Field(max_length=200)] = ""
    campaign: Id | None = None  # a device's campaign (its approved list decides who gets it)
    holder: Id | None = None


class LendingApproval(Message):
    """A student on a campaign's approved list at this school: a device of that campaign is
    theirs to receive (one per campaign)."""

    campaign: Id
    campaign_name: Annotated[str, Field(max_length=200)] = ""
    student_id: Id
    rank: Annotated[int, Field(ge=1, le=10**6)]


class LendingSet(Message):
    """The school's lendable items and approved lists, wholesale (the desk works offline on
    them): sent when a list is approved or the school's items change."""

    op: Literal["lending_set"] = "lending_set"
    items: Annotated[list[LendingItem], Field(max_length=100_000)]
    approvals: Annotated[list[LendingApproval], Field(max_length=100_000)] = []


Change = Annotated[
    StudentUpsert
    | StudentRemove
    | StaffUpsert
    | StaffRemove
    | CardBind
    | CardBlock
    | CardUnbind
    | CardRefsAssign
    | CardRecordSet
    | CardRecordBlock
    | CardRecordUnbind
    | ConsentSet
    | CategoriesSet
    | PolicySet
    | MenuSet
    | BalanceCredit
    | ParentLimitsSet
    | BalanceDebit
    | VoucherGrant
    | VoucherIssuerKey
    | LendingSet
    | BalanceTotalsSet,
    Field(discriminator="op"),
]


class SyncDelta(Message):
    """Changes that take an edge from ``base_version`` to ``version``; applied atomically."""

    school: Id
    version: Annotated[int, Field(ge=1)]
    base_version: Annotated[int, Field(ge=0)]
    changes: list[Change]

    @model_validator(mode="after")
    def _forward(self) -> SyncDelta:
        if self.version <= self.base_version:
            raise ValueError("delta version must be greater than its base_version")
        return self


class SyncSnapshot(_OmitsNewFields):
    """Everything a school's edge needs, at ``version``: replaces the edge's roster wholesale."""

    omit_when_empty: ClassVar[tuple[str, ...]] = (
        "balance_debits",
        "vouchers",
        "voucher_issuers",
        "menus",
    )

    school: Id
    version: Annotated[int, Field(ge=0)]
    policy: PolicyDoc | None
    students: list[StudentRecord]
    staff: list[StaffRecord]
    cards: list[CardBinding]  # numbers: only while the centre still holds the school's
    menu: list[MenuItem] = []
    # The school's card records and, during the move, the records of the numbers above (None:
    # a school whose cards have not moved; left out of the encoding then, so an edge of the
    # release before reads the snapshot). With records, the edge keeps the numbers it holds and
    # follows the records' owners and statuses.
    card_refs: list[CardRefAssign] | None = None
    card_records: list[CardRecord] | None = None

    @model_serializer(mode="wrap")
    def _omit_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The base's rule for the money fields; the card move's fields and the lending list
        are left out only when None (an empty list of records still says "moved")."""
        out: dict[str, Any] = handler(self)
        for key in self.omit_when_empty:
            if out.get(key) in (None, [], ()):
                out.pop(key, None)
        for key in ("card_refs", "card_records", "lending", "balance_totals"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    # canteen money, to an edge that announced ``balance_totals`` (EdgeFeatures): per student,
    # the net of every credit and server debit sent through ``version`` (None: not carried, left
    # out of the bytes; the lists below carry the money instead) ...
    balance_totals: list[BalanceTotal] | None = None
    # ... or, to an edge of the release before: every credit ever sent (the edge applies each
    # ledger id once, so a snapshot never loses a credit of a delta it replaces, nor credits one
    # twice) ...
    balance_credits: list[BalanceCredit] = []
    # ... and every student's limits (None: not carried, the edge keeps what it has)
    parent_limits: list[ParentLimitsSet] | None = None
    # ... every debit and voucher ever sent (each applied once by id) and the issuers' public
    # keys (left out of the bytes when empty)
    balance_debits: list[BalanceDebit] = []
    vouchers: list[VoucherGrant] = []
    voucher_issuers: list[VoucherIssuerKey] = []
    # the library desk's items and approved lists (None: none published; left out then)
    lending: LendingSet | None = None
    # the dated menus of the last days (the edge replaces each date's menu, as a delta's
    # menu_set does; left out of the bytes when empty): a school that is brought up to date by a
    # snapshot sells today's menu set at the server before
    menus: list[MenuSet] = []


class SyncAck(Message):
    """Edge -> server: the downlink version now applied."""

    school: Id
    device: Id
    applied_version: Annotated[int, Field(ge=0)]
    need_snapshot: bool = False


# What an edge of this release understands beyond the release before (EdgeFeatures).
FEATURE_BALANCE_TOTALS = "balance_totals"  # snapshots carry balance_totals, not every credit


class EdgeFeatures(Message):
    """Edge -> server on its sync/ack topic, before its SyncAck at every connection: the
    downlink features this edge understands, so the server sends it what it can read (a server
    of the release before does not know this message and ignores it)."""

    school: Id
    device: Id
    features: Annotated[list[Id], Field(max_length=50)]


class CentreKeyAnnounce(Message):
    """Server -> edge: the centre's next public key, signed by its current key (key rotation).

    The edge keeps it beside the pinned key and switches to it, for good, at the first message
    signed by it. ``public_key`` is the raw 32-byte Ed25519 key in standard base64; ``key_id``
    is ``protocol.centre.key_id`` of it.
    """

    school: Id
    device: Id
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    public_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]


# Standard base64 of a raw 32-byte X25519 public key, and of a short ciphertext.
Key32B64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}=$")]
SealedB64 = Annotated[str, Field(min_length=4, max_length=128, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]


class EdgeBoxKey(Message):
    """Edge -> server on its sync/ack topic, signed with the device's key: the X25519 public key
    the centre seals staff PINs to (``protocol.sealing``). Sent at every connection; the server
    keeps the newest one whose signature verifies with the device's enrolled key."""

    school: Id
    device: Id
    public_key: Key32B64


class SealedStaffPin(Message):
    """A staff member's new PIN sealed to one edge's box key (never the PIN, never a hash)."""

    staff_id: Id
    version: Annotated[int, Field(ge=1, le=2**31)]  # the console's reset counter for this member
    enc: Key32B64  # the sender's one-time X25519 public key
    ct: SealedB64  # ChaCha20-Poly1305 of the PIN, bound to school, device, staff and version


class StaffPins(Message):
    """Server -> edge on its sync topic (centre-signed): PINs set from the console since the
    edge last acknowledged; sent again until acknowledged."""

    school: Id
    device: Id
    pins: Annotated[list[SealedStaffPin], Field(min_length=1, max_length=200)]


class StaffPinReceipt(Message):
    staff_id: Id
    version: Annotated[int, Field(ge=1, le=2**31)]
    opened: bool  # False: the seal did not open with this edge's key (sealed to an old key)


class StaffPinsAck(Message):
    """Edge -> server on its sync/ack topic, signed with the device's key: these sealed PINs
    were handled (the server then drops its ciphertexts)."""

    school: Id
    device: Id
    receipts: Annotated[list[StaffPinReceipt], Field(min_length=1, max_length=200)]


ALL_MESSAGES: dict[str, type[Message]] = {
    "event_batch": EventBatch,
    "event_ack": EventAck,
    "device_status": DeviceStatus,
    "sync_delta": SyncDelta,
    "sync_snapshot": SyncSnapshot,
    "sync_ack": SyncAck,
    "centre_key": CentreKeyAnnounce,
    "edge_box_key": EdgeBoxKey,
    "staff_pins": StaffPins,
    "staff_pins_ack": StaffPinsAck,
    "edge_features": EdgeFeatures,
}
TYPE_NAMES: dict[type[Message], str] = {cls: name for name, cls in ALL_MESSAGES.items()}
