"""Equipment services: the imperative shell around ``calc`` and ``rules``. Callers pass ``now``
(ms) and ``today`` (the school's date) and commit; a refusal raises ``EquipmentError`` before
anything is written (or the caller rolls back)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind, LendingApproval, LendingItem, LendingSet
from server.accounts.access import Principal
from server.accounts.models import User
from server.audit.service import audit
from server.consents.models import StudentCategory
from server.consents.service import on_withdrawal
from server.equipment import calc, rules
from server.equipment.importer import ImportFailed, ImportRow
from server.equipment.models import (
    Approval,
    Campaign,
    Contract,
    CoverageReport,
    Delivery,
    District,
    Item,
    ItemEvent,
    ListEntry,
    Loan,
    LoanAct,
    Payment,
    Pledge,
    PriorityList,
    Rejection,
    SchoolDistrict,
    Specification,
    Sponsor,
    Stocktake,
    StocktakeScan,
    Supplier,
    SurveyAnswer,
)
from server.equipment.rules import EquipmentError, ItemKind, ItemStatus, ListStatus, Step
from server.models import School
from server.notify.models import OutboxMessage
from server.people.models import Guardian, SchoolClass, StaffMember, Student, StudentGuardian
from server.people.service import current_consent, has_consent
from server.sync.changelog import append_changes

N_ = str
NEEDY_CATEGORIES = ("large_family", "targeted_assistance", "below_subsistence")
# Overdue reminders are outbox rows of no edge device: this device_pk marks them.
REMINDER_DEVICE = -15
QR_PREFIX = "QAQPA-INV:"


def _uid(who: Principal | None) -> int | None:
    return who.user_pk if who is not None else None


# --------------------------------------------------------------------------------- districts


def district(db: Session, region_id: str, name: str, position: int = 0) -> District:
    found = db.execute(
        select(District).where(District.region_id == region_id, District.name == name)
    ).scalar_one_or_none()
    if found is None:
        found = District(region_id=region_id, name=name, position=position)
        db.add(found)
        db.flush()
    return found


def place_school(db: Session, school_id: str, district_pk: int) -> None:
    row = db.get(SchoolDistrict, school_id)
    if row is None:
        db.add(SchoolDistrict(school_id=school_id, district_pk=district_pk))
    else:
        row.district_pk = district_pk
    db.flush()


# ---------------------------------------------------------------------------------- coverage


def import_reports(
    db: Session,
    who: Principal | None,
    region_id: str,
    period: str,
    rows: Sequence[ImportRow],
    *,
    source: str,
    now: int,
) -> tuple[int, int]:
    """Store the rows (a row with the same district and school replaces the old one). An unknown
    school, or one of another region, fails the whole import: nothing changes. Returns (rows,
    flagged)."""
    if not period or len(period) > 16:
        raise ImportFailed(["a period of 1-16 characters (e.g. 2020)"])
    errors: list[str] = []
    for r in rows:
        if r.school_id is None:
            continue
        school = db.get(School, r.school_id)
        if school is None:
            errors.append(f"line {r.line}: unknown school {r.school_id!r}")
        elif school.region_id != region_id:
            errors.append(f"line {r.line}: school {r.school_id!r} is not in region {region_id!r}")
    keys = [(r.district, r.school_id) for r in rows if r.school_id is not None]
    if len(keys) != len(set(keys)):
        errors.append("a school appears twice")
    if errors:
        raise ImportFailed(errors)
    flagged = 0
    for i, r in enumerate(rows):
        d = district(db, region_id, r.district, i + 1)
        q = delete(CoverageReport).where(
            CoverageReport.region_id == region_id,
            CoverageReport.period == period,
            CoverageReport.district_pk == d.pk,
        )
        q = q.where(
            CoverageReport.school_id.is_(None)
            if r.school_id is None
            else CoverageReport.school_id == r.school_id
        )
        db.execute(q)
        problems = calc.row_problems(r.counts)
        flagged += bool(problems)
        if r.school_id is not None:
            place_school(db, r.school_id, d.pk)
        db.add(
            CoverageReport(
                region_id=region_id,
                period=period,
                district_pk=d.pk,
                school_id=r.school_id,
                valid=not problems,
                problems="; ".join(problems)[:500],
                source=source[:200],
                imported_by=_uid(who),
                imported_at_ms=now,
                **r.counts.as_dict(),
            )
        )
    db.flush()
    return len(rows), flagged


def families(db: Session, student_pks: Iterable[int]) -> dict[int, str]:
    """A family key per student: children who share a guardian are one family (the roster's
    guardians); a child without one is a family alone."""
    pks = sorted(set(student_pks))
    links = db.execute(
        select(StudentGuardian.student_pk, StudentGuardian.guardian_pk).where(
            StudentGuardian.student_pk.in_(pks)
        )
    ).all()
    parent = {f"s{p}": f"s{p}" for p in pks}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for s, g in links:
        gk = f"g{g}"
        parent.setdefault(gk, gk)
        a, b = find(f"s{s}"), find(gk)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {p: find(f"s{p}") for p in pks}


def needy_students(db: Session, student_pks: Iterable[int], today: dt.date) -> set[int]:
    pks = sorted(set(student_pks))
    return set(
        db.scalars(
            select(StudentCategory.student_pk).where(
                StudentCategory.student_pk.in_(pks),
                StudentCategory.code.in_(NEEDY_CATEGORIES),
                StudentCategory.valid_from <= today,
                StudentCategory.valid_to >= today,
            )
        )
    )


def consented_answers(db: Session, campaign: Campaign, school_id: str) -> list[SurveyAnswer]:
    """The school's answers whose survey consent still stands (a withdrawn consent hides the
    answer at once; ``erase_answers`` removes it)."""
    answers = list(
        db.scalars(
            select(SurveyAnswer)
            .where(SurveyAnswer.campaign_pk == campaign.pk, SurveyAnswer.school_id == school_id)
            .order_by(SurveyAnswer.student_pk)
        )
    )
    return [a for a in answers if has_consent(db, a.student_pk, ConsentKind.EQUIPMENT_SURVEY)]


def erase_answers(db: Session, who: Principal | None, student: Student) -> int:
    """The child's survey answers removed (the parent withdrew the consent)."""
    n = db.scalar(
        select(func.count()).select_from(SurveyAnswer).where(SurveyAnswer.student_pk == student.pk)
    )
    db.execute(delete(SurveyAnswer).where(SurveyAnswer.student_pk == student.pk))
    audit(
        db,
        who,
        "eq.erase",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"{n} survey answers erased",
    )
    db.flush()
    return int(n or 0)


def open_campaigns(db: Session, region_id: str | None, today: dt.date) -> list[Campaign]:
    return list(
        db.scalars(
            select(Campaign)
            .where(
                Campaign.region_id == region_id,
                Campaign.starts_on <= today,
                Campaign.deadline >= today,
            )
            .order_by(Campaign.pk.desc())
        )
    )


def school_facts(
    db: Session, campaign: Campaign, school_id: str, today: dt.date
) -> list[calc.StudentFact]:
    answers = consented_answers(db, campaign, school_id)
    pks = [a.student_pk for a in answers]
    fam = families(db, pks)
    needy = needy_students(db, pks, today)
    covered = set(
        db.scalars(
            select(Loan.student_pk)
            .join(Item, Item.pk == Loan.item_pk)
            .where(Loan.campaign_pk == campaign.pk, Item.kind == ItemKind.DEVICE.value)
        )
    )
    return [
        calc.StudentFact(
            a.student_pk,
            fam[a.student_pk],
            a.has_computer,
            a.low_income or a.student_pk in needy,
            a.student_pk in covered,
        )
        for a in answers
    ]


def coverage_report(db: Session, region_id: str, period: str, today: dt.date) -> calc.Report:
    dists = {
        d.pk: d
        for d in db.scalars(
            select(District).where(District.region_id == region_id).order_by(District.position)
        )
    }
    rows = [
        calc.Row(
            dists[r.district_pk].name,
            calc.Counts(**{c: getattr(r, c) for c in calc.COLUMNS}),
            r.school_id,
        )
        for r in db.scalars(
            select(CoverageReport)
            .where(CoverageReport.region_id == region_id, CoverageReport.period == period)
            .order_by(CoverageReport.pk)
        )
    ]
    per_student: dict[str, tuple[str, calc.Counts]] = {}
    for camp in db.scalars(
        select(Campaign).where(Campaign.region_id == region_id, Campaign.period == period)
    ):
        schools = set(
            db.scalars(
                select(SurveyAnswer.school_id).where(SurveyAnswer.campaign_pk == camp.pk).distinct()
            )
        )
        for sid in sorted(schools):
            placed = db.get(SchoolDistrict, sid)
            name = (
                dists[placed.district_pk].name
                if placed is not None and placed.district_pk in dists
                else sid
            )
            per_student[sid] = (name, calc.school_counts(school_facts(db, camp, sid, today)))
    order = [d.name for d in sorted(dists.values(), key=lambda d: (d.position, d.name))]
    return calc.coverage(region_id, period, rows, per_student, order)


def periods(db: Session, region_id: str) -> list[str]:
    found = set(
        db.scalars(select(CoverageReport.period).where(CoverageReport.region_id == region_id))
    ) | set(db.scalars(select(Campaign.period).where(Campaign.region_id == region_id)))
    return sorted(found, reverse=True)


# --------------------------------------------------------------------------------- campaigns


def create_campaign(
    db: Session,
    region_id: str,
    *,
    name: str,
    period: str,
    goal_tiyn: int,
    planned_unit_price_tiyn: int,
    starts_on: dt.date,
    deadline: dt.date,
    fund_name: str,
    now: int,
) -> Campaign:
    if not name.strip() or len(name) > 200 or not period or len(period) > 16:
        raise EquipmentError(N_("A campaign needs a name and a period."))
    if deadline < starts_on:
        raise EquipmentError(N_("The deadline is before the start."))
    if goal_tiyn < 0 or planned_unit_price_tiyn < 0:
        raise EquipmentError(N_("Amounts cannot be negative."))
    c = Campaign(
        region_id=region_id,
        name=name.strip(),
        period=period,
        goal_tiyn=goal_tiyn,
        planned_unit_price_tiyn=planned_unit_price_tiyn,
        starts_on=starts_on,
        deadline=deadline,
        fund_name=fund_name[:200],
        created_at_ms=now,
    )
    db.add(c)
    db.flush()
    return c


def record_answer(
    db: Session,
    who: Principal | None,
    campaign: Campaign,
    student: Student,
    *,
    has_computer: bool,
    low_income: bool,
    applied_at_ms: int,
    source: str = "console",
) -> SurveyAnswer:
    """A parent's answer; refused without the parent's equipment-survey consent."""
    consent = current_consent(db, student.pk, ConsentKind.EQUIPMENT_SURVEY)
    if consent is None or not consent.granted:
        raise EquipmentError(N_("No parent's consent to the equipment survey for this student."))
    school = db.get(School, student.school_id)
    if school is None or school.region_id != campaign.region_id:
        raise EquipmentError(N_("The student's school is not in the campaign's region."))
    ans = db.execute(
        select(SurveyAnswer).where(
            SurveyAnswer.campaign_pk == campaign.pk, SurveyAnswer.student_pk == student.pk
        )
    ).scalar_one_or_none()
    if ans is None:
        ans = SurveyAnswer(
            campaign_pk=campaign.pk,
            student_pk=student.pk,
            school_id=student.school_id,
            applied_at_ms=applied_at_ms,
            has_computer=has_computer,
            consent_pk=consent.pk,
        )
        db.add(ans)
    ans.has_computer = has_computer
    ans.low_income = low_income
    ans.consent_pk = consent.pk
    ans.source = source
    ans.recorded_by = _uid(who)
    audit(
        db,
        who,
        "eq.answer",
        f"student:{student.pk}",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"campaign {campaign.pk}: computer at home, family income",
    )
    db.flush()
    return ans


def lists_of(db: Session, campaign_pk: int, school_id: str) -> list[PriorityList]:
    return list(
        db.scalars(
            select(PriorityList)
            .where(PriorityList.campaign_pk == campaign_pk, PriorityList.school_id == school_id)
            .order_by(PriorityList.version.desc())
        )
    )


def approved_list(db: Session, campaign_pk: int, school_id: str) -> PriorityList | None:
    return next(
        (v for v in lists_of(db, campaign_pk, school_id) if v.status == ListStatus.APPROVED), None
    )


def entries(db: Session, list_pk: int) -> list[ListEntry]:
    return list(
        db.scalars(select(ListEntry).where(ListEntry.list_pk == list_pk).order_by(ListEntry.rank))
    )


def build_list(
    db: Session,
    who: Principal | None,
    campaign: Campaign,
    school_id: str,
    *,
    reason: str,
    today: dt.date,
    now: int,
) -> PriorityList:
    """The school's list from the answers: a draft is rebuilt in place; after approval a new
    version (with a reason) is started; a list in approval is refused."""
    versions = lists_of(db, campaign.pk, school_id)
    latest = versions[0] if versions else None
    rules.new_version_allowed(latest.status if latest is not None else None, reason)
    facts = school_facts(db, campaign, school_id, today)
    answers = {a.student_pk: a for a in consented_answers(db, campaign, school_id)}
    ranked = rules.priority_list(
        rules.Applicant(
            f.student, f.family, f.has_computer, f.needy, answers[f.student].applied_at_ms
        )
        for f in facts
    )
    if latest is not None and latest.status == ListStatus.DRAFT:
        lst = latest
        db.execute(delete(ListEntry).where(ListEntry.list_pk == lst.pk))
        lst.reason = reason[:300] or lst.reason
    else:
        lst = PriorityList(
            campaign_pk=campaign.pk,
            school_id=school_id,
            version=(latest.version + 1) if latest is not None else 1,
            status=ListStatus.DRAFT.value,
            reason=reason[:300],
            rules=rules.PRIORITY_RULES,
            created_by=_uid(who),
            created_at_ms=now,
        )
        db.add(lst)
        db.flush()
    for r in ranked:
        db.add(
            ListEntry(
                list_pk=lst.pk,
                rank=r.rank,
                student_pk=r.student,
                family=r.family,
                priority=r.priority,
                family_uncovered=r.family_uncovered,
            )
        )
    audit(
        db,
        who,
        "eq.list",
        f"list:{lst.pk}",
        school_id=school_id,
        summary=f"v{lst.version}: {len(ranked)} children",
    )
    db.flush()
    return lst


def step_list(
    db: Session, who: Principal | None, lst: PriorityList, step: Step, *, note: str, now: int
) -> PriorityList:
    new = rules.next_status(lst.status, step)
    if step is Step.RETURN and not note.strip():
        raise EquipmentError(N_("Returning a list needs a note."))
    if new is ListStatus.APPROVED:
        for old in lists_of(db, lst.campaign_pk, lst.school_id):
            if old.pk != lst.pk and old.status == ListStatus.APPROVED:
                old.status = ListStatus.SUPERSEDED.value
    lst.status = new.value
    db.add(
        Approval(list_pk=lst.pk, step=step.value, decided_by=_uid(who), at_ms=now, note=note[:300])
    )
    db.flush()
    if new is ListStatus.APPROVED:  # the school's desk lends by the list it now has
        publish_lending(db, lst.school_id)
    return lst


# ---------------------------------------------------------------------------------- sponsors


def add_sponsor(
    db: Session, campaign: Campaign, name: str, *, public_consent: bool, consent_document: str
) -> Sponsor:
    if not name.strip() or len(name) > 200:
        raise EquipmentError(N_("A sponsor's name of 1-200 characters."))
    if public_consent and not consent_document.strip():
        raise EquipmentError(N_("Naming a sponsor in public needs their written consent."))
    s = Sponsor(
        campaign_pk=campaign.pk,
        name=name.strip(),
        public_consent=public_consent,
        consent_document=consent_document[:200],
    )
    db.add(s)
    db.flush()
    return s


def add_money(
    db: Session, sponsor: Sponsor, kind: str, amount_tiyn: int, on: dt.date, ref: str = ""
) -> None:
    if amount_tiyn <= 0 or amount_tiyn > 10**13:
        raise EquipmentError(N_("An amount above zero."))
    if kind == "pledge":
        db.add(Pledge(sponsor_pk=sponsor.pk, amount_tiyn=amount_tiyn, pledged_on=on))
    elif kind == "payment":
        db.add(
            Payment(sponsor_pk=sponsor.pk, amount_tiyn=amount_tiyn, paid_on=on, fund_ref=ref[:100])
        )
    else:
        raise EquipmentError(N_("Pledge or payment."))
    db.flush()


@dataclass(frozen=True, slots=True)
class Money:
    goal: int
    pledged: int
    paid: int
    thanks: list[str]  # sponsors who agreed to be named, by amount paid


def money(db: Session, campaign: Campaign) -> Money:
    sponsors = list(db.scalars(select(Sponsor).where(Sponsor.campaign_pk == campaign.pk)))
    pks = [s.pk for s in sponsors]
    paid: dict[int, int] = {
        int(sp): int(amount)
        for sp, amount in db.execute(
            select(Payment.sponsor_pk, func.sum(Payment.amount_tiyn))
            .where(Payment.sponsor_pk.in_(pks))
            .group_by(Payment.sponsor_pk)
        ).all()
    }
    pledged = db.scalar(
        select(func.coalesce(func.sum(Pledge.amount_tiyn), 0)).where(Pledge.sponsor_pk.in_(pks))
    )
    thanks = [
        s.name
        for s in sorted(sponsors, key=lambda s: (-int(paid.get(s.pk, 0)), s.name))
        if s.public_consent and paid.get(s.pk)
    ]
    return Money(campaign.goal_tiyn, int(pledged or 0), int(sum(paid.values())), thanks)


# ------------------------------------------------------------------ specification, deliveries


def add_spec(
    db: Session, campaign: Campaign, name: str, minimums: dict[str, Any] | None = None
) -> Specification:
    s = Specification(
        campaign_pk=campaign.pk,
        name=name[:200] or "Order No. 79",
        minimums=dict(minimums or rules.ORDER_79_MINIMUMS),
        source=rules.ORDER_79_SOURCE,
    )
    db.add(s)
    db.flush()
    return s


def add_contract(
    db: Session,
    campaign: Campaign,
    *,
    supplier_name: str,
    spec: Specification,
    number: str,
    quantity: int,
    unit_price_tiyn: int,
    signed_on: dt.date,
    due_on: dt.date,
) -> Contract:
    if not supplier_name.strip() or not number.strip() or quantity <= 0 or unit_price_tiyn <= 0:
        raise EquipmentError(N_("A contract needs a supplier, a number, a quantity and a price."))
    sup = db.execute(
        select(Supplier).where(Supplier.name == supplier_name.strip())
    ).scalar_one_or_none()
    if sup is None:
        sup = Supplier(name=supplier_name.strip()[:200])
        db.add(sup)
        db.flush()
    c = Contract(
        campaign_pk=campaign.pk,
        supplier_pk=sup.pk,
        spec_pk=spec.pk,
        number=number.strip()[:64],
        quantity=quantity,
        unit_price_tiyn=unit_price_tiyn,
        signed_on=signed_on,
        due_on=due_on,
    )
    db.add(c)
    db.flush()
    return c


@dataclass(frozen=True, slots=True)
class Delivered:
    inventory_no: str
    serial: str
    properties: dict[str, Any]


def record_delivery(
    db: Session,
    who: Principal | None,
    contract: Contract,
    school_id: str,
    delivered_on: dt.date,
    devices: Sequence[Delivered],
    *,
    now: int,
) -> tuple[Delivery, list[Item], list[Rejection]]:
    """Each device checked against the contract's specification: a match enters the school's
    inventory; a mismatch is refused with its reasons (kept as a rejection, never on balance)."""
    if not devices:
        raise EquipmentError(N_("A delivery lists at least one device."))
    campaign = db.get_one(Campaign, contract.campaign_pk)
    school = db.get(School, school_id)
    if school is None or school.region_id != campaign.region_id:
        raise EquipmentError(N_("The school is not in the campaign's region."))
    invs = [d.inventory_no for d in devices]
    if len(set(invs)) != len(invs) or any(not i or len(i) > 64 for i in invs):
        raise EquipmentError(N_("Inventory numbers must be unique and 1-64 characters."))
    taken = set(
        db.scalars(
            select(Item.inventory_no).where(
                Item.school_id == school_id, Item.inventory_no.in_(invs)
            )
        )
    )
    if taken:
        raise EquipmentError(
            N_("These inventory numbers are already on the school's balance."),
            ", ".join(sorted(taken)),
        )
    spec = db.get_one(Specification, contract.spec_pk)
    delivery = Delivery(
        contract_pk=contract.pk,
        school_id=school_id,
        delivered_on=delivered_on,
        recorded_by=_uid(who),
    )
    db.add(delivery)
    db.flush()
    accepted: list[Item] = []
    refused: list[Rejection] = []
    for d in devices:
        why = rules.spec_mismatches(spec.minimums, d.properties)
        if why:
            rej = Rejection(
                delivery_pk=delivery.pk,
                serial=d.serial[:64],
                properties=d.properties,
                reason="; ".join(why)[:500],
            )
            db.add(rej)
            refused.append(rej)
            continue
        item = Item(
            school_id=school_id,
            kind=ItemKind.DEVICE.value,
            inventory_no=d.inventory_no,
            title=spec.name,
            serial=d.serial[:64],
            supplier_pk=contract.supplier_pk,
            delivery_pk=delivery.pk,
            campaign_pk=campaign.pk,
            cost_tiyn=contract.unit_price_tiyn,
            properties=d.properties,
            status=ItemStatus.IN_STOCK.value,
            added_at_ms=now,
        )
        db.add(item)
        db.flush()
        db.add(
            ItemEvent(
                item_pk=item.pk,
                at_ms=now,
                action="accepted",
                note=f"contract {contract.number}",
                by_user=_uid(who),
            )
        )
        accepted.append(item)
    db.flush()
    return delivery, accepted, refused


def add_item(
    db: Session,
    who: Principal | None,
    school_id: str,
    *,
    kind: str,
    inventory_no: str,
    title: str,
    grade: int | None = None,
    cost_tiyn: int = 0,
    now: int,
) -> Item:
    try:
        k = ItemKind(kind)
    except ValueError as err:
        raise EquipmentError(N_("Unknown kind of item."), kind[:20]) from err
    if not inventory_no.strip() or len(inventory_no) > 64 or len(title) > 200:
        raise EquipmentError(N_("An inventory number of 1-64 characters."))
    if db.execute(
        select(Item.pk).where(
            Item.school_id == school_id, Item.inventory_no == inventory_no.strip()
        )
    ).first():
        raise EquipmentError(
            N_("These inventory numbers are already on the school's balance."), inventory_no
        )
    item = Item(
        school_id=school_id,
        kind=k.value,
        inventory_no=inventory_no.strip(),
        title=title.strip(),
        grade=grade,
        cost_tiyn=cost_tiyn,
        status=ItemStatus.IN_STOCK.value,
        added_at_ms=now,
    )
    db.add(item)
    db.flush()
    db.add(ItemEvent(item_pk=item.pk, at_ms=now, action="added", by_user=_uid(who)))
    db.flush()
    return item


def find_item(db: Session, school_id: str, code: str) -> Item | None:
    """By inventory number, or by the code its label's QR carries."""
    code = code.strip()[:200]
    if code.startswith(QR_PREFIX):
        school, _, inv = code[len(QR_PREFIX) :].partition("/")
        if school != school_id:
            return None
        code = inv
    return db.execute(
        select(Item).where(Item.school_id == school_id, Item.inventory_no == code)
    ).scalar_one_or_none()


def label_code(item: Item) -> str:
    return f"{QR_PREFIX}{item.school_id}/{item.inventory_no}"


def set_status(
    db: Session, who: Principal | None, item: Item, status: str, note: str, now: int
) -> None:
    try:
        new = ItemStatus(status)
    except ValueError as err:
        raise EquipmentError(N_("Unknown status."), status[:20]) from err
    if new is ItemStatus.LENT or (item.status == ItemStatus.LENT and new is not ItemStatus.LOST):
        raise EquipmentError(N_("Lending and return go through the desk."))
    if item.status == ItemStatus.LENT and new is ItemStatus.LOST:
        loan = open_loan(db, item.pk)
        if loan is not None:
            loan.returned_at_ms = now
            loan.condition = "lost"
            loan.returned_by = _uid(who)
    item.status = new.value
    db.add(
        ItemEvent(item_pk=item.pk, at_ms=now, action=new.value, note=note[:300], by_user=_uid(who))
    )
    db.flush()


# ----------------------------------------------------------------------------------- lending


def open_loan(db: Session, item_pk: int) -> Loan | None:
    return db.execute(
        select(Loan).where(Loan.item_pk == item_pk, Loan.returned_at_ms.is_(None))
    ).scalar_one_or_none()


def school_year_end(today: dt.date) -> dt.date:
    """Items go back at the end of the school year (31 May)."""
    return dt.date(today.year if today.month < 6 else today.year + 1, 5, 31)


def lend(
    db: Session,
    who: Principal | None,
    item: Item,
    student: Student,
    *,
    today: dt.date,
    now: int,
    act_ref: str = "",
    source: str = "console",
    event: tuple[int, int] | None = None,
) -> Loan:
    on_list = False
    holds = False
    if item.kind == ItemKind.DEVICE and item.campaign_pk is not None:
        lst = approved_list(db, item.campaign_pk, student.school_id)
        on_list = lst is not None and (
            db.execute(
                select(ListEntry.rank).where(
                    ListEntry.list_pk == lst.pk, ListEntry.student_pk == student.pk
                )
            ).first()
            is not None
        )
        holds = (
            db.execute(
                select(Loan.pk)
                .join(Item, Item.pk == Loan.item_pk)
                .where(
                    Loan.student_pk == student.pk,
                    Loan.campaign_pk == item.campaign_pk,
                    Loan.returned_at_ms.is_(None),
                    Item.kind == ItemKind.DEVICE.value,
                )
            ).first()
            is not None
        )
    rules.check_lend(
        rules.LendCheck(item.kind, item.status, item.school_id, student.school_id, on_list, holds)
    )
    if not student.active:
        raise EquipmentError(N_("The student is not active."))
    loan = Loan(
        item_pk=item.pk,
        student_pk=student.pk,
        school_id=item.school_id,
        campaign_pk=item.campaign_pk,
        lent_at_ms=now,
        due_on=school_year_end(today),
        lent_by=_uid(who),
        act_ref=act_ref[:200],
        source=source,
        device_pk=event[0] if event else None,
        seq=event[1] if event else None,
    )
    item.status = ItemStatus.LENT.value
    db.add(loan)
    db.flush()
    db.add(
        ItemEvent(
            item_pk=item.pk, at_ms=now, action="lent", note=f"loan {loan.pk}", by_user=_uid(who)
        )
    )
    audit(
        db,
        who,
        "eq.lend",
        f"item:{item.pk}",
        student_pk=student.pk,
        school_id=item.school_id,
        summary=f"{item.kind} {item.inventory_no}",
    )
    db.flush()
    return loan


MAX_ACT_BYTES = 1_000_000  # under the console's 1 MiB request limit (server.http_limits)
ACT_TYPES = (  # what a scanner or a phone makes, recognised by the file's first bytes
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def act_media_type(data: bytes) -> str:
    """The scan's type by its content (never by the name or the browser's claim)."""
    if not data:
        raise EquipmentError(N_("The file is empty."))
    if len(data) > MAX_ACT_BYTES:
        raise EquipmentError(N_("The file is larger than 1 MB."), f"{len(data)} B")
    for magic, media in ACT_TYPES:
        if data.startswith(magic):
            return media
    raise EquipmentError(N_("A scan of the act as PDF, JPEG or PNG."))


def attach_act_scan(
    db: Session, who: Principal | None, loan: Loan, data: bytes, *, now: int
) -> LoanAct:
    """Keep the scan of the signed hand-over act with its loan (a new one replaces the old);
    refused with the reason (empty, too large, not a PDF/JPEG/PNG), nothing changed."""
    import hashlib

    media = act_media_type(data)
    digest = hashlib.sha256(data).hexdigest()
    act = db.execute(select(LoanAct).where(LoanAct.loan_pk == loan.pk)).scalar_one_or_none()
    if act is None:
        act = LoanAct(loan_pk=loan.pk)
        db.add(act)
    act.media_type, act.sha256, act.size, act.data = media, digest, len(data), data
    act.uploaded_at_ms, act.uploaded_by = now, _uid(who)
    loan.act_ref = f"scan sha256:{digest[:16]}"
    audit(
        db,
        who,
        "eq.act_scan",
        f"loan:{loan.pk}",
        student_pk=loan.student_pk,
        school_id=loan.school_id,
        summary=f"{media} {len(data)} B",
    )
    db.flush()
    return act


def give_back(
    db: Session, who: Principal | None, item: Item, *, now: int, condition: str = "ok"
) -> Loan:
    loan = open_loan(db, item.pk)
    rules.check_return(item.status, loan is not None)
    assert loan is not None
    loan.returned_at_ms = now
    loan.returned_by = _uid(who)
    loan.condition = condition[:16]
    item.status = ItemStatus.REPAIR.value if condition == "damaged" else ItemStatus.IN_STOCK.value
    db.add(
        ItemEvent(
            item_pk=item.pk, at_ms=now, action="returned", note=condition[:300], by_user=_uid(who)
        )
    )
    audit(
        db,
        who,
        "eq.return",
        f"item:{item.pk}",
        student_pk=loan.student_pk,
        school_id=item.school_id,
        summary=f"{item.kind} {item.inventory_no}",
    )
    db.flush()
    return loan


def bulk_hand_out_devices(
    db: Session,
    who: Principal | None,
    campaign: Campaign,
    school_id: str,
    *,
    today: dt.date,
    now: int,
) -> int:
    """Start of the year: every child of the approved list without a device gets the next one in
    stock, in list order. Not enough devices: refused, nothing lent."""
    lst = approved_list(db, campaign.pk, school_id)
    if lst is None:
        raise EquipmentError(N_("The school has no approved list for this campaign."))
    holding = set(
        db.scalars(
            select(Loan.student_pk).where(
                Loan.campaign_pk == campaign.pk,
                Loan.school_id == school_id,
                Loan.returned_at_ms.is_(None),
            )
        )
    )
    waiting = [e for e in entries(db, lst.pk) if e.student_pk not in holding]
    stock = list(
        db.scalars(
            select(Item)
            .where(
                Item.school_id == school_id,
                Item.campaign_pk == campaign.pk,
                Item.kind == ItemKind.DEVICE.value,
                Item.status == ItemStatus.IN_STOCK.value,
            )
            .order_by(Item.inventory_no)
        )
    )
    if len(stock) < len(waiting):
        raise EquipmentError(
            N_("Not enough devices in stock for the list."), f"{len(stock)} < {len(waiting)}"
        )
    for e, item in zip(waiting, stock, strict=False):
        lend(db, who, item, db.get_one(Student, e.student_pk), today=today, now=now)
    return len(waiting)


def bulk_hand_out_textbooks(
    db: Session, who: Principal | None, cls: SchoolClass, *, today: dt.date, now: int
) -> int:
    """Start of the year: every student of the class gets one copy of each textbook title of the
    class's grade that they do not hold. Too few copies of a title: refused, nothing lent."""
    students = list(
        db.scalars(
            select(Student)
            .where(Student.class_pk == cls.pk, Student.active.is_(True))
            .order_by(Student.pk)
        )
    )
    stock = list(
        db.scalars(
            select(Item)
            .where(
                Item.school_id == cls.school_id,
                Item.kind == ItemKind.TEXTBOOK.value,
                Item.grade == cls.grade,
                Item.status == ItemStatus.IN_STOCK.value,
            )
            .order_by(Item.title, Item.inventory_no)
        )
    )
    held: set[tuple[int, str]] = set(
        (int(a), str(b))
        for a, b in db.execute(
            select(Loan.student_pk, Item.title)
            .join(Item, Item.pk == Loan.item_pk)
            .where(
                Loan.school_id == cls.school_id,
                Loan.returned_at_ms.is_(None),
                Item.kind == ItemKind.TEXTBOOK.value,
            )
        ).all()
    )
    by_title: dict[str, list[Item]] = {}
    for it in stock:
        by_title.setdefault(it.title, []).append(it)
    plan: list[tuple[Item, Student]] = []
    short: list[str] = []
    for title, copies in sorted(by_title.items()):
        need = [s for s in students if (s.pk, title) not in held]
        if len(copies) < len(need):
            short.append(f"{title}: {len(copies)} < {len(need)}")
            continue
        plan += list(zip(copies, need, strict=False))
    if short:
        raise EquipmentError(N_("Not enough copies in stock."), "; ".join(short))
    for item, st in plan:
        lend(db, who, item, st, today=today, now=now)
    return len(plan)


def bulk_return(
    db: Session, who: Principal | None, school_id: str, class_pk: int | None, *, now: int
) -> int:
    """End of the year: everything the class (or the whole school) holds comes back."""
    q = select(Loan).where(Loan.school_id == school_id, Loan.returned_at_ms.is_(None))
    if class_pk is not None:
        q = q.join(Student, Student.pk == Loan.student_pk).where(Student.class_pk == class_pk)
    n = 0
    for loan in list(db.scalars(q)):
        give_back(db, who, db.get_one(Item, loan.item_pk), now=now)
        n += 1
    return n


def outstanding(db: Session, student_pks: Sequence[int]) -> list[tuple[Loan, Item]]:
    rows = db.execute(
        select(Loan, Item)
        .join(Item, Item.pk == Loan.item_pk)
        .where(Loan.student_pk.in_(list(student_pks)), Loan.returned_at_ms.is_(None))
        .order_by(Loan.student_pk, Item.kind, Item.title)
    ).all()
    return [(loan, item) for loan, item in rows]


def apply_lending_event(
    db: Session,
    school_id: str,
    device_pk: int,
    seq: int,
    kind: str,
    student_id: str | None,
    payload: dict[str, Any],
    today: dt.date,
) -> Loan:
    """A hand-over, return, lost or damaged report recorded offline at the school's desk and
    synced: a hand-over is applied once per (device, seq) (the caller applies each stored event
    once); a refusal says why (the desk had decided on what it knew offline)."""
    ev = rules.parse_lending_event(kind, student_id, payload)
    done = db.execute(
        select(Loan).where(Loan.device_pk == device_pk, Loan.seq == seq)
    ).scalar_one_or_none()
    if done is not None:
        return done
    item = find_item(db, school_id, ev.inventory_no)
    if item is None:
        raise EquipmentError(N_("Unknown inventory number."), ev.inventory_no)
    student = db.execute(select(Student).where(Student.ref == ev.student_id)).scalar_one_or_none()
    if student is None or student.school_id != school_id:
        raise EquipmentError(N_("Unknown student."))
    by = _desk_user(db, school_id, payload.get("staff_id"))
    if ev.act != "lend":
        loan = open_loan(db, item.pk)
        if loan is not None and loan.student_pk != student.pk:
            raise EquipmentError(N_("The item is lent to another student."), ev.inventory_no)
        if ev.act == "lost":
            rules.check_return(item.status, loan is not None)
            assert loan is not None
            set_status(db, None, item, ItemStatus.LOST.value, "reported at the desk", ev.at_ms)
        else:
            condition = "damaged" if ev.act == "damaged" else "ok"
            loan = give_back(db, None, item, now=ev.at_ms, condition=condition)
        loan.returned_by = by
        db.flush()
        return loan
    loan = lend(
        db,
        None,
        item,
        student,
        today=today,
        now=ev.at_ms,
        act_ref=ev.act_ref,
        source="edge",
        event=(device_pk, seq),
    )
    loan.lent_by = by
    db.flush()
    return loan


def record_refused_act(
    db: Session, school_id: str, payload: dict[str, Any], reason: str, now: int
) -> None:
    """An act of the school's desk the centre refused: kept in the item's history (the act and
    the reason, no student), so the inventory page shows what the desk and the centre disagree
    on."""
    inv = payload.get("inventory_no")
    item = find_item(db, school_id, inv) if isinstance(inv, str) else None
    if item is None:
        return
    act = payload.get("act")
    db.add(
        ItemEvent(
            item_pk=item.pk,
            at_ms=now,
            action="desk_refused",
            note=f"{str(act)[:16]}: {reason}"[:300],
        )
    )
    db.flush()


def _desk_user(db: Session, school_id: str, staff_ref: object) -> int | None:
    """The console account of the staff member who acted at the desk, when they have one."""
    if not isinstance(staff_ref, str) or not staff_ref:
        return None
    return db.execute(
        select(StaffMember.user_pk).where(
            StaffMember.school_id == school_id, StaffMember.ref == staff_ref[:64]
        )
    ).scalar_one_or_none()


def lending_set(db: Session, school_id: str) -> LendingSet:
    """What the school's library desk needs offline: the items it may lend or take back (in
    stock or lent), who holds each, and the approved lists of the campaigns with devices here."""
    items = list(
        db.scalars(
            select(Item)
            .where(
                Item.school_id == school_id,
                Item.status.in_([ItemStatus.IN_STOCK.value, ItemStatus.LENT.value]),
            )
            .order_by(Item.inventory_no)
        )
    )
    holders = dict(
        db.execute(
            select(Loan.item_pk, Student.ref)
            .join(Student, Student.pk == Loan.student_pk)
            .where(Loan.school_id == school_id, Loan.returned_at_ms.is_(None))
        ).all()
    )
    approvals: list[LendingApproval] = []
    for camp_pk in sorted({i.campaign_pk for i in items if i.campaign_pk is not None}):
        lst = approved_list(db, camp_pk, school_id)
        camp = db.get(Campaign, camp_pk)
        if lst is None or camp is None:
            continue
        for e in entries(db, lst.pk):
            ref = db.get_one(Student, e.student_pk).ref
            approvals.append(
                LendingApproval(
                    campaign=str(camp_pk),
                    campaign_name=camp.name[:200],
                    student_id=ref,
                    rank=e.rank,
                )
            )
    return LendingSet(
        items=[
            LendingItem(
                inventory_no=i.inventory_no,
                kind=i.kind,  # type: ignore[arg-type]
                title=i.title[:200],
                campaign=str(i.campaign_pk) if i.campaign_pk is not None else None,
                holder=holders.get(i.pk),
            )
            for i in items
        ],
        approvals=approvals,
    )


def publish_lending(db: Session, school_id: str) -> None:
    """Append the school's desk list to its downlink log (caller commits): sent when a list is
    approved and when the school's items or loans change at the console."""
    append_changes(db, school_id, [lending_set(db, school_id)])


# ---------------------------------------------------------------------------------- reminders

REMINDER_TEXT = {
    "kk": "{name} мектеп кітапханасының затын қайтармады: {title} ({due} дейін). {school}",
    "ru": "{name} не вернул(а) в библиотеку школы: {title} (срок {due}). {school}",
    "en": "{name} has not returned to the school library: {title} (due {due}). {school}",
}


def send_overdue_reminders(db: Session, today: dt.date, now: int, every_days: int = 7) -> int:
    """One message per guardian and overdue loan at most every ``every_days``, through the
    notify outbox; only with the notifications consent and a phone."""
    loans = list(
        db.scalars(
            select(Loan).where(Loan.returned_at_ms.is_(None), Loan.due_on < today).order_by(Loan.pk)
        )
    )
    n = 0
    for loan in loans:
        if loan.reminded_on is not None and (today - loan.reminded_on).days < every_days:
            continue
        st = db.get_one(Student, loan.student_pk)
        if not has_consent(db, st.pk, ConsentKind.NOTIFICATIONS):
            continue
        item = db.get_one(Item, loan.item_pk)
        school = db.get(School, loan.school_id)
        guardians = db.scalars(
            select(Guardian)
            .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
            .where(StudentGuardian.student_pk == st.pk)
        )
        for g in guardians:
            if not g.phone:
                continue
            user = db.get(User, g.user_pk) if g.user_pk is not None else None
            lang = user.lang if user is not None and user.lang in REMINDER_TEXT else "kk"
            body = REMINDER_TEXT[lang].format(
                name=st.given_name,
                title=item.title or item.inventory_no,
                due=loan.due_on.isoformat(),
                school=(school.name if school else loan.school_id),
            )
            db.add(
                OutboxMessage(
                    device_pk=REMINDER_DEVICE,
                    seq=loan.pk * 100_000 + today.toordinal() % 100_000,
                    guardian_pk=g.pk,
                    channel="sms",
                    student_pk=st.pk,
                    school_id=loan.school_id,
                    kind="overdue",
                    lang=lang,
                    body=body[:500],
                    event_at_ms=now,
                    created_at_ms=now,
                    due_at_ms=now,
                    status="queued",
                    attempts=0,
                    last_error="",
                )
            )
            n += 1
        loan.reminded_on = today
    db.flush()
    return n


# -------------------------------------------------------------------------------- stocktaking


def open_stocktake(db: Session, who: Principal | None, school_id: str, now: int) -> Stocktake:
    found = db.execute(
        select(Stocktake).where(Stocktake.school_id == school_id, Stocktake.closed_at_ms.is_(None))
    ).scalar_one_or_none()
    if found is None:
        found = Stocktake(school_id=school_id, started_at_ms=now, started_by=_uid(who))
        db.add(found)
        db.flush()
    return found


def scan(db: Session, take: Stocktake, code: str, now: int) -> Item:
    item = find_item(db, take.school_id, code)
    if item is None:
        raise EquipmentError(N_("No item of this school has this label."), code.strip()[:64])
    if db.get(StocktakeScan, (take.pk, item.pk)) is None:
        db.add(StocktakeScan(stocktake_pk=take.pk, item_pk=item.pk, at_ms=now))
        db.add(ItemEvent(item_pk=item.pk, at_ms=now, action="counted", note=f"stocktake {take.pk}"))
        db.flush()
    return item


def missing(db: Session, take: Stocktake) -> list[Item]:
    """Items that should be on the shelf (in stock or in repair) and were not scanned."""
    scanned = select(StocktakeScan.item_pk).where(StocktakeScan.stocktake_pk == take.pk)
    return list(
        db.scalars(
            select(Item)
            .where(
                Item.school_id == take.school_id,
                Item.status.in_([ItemStatus.IN_STOCK.value, ItemStatus.REPAIR.value]),
                Item.pk.not_in(scanned),
            )
            .order_by(Item.inventory_no)
        )
    )


# ------------------------------------------------------------------------------- final report


def final_report(db: Session, campaign: Campaign, today: dt.date) -> dict[str, Any]:
    items = list(
        db.scalars(
            select(Item).where(Item.campaign_pk == campaign.pk, Item.kind == ItemKind.DEVICE.value)
        )
    )
    contracts = list(db.scalars(select(Contract).where(Contract.campaign_pk == campaign.pk)))
    deliveries = list(
        db.scalars(select(Delivery).where(Delivery.contract_pk.in_([c.pk for c in contracts])))
    )
    rejected = (
        db.scalar(
            select(func.count())
            .select_from(Rejection)
            .where(Rejection.delivery_pk.in_([d.pk for d in deliveries]))
        )
        or 0
    )
    lent = (
        db.scalar(
            select(func.count(func.distinct(Loan.student_pk))).where(
                Loan.campaign_pk == campaign.pk, Loan.returned_at_ms.is_(None)
            )
        )
        or 0
    )
    listed = 0
    uncovered = 0
    for sid in sorted(
        set(
            db.scalars(
                select(PriorityList.school_id).where(PriorityList.campaign_pk == campaign.pk)
            )
        )
    ):
        lst = approved_list(db, campaign.pk, sid)
        if lst is None:
            continue
        kids = [e.student_pk for e in entries(db, lst.pk)]
        listed += len(kids)
        got = set(
            db.scalars(
                select(Loan.student_pk).where(
                    Loan.campaign_pk == campaign.pk, Loan.student_pk.in_(kids)
                )
            )
        )
        uncovered += len([k for k in kids if k not in got])
    m = money(db, campaign)
    delivered_by_contract: dict[int, int] = {}
    for it in items:
        d = next((x for x in deliveries if x.pk == it.delivery_pk), None)
        if d is not None:
            delivered_by_contract[d.contract_pk] = delivered_by_contract.get(d.contract_pk, 0) + 1
    spent = sum(c.unit_price_tiyn * delivered_by_contract.get(c.pk, 0) for c in contracts)
    signals = rules.risk_signals(
        today=today,
        goal_tiyn=campaign.goal_tiyn,
        paid_tiyn=m.paid,
        pledged_tiyn=m.pledged,
        planned_unit_price_tiyn=campaign.planned_unit_price_tiyn,
        contracts=[
            rules.ContractState(
                c.number,
                c.unit_price_tiyn,
                c.quantity,
                delivered_by_contract.get(c.pk, 0),
                c.due_on,
            )
            for c in contracts
        ],
        rejected=int(rejected),
        deadline=campaign.deadline,
    )
    return {
        "campaign": campaign.name,
        "period": campaign.period,
        "delivered": len(items) + int(rejected),
        "accepted": len(items),
        "rejected": int(rejected),
        "children_listed": listed,
        "children_with_device": int(lent),
        "children_uncovered": uncovered,
        "goal_tiyn": m.goal,
        "pledged_tiyn": m.pledged,
        "raised_tiyn": m.paid,
        "spent_tiyn": spent,
        "signals": [(s.signal.value, s.detail) for s in signals],
    }


def _survey_withdrawn(db: Session, who: Principal | None, student: Student) -> list[str]:
    """The consents module calls this when the survey's (or the data) consent is withdrawn."""
    return (
        [N_("The child's equipment survey answers were erased.")]
        if erase_answers(db, who, student)
        else []
    )


on_withdrawal(ConsentKind.EQUIPMENT_SURVEY, _survey_withdrawn)
