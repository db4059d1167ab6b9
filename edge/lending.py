"""The school's library desk: devices, textbooks and books lent by a tap of the student's card.

The desk identifies the student by their card (the number is read at the desk reader and looked
up in this school's store; it never travels), then hands an item over, takes it back, or records
it lost or damaged. Each act is checked against what the school holds offline - the items and
approved lists the centre sent (``lending_set``) and who holds what - and journaled as a
``lending`` event in the same transaction as its effect on the item's holder, before the page
shows success; the event reaches the centre with the next sync, where the loan is applied once.

Refusals (``LendingRefused``, nothing changes) name what is wrong: an unknown inventory number, a
device not approved for this student, a second device of one campaign, an item another student
holds, a return of an item this student does not hold."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from edge.store import DeskApproval, DeskItem, EdgeStore, JournalEntry, LendingWrite
from protocol.messages import LendingActEvent

DESK = "library-desk"  # the journal's terminal of an act made at the desk
MAX_INVENTORY_NO = 64

Act = Literal["lend", "return", "lost", "damaged"]
ACTS: tuple[Act, ...] = ("lend", "return", "lost", "damaged")


class LendingRefused(ValueError):
    """An act that must not happen: ``code`` names the reason (a key of the desk's strings),
    ``detail`` the values (an inventory number, never another student's name)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DeskStudent:
    """What the desk shows after a tap: who, what is theirs to receive, what they hold."""

    student_id: str
    name: str
    class_name: str
    approvals: list[DeskApproval]
    holds: list[DeskItem]
    suggested: dict[str, str]  # campaign -> a device of it in stock, for one not yet given


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def normalise_inventory_no(text: str) -> str:
    inv = text.strip()
    if not inv or len(inv) > MAX_INVENTORY_NO or any(ord(c) < 32 for c in inv):
        raise LendingRefused("lending.bad_inventory_no", inv[:MAX_INVENTORY_NO])
    return inv


def student_of_card(store: EdgeStore, credential: str) -> str:
    """The student whose active card was tapped (a staff card, an unknown or a blocked card is
    refused)."""
    card = store.state.card(credential)
    if card is None or card.owner_kind.value != "student":
        raise LendingRefused("lending.unknown_card")
    if card.blocked_reason is not None:
        raise LendingRefused("lending.blocked_card")
    if store.state.student(card.owner_id) is None:
        raise LendingRefused("lending.unknown_card")
    return card.owner_id


async def desk_student(store: EdgeStore, student_id: str) -> DeskStudent:
    st = store.state.student(student_id)
    if st is None:
        raise LendingRefused("lending.unknown_student", student_id)
    holds = await store.desk_items_of(student_id)
    approvals = await store.desk_approvals_of(student_id)
    held_campaigns = {i.campaign for i in holds if i.kind == "device"}
    suggested: dict[str, str] = {}
    for a in approvals:
        if a.campaign not in held_campaigns:
            stock = await store.desk_in_stock(a.campaign, limit=1)
            if stock:
                suggested[a.campaign] = stock[0].inventory_no
    return DeskStudent(
        student_id,
        store.display_names.get(student_id, "") or student_id,
        st.class_name,
        approvals,
        holds,
        suggested,
    )


async def _check(store: EdgeStore, act: Act, student_id: str, inv: str) -> LendingWrite:
    item = await store.desk_item(inv)
    if item is None:
        raise LendingRefused("lending.unknown_item", inv)
    if act == "lend":
        if item.holder == student_id:
            raise LendingRefused("lending.already_holds", inv)
        if item.holder is not None:
            raise LendingRefused("lending.held_by_other", inv)
        if item.away:
            raise LendingRefused("lending.away", inv)
        if item.kind == "device":
            approved = {a.campaign for a in await store.desk_approvals_of(student_id)}
            if item.campaign is None or item.campaign not in approved:
                raise LendingRefused("lending.not_approved", inv)
            for held in await store.desk_items_of(student_id):
                if held.kind == "device" and held.campaign == item.campaign:
                    raise LendingRefused("lending.has_device", held.inventory_no)
        return LendingWrite(inv, student_id)
    if item.holder != student_id:
        raise LendingRefused("lending.not_lent", inv)
    return LendingWrite(inv, None, away=act in ("lost", "damaged"))


async def record_act(
    store: EdgeStore,
    act: str,
    student_id: str,
    inventory_no: str,
    staff_id: str,
    *,
    desk: str = DESK,
) -> int:
    """Check and journal one act (its effect on the item in the same transaction); returns the
    event's seq. Refused with ``LendingRefused`` (nothing changes)."""
    if act not in ACTS:
        raise LendingRefused("lending.bad_act", str(act)[:16])
    inv = normalise_inventory_no(inventory_no)
    if store.state.student(student_id) is None:
        raise LendingRefused("lending.unknown_student", student_id)
    async with store.write_lock:  # check and write as one step: two desks cannot lend one item
        write = await _check(store, act, student_id, inv)
        event = LendingActEvent(
            seq=1,
            at_ms=_now_ms(),
            terminal=desk,
            act=act,
            inventory_no=inv,
            student_id=student_id,
            staff_id=staff_id,
        )
        events = await store.journal([JournalEntry(event, lending=write)])
    return events[0].seq
