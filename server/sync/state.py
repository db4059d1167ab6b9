"""A school's downlink state as a pure fold over its change log (what a snapshot carries).

The fold mirrors what the edge store does with each change, so that a snapshot at version N
equals applying deltas 1..N.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from protocol.messages import (
    BalanceCredit,
    BalanceDebit,
    BalanceTotal,
    BalanceTotalsSet,
    CardBind,
    CardBinding,
    CardRecord,
    CardRecordSet,
    CardRefAssign,
    CardRefsAssign,
    Change,
    LendingSet,
    MenuItem,
    MenuSet,
    OwnerKind,
    ParentLimitsSet,
    PolicyDoc,
    PolicySet,
    StaffRecord,
    StaffUpsert,
    StudentRecord,
    StudentUpsert,
    SyncSnapshot,
    VoucherGrant,
    VoucherIssuerKey,
)

# A snapshot carries the dated menus of this many of the last dates set (today's and the
# days ahead that a manager set early; older ones sell nothing).
SNAPSHOT_MENU_DAYS = 7


class ChangeRejected(ValueError):
    """A change that must not be published (e.g. a card bound to another school's student)."""


@dataclass(slots=True)
class SchoolState:
    students: dict[str, StudentRecord] = field(default_factory=dict)
    staff: dict[str, StaffRecord] = field(default_factory=dict)
    # numbers: only of a school whose cards the centre bound before the move (erased after it)
    cards: dict[str, CardBinding] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # number -> record, during the move
    records: dict[str, CardRecord] = field(default_factory=dict)  # the school's card records
    moved: bool = False  # the log holds the move (card_refs): snapshots carry records
    policy: PolicyDoc | None = None
    menus: dict[str, list[MenuItem]] = field(default_factory=dict)
    # canteen money: per student, the net of every credit and server debit ever sent (each
    # ledger id counted once, as the edge applies it once): a snapshot's opening balances ...
    money: dict[str, int] = field(default_factory=dict)
    # ... the ledger ids this fold has counted (only those folded since the checkpoint when it
    # started from one: the checkpoint keeps the nets, not the ids; the canteen's ledger sends
    # each id once, so a repeat can only come within the few versions a fold reads)
    money_ids: set[str] = field(default_factory=set)
    # ... each student's current limits, so that a snapshot loses none of the deltas it replaces
    limits: dict[str, ParentLimitsSet] = field(default_factory=dict)
    # ... every voucher ever sent (applied once by id there), the issuers' keys
    vouchers: dict[str, VoucherGrant] = field(default_factory=dict)
    issuers: dict[str, VoucherIssuerKey] = field(default_factory=dict)
    lending: LendingSet | None = None  # the library desk's items and approved lists

    def apply(self, change: Change) -> None:
        match change.op:
            case "student_upsert":
                self.students[change.student.id] = change.student
            case "student_remove":
                self.students.pop(change.student_id, None)
                self._drop_cards(OwnerKind.STUDENT, change.student_id)
            case "staff_upsert":
                self.staff[change.staff.id] = change.staff
            case "staff_remove":
                self.staff.pop(change.staff_id, None)
                self._drop_cards(OwnerKind.STAFF, change.staff_id)
            case "card_bind":
                self.cards[change.card.credential.upper()] = change.card
            case "card_block":
                cred = change.credential.upper()
                card = self.cards.get(cred)
                if card is not None:
                    self.cards[cred] = card.model_copy(update={"blocked_reason": change.reason})
            case "card_unbind":
                self.cards.pop(change.credential.upper(), None)
                self.refs.pop(change.credential.upper(), None)
            case "card_refs":
                self.moved = True
                for r in change.refs:
                    self.refs[r.credential.upper()] = r.card_ref
            case "card_record":
                self.records[change.record.card_ref] = change.record
            case "card_record_block":
                rec = self.records.get(change.card_ref)
                if rec is not None:
                    self.records[rec.card_ref] = rec.model_copy(
                        update={"status": "blocked", "blocked_reason": change.reason}
                    )
            case "card_record_unbind":
                self.records.pop(change.card_ref, None)
            case "consent_set":
                st = self.students.get(change.student_id)
                if st is not None:
                    kept = [c for c in st.consents if c.kind != change.consent.kind]
                    self.students[st.id] = st.model_copy(
                        update={"consents": [*kept, change.consent]}
                    )
            case "categories_set":
                st = self.students.get(change.student_id)
                if st is not None:
                    self.students[st.id] = st.model_copy(update={"categories": change.categories})
            case "policy_set":
                self.policy = change.policy
            case "menu_set":
                self.menus[change.local_date] = change.items
            case "balance_credit":
                self._count(f"c:{change.ledger_id}", change.student_id, change.amount_tiyn)
            case "parent_limits_set":
                self.limits[change.student_id] = change
            case "balance_debit":
                self._count(f"d:{change.ledger_id}", change.student_id, -change.amount_tiyn)
            case "balance_totals":  # a compacted log's nets (the checkpoint)
                for t in change.totals:
                    self.money[t.student_id] = t.net_tiyn
            case "voucher_grant":
                self.vouchers.setdefault(change.voucher_id, change)
            case "voucher_issuer_key":
                self.issuers[change.issuer] = change
            case "lending_set":
                self.lending = change

    def _count(self, key: str, student_id: str, amount: int) -> None:
        """A credit (key ``c:<ledger id>``) or debit (``d:...``) counted once, as the edge's
        tables of applied credits and of server debits each take a ledger id once."""
        if key in self.money_ids:
            return
        self.money_ids.add(key)
        self.money[student_id] = self.money.get(student_id, 0) + amount

    def balance_totals(self, leave_out: Collection[str] = ()) -> list[BalanceTotal]:
        """The nets, but those of ``leave_out`` (the edge leaves a student it is not given as
        it is: a snapshot leaves out the ids of erased students, whose money the log renamed)."""
        return [
            BalanceTotal(student_id=s, net_tiyn=n)
            for s, n in sorted(self.money.items())
            if s not in leave_out
        ]

    def _drop_cards(self, kind: OwnerKind, owner: str) -> None:
        for cred in [
            c for c, b in self.cards.items() if b.owner_kind == kind and b.owner_id == owner
        ]:
            del self.cards[cred]
            self.refs.pop(cred, None)
        for ref in [
            r for r, c in self.records.items() if c.owner_kind == kind and c.owner_id == owner
        ]:
            del self.records[ref]

    def check(self, change: Change) -> None:
        """Invariant 5: a card is bound only to a person of this school."""
        if change.op == "card_bind":
            owner = change.card.owner_id
            known = self.students if change.card.owner_kind == OwnerKind.STUDENT else self.staff
            if owner not in known:
                raise ChangeRejected(
                    f"card bound to {change.card.owner_kind.value} {owner}, "
                    "who is not on this school's roster"
                )

    def snapshot(
        self,
        school: str,
        version: int,
        legacy_money: tuple[list[BalanceCredit], list[BalanceDebit]] | None = None,
        leave_out: Collection[str] = (),
    ) -> SyncSnapshot:
        """``menus``: the dated menus of the last ``SNAPSHOT_MENU_DAYS`` dates set. The money as
        ``balance_totals`` (one net per student, but those of ``leave_out``: its size follows the
        students, not the canteen's history), or, with ``legacy_money`` (every credit and debit ever sent, for an edge of
        the release before, ``legacy_money_of``), as those lists."""
        menu = self.menus[max(self.menus)] if self.menus else []
        credits, debits = legacy_money if legacy_money is not None else ([], [])
        return SyncSnapshot(
            school=school,
            version=version,
            policy=self.policy,
            students=list(self.students.values()),
            staff=list(self.staff.values()),
            cards=list(self.cards.values()),
            card_refs=(
                [CardRefAssign(credential=c, card_ref=r) for c, r in self.refs.items()]
                if self.moved or self.records
                else None
            ),
            card_records=list(self.records.values()) if self.moved or self.records else None,
            menu=menu,
            menus=[
                MenuSet(local_date=day, items=self.menus[day])
                for day in sorted(self.menus)[-SNAPSHOT_MENU_DAYS:]
            ],
            balance_totals=self.balance_totals(leave_out) if legacy_money is None else None,
            balance_credits=credits,
            parent_limits=list(self.limits.values()),
            balance_debits=debits,
            vouchers=list(self.vouchers.values()),
            voucher_issuers=list(self.issuers.values()),
            lending=self.lending,
        )


def compacted(state: SchoolState) -> list[Change]:
    """The fewest changes that fold to ``state`` as far as a snapshot carries it: one upsert per
    student and staff member, one binding per card, one record per card record, the policy,
    the last ``SNAPSHOT_MENU_DAYS`` dated menus, the canteen's net money per student (one
    ``balance_totals``) and limits, the vouchers, the issuers' keys, the desk's list. Its size
    follows the school's roster (and vouchers), not how many times anything changed."""
    out: list[Change] = [StudentUpsert(student=s) for s in state.students.values()]
    out.extend(StaffUpsert(staff=t) for t in state.staff.values())
    out.extend(CardBind(card=c) for c in state.cards.values())
    if state.moved:
        out.append(
            CardRefsAssign(
                refs=[CardRefAssign(credential=c, card_ref=r) for c, r in state.refs.items()]
            )
        )
    out.extend(CardRecordSet(record=r) for r in state.records.values())
    if state.policy is not None:
        out.append(PolicySet(policy=state.policy))
    out.extend(
        MenuSet(local_date=day, items=state.menus[day])
        for day in sorted(state.menus)[-SNAPSHOT_MENU_DAYS:]
    )
    if state.money:
        out.append(BalanceTotalsSet(totals=state.balance_totals()))
    out.extend(state.limits.values())
    out.extend(state.vouchers.values())
    out.extend(state.issuers.values())
    if state.lending is not None:
        out.append(state.lending)
    return out


def legacy_money_of(changes: Iterable[Change]) -> tuple[list[BalanceCredit], list[BalanceDebit]]:
    """Every credit and server debit of a school's whole log, each ledger id once: the money of
    a snapshot to an edge of the release before (which reads lists, not ``balance_totals``)."""
    credits: dict[str, BalanceCredit] = {}
    debits: dict[str, BalanceDebit] = {}
    for change in changes:
        if change.op == "balance_credit":
            credits.setdefault(change.ledger_id, change)
        elif change.op == "balance_debit":
            debits.setdefault(change.ledger_id, change)
    return list(credits.values()), list(debits.values())


def fold(changes: Iterable[Change], state: SchoolState | None = None) -> SchoolState:
    state = state if state is not None else SchoolState()
    for change in changes:
        state.apply(change)
    return state
