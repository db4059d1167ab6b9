"""The equipment module's decisions, pure (no I/O, no clock: ``today`` is passed in).

- the priority list: who receives a device, in which order (rules as data, with their source);
- the approval flow of a list and its versions;
- acceptance of a delivered device against the specification (order No. 79 minimums);
- the dashboard's risk signals (the seed's named risks);
- lending: who may receive what, and the shape of a lending event synced from a school's desk.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

N_ = str


class EquipmentError(ValueError):
    """A refused action: ``message`` is an English msgid, ``detail`` the precise values."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(f"{message} {detail}".strip())
        self.message = message
        self.detail = detail


# ------------------------------------------------------------------------------ priority list

# The rules as data: what decides the order, and where the rule comes from.
PRIORITY_RULES: dict[str, Any] = {
    "source": (
        "Seed 000 (East Kazakhstan, 2020): one device per family left children of low-income "
        "and large families without one; the goal is one device per child"
    ),
    "one_per_child": True,
    "eligible": "no computer at home (the parent's survey answer)",
    "priority_categories": [
        "low_income",
        "large_family",
        "targeted_assistance",
        "below_subsistence",
    ],
    "order": [
        "children of low-income and large families first",
        "within them, families with the most uncovered children first",
        "then the earlier application",
        "then the student id (never chance)",
    ],
}


@dataclass(frozen=True, slots=True)
class Applicant:
    student: int
    family: str
    has_computer: bool
    needy: bool  # a low-income or large family (category or the survey's income answer)
    applied_at_ms: int


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    student: int
    family: str
    priority: bool
    family_uncovered: int


def applicant_key(a: Applicant) -> tuple[int, int, str, bool, bool]:
    return (a.student, a.applied_at_ms, a.family, a.has_computer, a.needy)


def priority_list(
    applicants: Iterable[Applicant], already_covered: Iterable[int] = ()
) -> list[Ranked]:
    """One place per child without a computer (and not already given a device), in the order of
    ``PRIORITY_RULES``. Deterministic: ties end at the student id."""
    covered = set(already_covered)
    seen: set[int] = set()
    wanted: list[Applicant] = []
    # A child applied twice: the earliest application counts (ties broken by every field).
    for a in sorted(applicants, key=applicant_key):
        if a.student in seen:
            continue  # one place per child whatever the input repeats
        seen.add(a.student)
        if not a.has_computer and a.student not in covered:
            wanted.append(a)
    per_family: dict[str, int] = {}
    for a in wanted:
        per_family[a.family] = per_family.get(a.family, 0) + 1
    wanted.sort(key=lambda a: (not a.needy, -per_family[a.family], a.applied_at_ms, a.student))
    return [
        Ranked(i + 1, a.student, a.family, a.needy, per_family[a.family])
        for i, a in enumerate(wanted)
    ]


# ------------------------------------------------------------------------------- approvals


class ListStatus(enum.StrEnum):
    DRAFT = "draft"
    PROPOSED = "proposed"  # by the school
    DISTRICT_APPROVED = "district_approved"
    APPROVED = "approved"  # by the region: frozen
    SUPERSEDED = "superseded"  # a later version replaced it


class Step(enum.StrEnum):
    PROPOSE = "propose"
    DISTRICT = "district"
    REGION = "region"
    RETURN = "return"


STATUS_LABELS = {
    ListStatus.DRAFT: N_("draft"),
    ListStatus.PROPOSED: N_("proposed by the school"),
    ListStatus.DISTRICT_APPROVED: N_("approved by the district"),
    ListStatus.APPROVED: N_("approved by the region (frozen)"),
    ListStatus.SUPERSEDED: N_("superseded"),
}

_NEXT: dict[tuple[ListStatus, Step], ListStatus] = {
    (ListStatus.DRAFT, Step.PROPOSE): ListStatus.PROPOSED,
    (ListStatus.PROPOSED, Step.DISTRICT): ListStatus.DISTRICT_APPROVED,
    (ListStatus.DISTRICT_APPROVED, Step.REGION): ListStatus.APPROVED,
    (ListStatus.PROPOSED, Step.RETURN): ListStatus.DRAFT,
    (ListStatus.DISTRICT_APPROVED, Step.RETURN): ListStatus.DRAFT,
}


def next_status(current: str, step: Step) -> ListStatus:
    """The status after ``step``; a step out of order is refused with the reason."""
    try:
        status = ListStatus(current)
    except ValueError as err:
        raise EquipmentError(N_("Unknown list status."), current) from err
    if status is ListStatus.APPROVED:
        raise EquipmentError(
            N_("An approved list is frozen: make a new version with a reason."), ""
        )
    found = _NEXT.get((status, step))
    if found is None:
        raise EquipmentError(
            N_("This step is not possible now."), f"{step.value} at {status.value}"
        )
    return found


def new_version_allowed(latest_status: str | None, reason: str) -> None:
    """A first version needs nothing; a change after approval needs a reason; a list still in
    approval is changed by returning it, not by a new version."""
    if latest_status is None or latest_status == ListStatus.DRAFT:
        return
    if latest_status == ListStatus.APPROVED:
        if not reason.strip():
            raise EquipmentError(N_("A new version after approval needs a reason."))
        return
    raise EquipmentError(N_("The list is in approval: return it to draft first."), latest_status)


# ---------------------------------------------------------------------- specification, acceptance

# Order No. 79 of the Minister of Education and Science, 2 March 2020: minimum requirements for
# computers given to students. The figures are the demo's reading of it, as data.
ORDER_79_SOURCE = "Order No. 79 of the Ministry of Education and Science, 2 March 2020"
ORDER_79_MINIMUMS: dict[str, Any] = {
    "cpu_cores": 2,
    "ram_gb": 4,
    "storage_gb": 64,
    "screen_in": 10.0,
    "warranty_months": 12,
    "os": ["Windows 10", "Windows 11", "Android", "Linux", "ChromeOS"],
}
NUMERIC_MINIMUMS = ("cpu_cores", "ram_gb", "storage_gb", "screen_in", "warranty_months")
PROPERTY_LABELS = {
    "cpu_cores": N_("Processor cores"),
    "ram_gb": N_("Memory, GB"),
    "storage_gb": N_("Storage, GB"),
    "screen_in": N_("Screen, inches"),
    "warranty_months": N_("Warranty, months"),
    "os": N_("Operating system"),
}


def spec_mismatches(minimums: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
    """Why a device does not meet the specification (empty: it does). Missing is a mismatch."""
    out: list[str] = []
    for key in NUMERIC_MINIMUMS:
        need = minimums.get(key)
        if need is None:
            continue
        have = props.get(key)
        if not isinstance(have, (int, float)) or isinstance(have, bool):
            out.append(f"{key}: missing (needs at least {need})")
        elif have < need:
            out.append(f"{key}: {have} is below the minimum {need}")
    allowed = minimums.get("os")
    if allowed:
        have_os = props.get("os")
        if not isinstance(have_os, str) or have_os not in allowed:
            out.append(f"os: {have_os!r} is not one of {', '.join(allowed)}")
    return out


def parse_properties(text: str) -> dict[str, Any]:
    """``cpu_cores=4; ram_gb=8; os=Windows 11`` -> a dict (numbers as numbers). Bounded."""
    if len(text) > 1000:
        raise EquipmentError(N_("The device properties are too long."), f"{len(text)} characters")
    out: dict[str, Any] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in PROPERTY_LABELS:
            raise EquipmentError(N_("Unknown device property."), part.strip()[:60])
        if key in NUMERIC_MINIMUMS:
            try:
                out[key] = float(value) if key == "screen_in" else int(value)
            except ValueError as err:
                raise EquipmentError(N_("A device property must be a number."), key) from err
        else:
            out[key] = value[:60]
    return out


# --------------------------------------------------------------------------------- risk signals


class Signal(enum.StrEnum):
    MONEY_SHORT = "money_short"
    PRICE_ABOVE_PLAN = "price_above_plan"
    LATE_DELIVERY = "late_delivery"
    SPEC_MISMATCH = "spec_mismatch"


SIGNAL_LABELS = {
    Signal.MONEY_SHORT: N_("Sponsor money is short of the goal"),
    Signal.PRICE_ABOVE_PLAN: N_("A contract's price is above the plan"),
    Signal.LATE_DELIVERY: N_("A delivery is late"),
    Signal.SPEC_MISMATCH: N_("Delivered devices did not match the specification"),
}


@dataclass(frozen=True, slots=True)
class ContractState:
    number: str
    unit_price_tiyn: int
    quantity: int
    delivered: int
    due_on: dt.date


@dataclass(frozen=True, slots=True)
class RiskSignal:
    signal: Signal
    detail: str


def _tenge(tiyn: int) -> str:
    """Whole tenge grouped by thousands with a no-break space: 79 500 000 (any language)."""
    return f"{tiyn // 100:,}".replace(",", "\u00a0")


def risk_signals(
    *,
    today: dt.date,
    goal_tiyn: int,
    paid_tiyn: int,
    pledged_tiyn: int,
    planned_unit_price_tiyn: int,
    contracts: Sequence[ContractState],
    rejected: int,
    deadline: dt.date,
) -> list[RiskSignal]:
    """The seed's risks as signals: too few sponsors, price rises, late delivery, spec mismatch."""
    out: list[RiskSignal] = []
    promised = max(paid_tiyn, pledged_tiyn)
    if goal_tiyn > 0 and promised < goal_tiyn:
        out.append(RiskSignal(Signal.MONEY_SHORT, f"{_tenge(promised)} / {_tenge(goal_tiyn)} ₸"))
    for c in contracts:
        if planned_unit_price_tiyn > 0 and c.unit_price_tiyn > planned_unit_price_tiyn:
            out.append(
                RiskSignal(
                    Signal.PRICE_ABOVE_PLAN,
                    f"{c.number}: {_tenge(c.unit_price_tiyn)} > {_tenge(planned_unit_price_tiyn)} ₸",
                )
            )
        if c.delivered < c.quantity and (today > c.due_on or today > deadline):
            out.append(
                RiskSignal(
                    Signal.LATE_DELIVERY,
                    f"{c.number}: {c.delivered}/{c.quantity}, {c.due_on.isoformat()}",
                )
            )
    if rejected > 0:
        out.append(RiskSignal(Signal.SPEC_MISMATCH, str(rejected)))
    return out


# ------------------------------------------------------------------------------------ lending


class ItemKind(enum.StrEnum):
    DEVICE = "device"
    TEXTBOOK = "textbook"
    BOOK = "book"


class ItemStatus(enum.StrEnum):
    IN_STOCK = "in_stock"
    LENT = "lent"
    REPAIR = "repair"
    LOST = "lost"
    WRITTEN_OFF = "written_off"


KIND_LABELS = {
    ItemKind.DEVICE: N_("Device"),
    ItemKind.TEXTBOOK: N_("Textbook"),
    ItemKind.BOOK: N_("Library book"),
}
# An item's history, by action (statuses share the status labels).
ACTION_LABELS = {
    "accepted": N_("accepted at delivery"),
    "added": N_("added to the balance"),
    "lent": N_("lent"),
    "returned": N_("given back"),
    "counted": N_("counted at stocktaking"),
    "desk_refused": N_("an act of the school's desk refused here"),
}
ITEM_STATUS_LABELS = {
    ItemStatus.IN_STOCK: N_("in stock"),
    ItemStatus.LENT: N_("lent"),
    ItemStatus.REPAIR: N_("in repair"),
    ItemStatus.LOST: N_("lost or missing"),
    ItemStatus.WRITTEN_OFF: N_("written off"),
}


@dataclass(frozen=True, slots=True)
class LendCheck:
    item_kind: str
    item_status: str
    item_school: str
    student_school: str
    on_approved_list: bool
    open_device_loan_in_campaign: bool


def check_lend(c: LendCheck) -> None:
    """May this item go to this student? A refusal says why."""
    if c.item_school != c.student_school:
        raise EquipmentError(N_("The item belongs to another school."))
    if c.item_status != ItemStatus.IN_STOCK:
        raise EquipmentError(N_("The item is not in stock."), c.item_status)
    if c.item_kind == ItemKind.DEVICE:
        if not c.on_approved_list:
            raise EquipmentError(N_("The student is not on the approved list of this campaign."))
        if c.open_device_loan_in_campaign:
            raise EquipmentError(N_("The student already holds a device of this campaign."))


def check_return(item_status: str, has_open_loan: bool) -> None:
    if item_status != ItemStatus.LENT or not has_open_loan:
        raise EquipmentError(N_("The item is not lent: nothing to return."), item_status)


def overdue(due_on: dt.date, today: dt.date, returned: bool) -> bool:
    return not returned and today > due_on


# The lending event a school's desk records offline and syncs like every event (``lending``,
# ``protocol.messages.LendingActEvent``: its act, the item's inventory number, the student; its
# payload as stored in ``events``). The older names (``equipment_lend``/``equipment_return``,
# the act in the kind) are read too. The server applies each stored event once.
LEND_EVENT_KINDS = ("lending", "equipment_lend", "equipment_return")
LEND_ACTS = ("lend", "return", "lost", "damaged")


@dataclass(frozen=True, slots=True)
class LendingEvent:
    kind: str  # lending (or equipment_lend / equipment_return)
    student_id: str  # the student's ref (never a name)
    inventory_no: str
    at_ms: int
    act_ref: str = ""  # the signed act's scan, for a hand-over
    act: str = "lend"  # lend / return / lost / damaged


def parse_lending_event(
    kind: str, student_id: str | None, payload: Mapping[str, Any]
) -> LendingEvent:
    """A stored edge event as a lending event; anything malformed is refused with the reason."""
    if kind not in LEND_EVENT_KINDS:
        raise EquipmentError(N_("Not a lending event."), kind[:32])
    act = payload.get("act") if kind == "lending" else kind.removeprefix("equipment_")
    if act not in LEND_ACTS:
        raise EquipmentError(N_("Not a lending event."), str(act)[:32])
    inv = payload.get("inventory_no")
    at = payload.get("at_ms")
    if not student_id or not isinstance(inv, str) or not inv or len(inv) > 64:
        raise EquipmentError(N_("A lending event names a student and an inventory number."))
    if not isinstance(at, int) or isinstance(at, bool) or at <= 0:
        raise EquipmentError(N_("A lending event carries its time."))
    ref = payload.get("act_ref", "")
    return LendingEvent(
        kind, student_id, inv, at, ref[:200] if isinstance(ref, str) else "", str(act)
    )
