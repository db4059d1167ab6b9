"""Equipment pages: coverage (/equipment), campaigns (/equipment/campaign), a school's list,
inventory, stocktaking and lending desk (/equipment/school/{school_id}/...), a student's items
(/equipment/student/{pk}) and a parent's view (/equipment/parent). Routes stay thin: the work is
in ``service``; a refusal is shown with its reason (422) and changes nothing."""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import PERMISSIONS, SCOPE_OF_ROLE, Principal
from server.audit.service import audit
from server.clock import ClockDep
from server.consents.service import ConsentInput, record_consent
from server.console.paging import paginate
from server.console.params import Id, SchoolId, parse_day, parse_id
from server.console.scope import (
    classes_in_scope,
    school_in_scope,
    schools_in_scope,
    visible_student,
)
from server.console.web import Db, NotFound, env, nav_item, redirect, render, require, tr
from server.equipment import service as svc
from server.equipment.calc import COLUMN_LABELS, COLUMNS, report_json
from server.equipment.calc import coverage as empty_coverage
from server.equipment.export import coverage_sheet, final_sheet
from server.equipment.importer import ImportFailed, parse_rows, read_table
from server.equipment.models import (
    Approval,
    Campaign,
    Contract,
    Delivery,
    Item,
    ItemEvent,
    Loan,
    LoanAct,
    PriorityList,
    Rejection,
    Specification,
    Sponsor,
    Stocktake,
    Supplier,
    SurveyAnswer,
)
from server.equipment.rules import (
    ACTION_LABELS,
    ITEM_STATUS_LABELS,
    KIND_LABELS,
    PROPERTY_LABELS,
    SIGNAL_LABELS,
    STATUS_LABELS,
    EquipmentError,
    ItemKind,
    Signal,
    Step,
    parse_properties,
)
from server.models import Region, School
from server.people.models import Guardian, SchoolClass, Student
from server.people.service import has_consent
from server.reports.export import PDF_TYPE, XLSX_TYPE, Sheet, disposition, to_pdf, to_xlsx

router = APIRouter()
nav_item("equipment.view", "/equipment", "Equipment", 70)
nav_item("parent.view", "/equipment/parent", "Items my child holds", 71)

# 193212 -> "193 212" (no-break space), as the seed's table prints counts.
env.filters["thousands"] = lambda n: f"{n:,}".replace(",", "\u00a0") if isinstance(n, int) else n

N_ = str
Text = Annotated[str, Form(max_length=200)]
LongText = Annotated[str, Form(max_length=20_000)]
MAX_UPLOAD = 2 * 1024 * 1024


# ------------------------------------------------------------------------------------ helpers


def region_allowed(who: Principal, perm: str, region_id: str) -> bool:
    roles = PERMISSIONS[perm]
    return any(
        g.role in roles
        and (
            SCOPE_OF_ROLE[g.role] == "all"
            or (SCOPE_OF_ROLE[g.role] == "region" and g.region_id == region_id)
        )
        for g in who.grants
    )


def visible_regions(db: Session, who: Principal, perm: str) -> list[Region]:
    schools = who.schools(perm)
    regions = list(db.scalars(select(Region).order_by(Region.id)))
    if schools is None:
        return regions
    ids = {s.region_id for s in schools_in_scope(db, who, perm)}
    ids |= {g.region_id for g in who.grants if g.role in PERMISSIONS[perm] and g.region_id}
    return [r for r in regions if r.id in ids]


def region_in_scope(db: Session, who: Principal, perm: str, region_id: str) -> Region:
    region = db.get(Region, region_id) if len(region_id) <= 64 else None
    if region is None or not region_allowed(who, perm, region_id):
        raise NotFound()
    return region


def campaign_of(db: Session, region_id: str, text: str | None) -> Campaign:
    pk = parse_id(text)
    c = db.get(Campaign, pk) if pk is not None else None
    if c is None or c.region_id != region_id:
        raise EquipmentError(N_("No such campaign in this region."))
    return c


def campaigns_of(db: Session, region_id: str | None) -> list[Campaign]:
    return list(
        db.scalars(
            select(Campaign).where(Campaign.region_id == region_id).order_by(Campaign.pk.desc())
        )
    )


def refused(request: Request, db: Session, err: Exception, back: str) -> Response:
    db.rollback()
    if isinstance(err, ImportFailed):
        message, details = tr(request, "The import was refused; nothing was changed."), err.errors
    else:
        assert isinstance(err, EquipmentError)
        message, details = tr(request, err.message), [err.detail] if err.detail else []
    return render(
        request,
        "equipment/refused.html",
        {"message": message, "details": details[:50], "back": back},
        422,
    )


def tiyn(text: str) -> int:
    """Tenge as typed ("79 500 000", "150000,50") -> tiyn; bad input is an EquipmentError."""
    clean = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        number = float(clean)
    except ValueError as err:
        raise EquipmentError(N_("An amount in tenge."), text[:30]) from err
    if not math.isfinite(number) or not 0 <= number <= 10**11:
        raise EquipmentError(N_("An amount in tenge."), text[:30])
    value = round(number * 100)
    if not 0 <= value <= 10**13:
        raise EquipmentError(N_("An amount in tenge."), text[:30])
    return value


def day(text: str) -> dt.date:
    found = parse_day(text)
    if found is None:
        raise EquipmentError(N_("A date as YYYY-MM-DD."), text[:20])
    return found


# ----------------------------------------------------------------------------------- coverage


def _coverage_ctx(
    db: Session, who: Principal, region: str | None, period: str | None, today: dt.date
) -> dict[str, Any]:
    regions = visible_regions(db, who, "equipment.view")
    chosen = next((r for r in regions if r.id == region), regions[0] if regions else None)
    periods = svc.periods(db, chosen.id) if chosen is not None else []
    per = period if period in periods else (periods[0] if periods else None)
    report = svc.coverage_report(db, chosen.id, per, today) if chosen and per else None
    return {
        "regions": regions,
        "region": chosen,
        "periods": periods,
        "period": per,
        "report": report,
    }


@router.get("/equipment")
def coverage_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.view")],
    region: Annotated[str | None, Query(max_length=64)] = None,
    period: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    ctx = _coverage_ctx(db, who, region, period, clock.today_in(None))
    ctx |= {
        "columns": COLUMNS,
        "labels": COLUMN_LABELS,
        "can_import": ctx["region"] is not None
        and region_allowed(who, "equipment.import", ctx["region"].id),
    }
    return render(request, "equipment/coverage.html", ctx)


@router.get("/equipment/coverage.xlsx")
@router.get("/equipment/coverage.pdf")
@router.get("/equipment/coverage.json")
def coverage_file(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.view")],
    region: Annotated[str | None, Query(max_length=64)] = None,
    period: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    fmt = request.url.path.rsplit(".", 1)[1]
    ctx = _coverage_ctx(db, who, region, period, clock.today_in(None))
    region_name = ctx["region"].name if ctx["region"] is not None else ""
    # Nothing reported yet: an empty table, not an error.
    report = ctx["report"] or empty_coverage(region or "", period or "", [])
    if fmt == "json":
        import json

        return Response(
            json.dumps(report_json(report), ensure_ascii=False), media_type="application/json"
        )
    sheet = coverage_sheet(report, region_name, lambda m: tr(request, m))
    body, media = (to_xlsx([sheet]), XLSX_TYPE) if fmt == "xlsx" else (to_pdf([sheet]), PDF_TYPE)
    return Response(
        body,
        media_type=media,
        headers={
            "content-disposition": disposition("coverage", report.region, report.period, ext=fmt)
        },
    )


@router.post("/equipment/region/{region_id}/import")
def coverage_import(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.import")],
    region_id: SchoolId,
    file: UploadFile,
    period: Annotated[str, Form(max_length=16)],
) -> Response:
    region = region_in_scope(db, who, "equipment.import", region_id)
    back = f"/equipment?region={region.id}"
    data = file.file.read(MAX_UPLOAD + 1)
    name = (file.filename or "upload")[:200]
    try:
        rows = parse_rows(read_table(name, data))
        svc.import_reports(
            db, who, region.id, period.strip(), rows, source=name, now=clock.now_ms()
        )
    except (ImportFailed, EquipmentError) as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}&period={period.strip()}")


# ---------------------------------------------------------------------------------- campaigns


@router.get("/equipment/campaign")
def campaign_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.view")],
    region: Annotated[str | None, Query(max_length=64)] = None,
    campaign: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    regions = visible_regions(db, who, "equipment.view")
    chosen = next((r for r in regions if r.id == region), regions[0] if regions else None)
    camps = campaigns_of(db, chosen.id) if chosen is not None else []
    pk = parse_id(campaign)
    camp = next((c for c in camps if c.pk == pk), camps[0] if camps else None)
    ctx: dict[str, Any] = {"regions": regions, "region": chosen, "campaigns": camps, "camp": camp}
    if chosen is not None:
        ctx["may"] = {
            p: region_allowed(who, f"equipment.{p}", chosen.id)
            for p in ("campaign", "approve_district", "approve_region")
        }
    if camp is not None:
        today = clock.today_in(None)
        visible = {s.id for s in schools_in_scope(db, who, "equipment.view")}
        lists = [
            lst
            for lst in db.scalars(
                select(PriorityList)
                .where(PriorityList.campaign_pk == camp.pk)
                .order_by(PriorityList.school_id, PriorityList.version.desc())
            )
            if lst.school_id in visible or region_allowed(who, "equipment.view", chosen.id)  # type: ignore[union-attr]
        ]
        ctx |= {
            "money": svc.money(db, camp),
            "final": svc.final_report(db, camp, today),
            "sponsors": list(
                db.scalars(
                    select(Sponsor).where(Sponsor.campaign_pk == camp.pk).order_by(Sponsor.name)
                )
            ),
            "specs": list(
                db.scalars(select(Specification).where(Specification.campaign_pk == camp.pk))
            ),
            "contracts": [
                (c, db.get(Supplier, c.supplier_pk))
                for c in db.scalars(
                    select(Contract).where(Contract.campaign_pk == camp.pk).order_by(Contract.pk)
                )
            ],
            "lists": lists,
            "approvals": {
                lst.pk: list(
                    db.scalars(
                        select(Approval).where(Approval.list_pk == lst.pk).order_by(Approval.pk)
                    )
                )
                for lst in lists
            },
            "status_labels": STATUS_LABELS,
            "signal_labels": {s.value: SIGNAL_LABELS[s] for s in Signal},
            "property_labels": PROPERTY_LABELS,
        }
    return render(request, "equipment/campaign.html", ctx)


@router.get("/equipment/campaign/final.xlsx")
@router.get("/equipment/campaign/final.pdf")
def final_file(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.view")],
    region: Annotated[str, Query(max_length=64)],
    campaign: Annotated[str, Query(max_length=20)],
) -> Response:
    """The campaign's final report (the page's numbers) as XLSX or PDF."""
    fmt = request.url.path.rsplit(".", 1)[1]
    chosen = next((r for r in visible_regions(db, who, "equipment.view") if r.id == region), None)
    if chosen is None:
        raise NotFound()
    try:
        camp = campaign_of(db, chosen.id, campaign)
    except EquipmentError as err:
        raise NotFound() from err
    final = svc.final_report(db, camp, clock.today_in(None))
    labels = {s.value: SIGNAL_LABELS[s] for s in Signal}
    sheet = final_sheet(final, chosen.name or chosen.id, lambda m: tr(request, m), labels)
    body, media = (to_xlsx([sheet]), XLSX_TYPE) if fmt == "xlsx" else (to_pdf([sheet]), PDF_TYPE)
    return Response(
        body,
        media_type=media,
        headers={
            "content-disposition": disposition("campaign-final", chosen.id, camp.period, ext=fmt)
        },
    )


@router.post("/equipment/region/{region_id}/campaigns")
def campaign_create(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.campaign")],
    region_id: SchoolId,
    name: Text,
    period: Annotated[str, Form(max_length=16)],
    goal: Annotated[str, Form(max_length=30)],
    unit_price: Annotated[str, Form(max_length=30)],
    starts_on: Annotated[str, Form(max_length=10)],
    deadline: Annotated[str, Form(max_length=10)],
    fund_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    region = region_in_scope(db, who, "equipment.campaign", region_id)
    back = f"/equipment/campaign?region={region.id}"
    try:
        c = svc.create_campaign(
            db,
            region.id,
            name=name,
            period=period.strip(),
            goal_tiyn=tiyn(goal),
            planned_unit_price_tiyn=tiyn(unit_price),
            starts_on=day(starts_on),
            deadline=day(deadline),
            fund_name=fund_name,
            now=clock.now_ms(),
        )
        svc.add_spec(db, c, "Order No. 79")
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}&campaign={c.pk}")


@router.post("/equipment/region/{region_id}/sponsors")
def sponsor_add(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.campaign")],
    region_id: SchoolId,
    campaign: Annotated[str, Form(max_length=20)],
    name: Text,
    consent_document: Annotated[str, Form(max_length=200)] = "",
    public_consent: Annotated[str, Form(max_length=5)] = "",
    amount: Annotated[str, Form(max_length=30)] = "",
    kind: Annotated[str, Form(max_length=10)] = "payment",
    on: Annotated[str, Form(max_length=10)] = "",
    fund_ref: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    region = region_in_scope(db, who, "equipment.campaign", region_id)
    back = f"/equipment/campaign?region={region.id}&campaign={campaign}"
    try:
        c = campaign_of(db, region.id, campaign)
        s = db.execute(
            select(Sponsor).where(Sponsor.campaign_pk == c.pk, Sponsor.name == name.strip())
        ).scalar_one_or_none()
        if s is None:
            s = svc.add_sponsor(
                db, c, name, public_consent=bool(public_consent), consent_document=consent_document
            )
        if amount.strip():
            svc.add_money(db, s, kind, tiyn(amount), day(on), fund_ref)
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(back)


@router.post("/equipment/region/{region_id}/contracts")
def contract_add(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.campaign")],
    region_id: SchoolId,
    campaign: Annotated[str, Form(max_length=20)],
    supplier: Text,
    number: Annotated[str, Form(max_length=64)],
    quantity: Annotated[str, Form(max_length=10)],
    unit_price: Annotated[str, Form(max_length=30)],
    signed_on: Annotated[str, Form(max_length=10)],
    due_on: Annotated[str, Form(max_length=10)],
) -> Response:
    region = region_in_scope(db, who, "equipment.campaign", region_id)
    back = f"/equipment/campaign?region={region.id}&campaign={campaign}"
    try:
        c = campaign_of(db, region.id, campaign)
        spec = db.scalars(
            select(Specification)
            .where(Specification.campaign_pk == c.pk)
            .order_by(Specification.pk)
        ).first() or svc.add_spec(db, c, "Order No. 79")
        qty = parse_id(quantity)
        if qty is None:
            raise EquipmentError(N_("A quantity above zero."))
        svc.add_contract(
            db,
            c,
            supplier_name=supplier,
            spec=spec,
            number=number,
            quantity=qty,
            unit_price_tiyn=tiyn(unit_price),
            signed_on=day(signed_on),
            due_on=day(due_on),
        )
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(back)


def _decide(
    request: Request,
    db: Session,
    who: Principal,
    perm: str,
    step: Step,
    region_id: str,
    list_pk: str,
    action: str,
    note: str,
    now: int,
) -> Response:
    region = region_in_scope(db, who, perm, region_id)
    back = f"/equipment/campaign?region={region.id}"
    try:
        pk = parse_id(list_pk)
        lst = db.get(PriorityList, pk) if pk is not None else None
        camp = db.get(Campaign, lst.campaign_pk) if lst is not None else None
        if lst is None or camp is None or camp.region_id != region.id:
            raise EquipmentError(N_("No such list in this region."))
        svc.step_list(db, who, lst, Step.RETURN if action == "return" else step, note=note, now=now)
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}&campaign={camp.pk}")


@router.post("/equipment/region/{region_id}/approve-district")
def approve_district(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.approve_district")],
    region_id: SchoolId,
    list_pk: Annotated[str, Form(max_length=20)],
    action: Annotated[str, Form(max_length=10)] = "approve",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    return _decide(
        request,
        db,
        who,
        "equipment.approve_district",
        Step.DISTRICT,
        region_id,
        list_pk,
        action,
        note,
        clock.now_ms(),
    )


@router.post("/equipment/region/{region_id}/approve-region")
def approve_region(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.approve_region")],
    region_id: SchoolId,
    list_pk: Annotated[str, Form(max_length=20)],
    action: Annotated[str, Form(max_length=10)] = "approve",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    return _decide(
        request,
        db,
        who,
        "equipment.approve_region",
        Step.REGION,
        region_id,
        list_pk,
        action,
        note,
        clock.now_ms(),
    )


# ------------------------------------------------------------------------- a school's campaign


def _school_campaign(
    db: Session, school: School, campaign: str | None
) -> tuple[list[Campaign], Campaign | None]:
    camps = campaigns_of(db, school.region_id)
    pk = parse_id(campaign)
    return camps, next((c for c in camps if c.pk == pk), camps[0] if camps else None)


@router.get("/equipment/school/{school_id}")
def school_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.view")],
    school_id: SchoolId,
    campaign: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    school = school_in_scope(db, who, "equipment.view", school_id)
    camps, camp = _school_campaign(db, school, campaign)
    ctx: dict[str, Any] = {"school": school, "campaigns": camps, "camp": camp}
    ctx["may_propose"] = who.can("equipment.propose", school_id=school.id)
    if camp is not None:
        versions = svc.lists_of(db, camp.pk, school.id)
        students = {
            s.pk: s
            for s in db.scalars(
                select(Student)
                .where(Student.school_id == school.id, Student.active.is_(True))
                .order_by(Student.surname, Student.given_name)
            )
        }
        answers = {a.student_pk: a for a in svc.consented_answers(db, camp, school.id)}
        ctx |= {
            "versions": versions,
            "entries": {v.pk: svc.entries(db, v.pk) for v in versions[:3]},
            "students": students,
            "answers": answers,
            "status_labels": STATUS_LABELS,
            "approvals": {
                v.pk: list(
                    db.scalars(
                        select(Approval).where(Approval.list_pk == v.pk).order_by(Approval.pk)
                    )
                )
                for v in versions
            },
        }
        audit(
            db,
            who,
            "eq.view_list",
            f"school:{school.id}",
            school_id=school.id,
            summary=f"campaign {camp.pk}",
        )
        db.commit()
    return render(request, "equipment/school.html", ctx)


@router.post("/equipment/school/{school_id}/answers")
def answer_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.propose")],
    school_id: SchoolId,
    campaign: Annotated[str, Form(max_length=20)],
    student: Annotated[str, Form(max_length=20)],
    has_computer: Annotated[str, Form(max_length=5)] = "",
    low_income: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    school = school_in_scope(db, who, "equipment.propose", school_id)
    back = f"/equipment/school/{school.id}"
    try:
        camp = campaign_of(db, school.region_id or "", campaign)
        pk = parse_id(student)
        st = db.get(Student, pk) if pk is not None else None
        if st is None or st.school_id != school.id:
            raise EquipmentError(N_("Unknown student."))
        svc.record_answer(
            db,
            who,
            camp,
            st,
            has_computer=has_computer == "yes",
            low_income=bool(low_income),
            applied_at_ms=clock.now_ms(),
        )
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}?campaign={camp.pk}")


@router.post("/equipment/school/{school_id}/list")
def list_build(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.propose")],
    school_id: SchoolId,
    campaign: Annotated[str, Form(max_length=20)],
    action: Annotated[str, Form(max_length=10)] = "build",
    reason: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    school = school_in_scope(db, who, "equipment.propose", school_id)
    back = f"/equipment/school/{school.id}"
    try:
        camp = campaign_of(db, school.region_id or "", campaign)
        if action == "propose":
            versions = svc.lists_of(db, camp.pk, school.id)
            if not versions:
                raise EquipmentError(N_("Build the list first."))
            svc.step_list(db, who, versions[0], Step.PROPOSE, note=reason, now=clock.now_ms())
        else:
            svc.build_list(
                db,
                who,
                camp,
                school.id,
                reason=reason,
                today=clock.school_today(school),
                now=clock.now_ms(),
            )
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}?campaign={camp.pk}")


# --------------------------------------------------------------------------- inventory, delivery


INVENTORY_SORTS: dict[str, tuple[Any, ...]] = {
    "kind": (Item.kind, Item.inventory_no),
    "number": (Item.inventory_no,),
    "status": (Item.status, Item.inventory_no),
    "title": (Item.title, Item.inventory_no),
}


@router.get("/equipment/school/{school_id}/inventory")
def inventory_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.view")],
    school_id: SchoolId,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    sort: Annotated[str, Query(max_length=12)] = "kind",
) -> Response:
    school = school_in_scope(db, who, "equipment.view", school_id)
    sort = sort if sort in INVENTORY_SORTS else "kind"
    found = paginate(
        db,
        select(Item).where(Item.school_id == school.id).order_by(*INVENTORY_SORTS[sort], Item.pk),
        page,
    )
    items = [row[0] for row in found.rows]
    camps = campaigns_of(db, school.region_id)
    contracts = list(
        db.scalars(
            select(Contract)
            .where(Contract.campaign_pk.in_([c.pk for c in camps]))
            .order_by(Contract.pk)
        )
    )
    deliveries = list(
        db.scalars(
            select(Delivery).where(Delivery.school_id == school.id).order_by(Delivery.pk.desc())
        )
    )
    rejections = list(
        db.scalars(
            select(Rejection)
            .where(Rejection.delivery_pk.in_([d.pk for d in deliveries]))
            .order_by(Rejection.pk)
        )
    )
    history = {
        i.pk: list(
            db.scalars(
                select(ItemEvent)
                .where(ItemEvent.item_pk == i.pk)
                .order_by(ItemEvent.pk.desc())
                .limit(5)
            )
        )
        for i in items
    }
    return render(
        request,
        "equipment/inventory.html",
        {
            "school": school,
            "items": items,
            "found": found,
            "sort": sort,
            "base": f"/equipment/school/{school.id}/inventory?sort={sort}",
            "contracts": contracts,
            "deliveries": deliveries,
            "rejections": rejections,
            "history": history,
            "kinds": KIND_LABELS,
            "statuses": ITEM_STATUS_LABELS,
            "actions": ACTION_LABELS | {k.value: v for k, v in ITEM_STATUS_LABELS.items()},
            "property_labels": PROPERTY_LABELS,
            "may_accept": who.can("equipment.accept", school_id=school.id),
        },
    )


def _devices(text: str) -> list[svc.Delivered]:
    """One device a line: ``inventory no | serial | cpu_cores=4; ram_gb=8; ...``."""
    out = []
    for n, line in enumerate(text.splitlines()[:1000], start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 3:
            raise EquipmentError(
                N_("A device line is: inventory number | serial | properties."), f"line {n}"
            )
        out.append(svc.Delivered(parts[0], parts[1], parse_properties(parts[2])))
    return out


@router.post("/equipment/school/{school_id}/delivery")
def delivery_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.accept")],
    school_id: SchoolId,
    contract: Annotated[str, Form(max_length=20)],
    delivered_on: Annotated[str, Form(max_length=10)],
    devices: LongText,
) -> Response:
    school = school_in_scope(db, who, "equipment.accept", school_id)
    back = f"/equipment/school/{school.id}/inventory"
    try:
        pk = parse_id(contract)
        c = db.get(Contract, pk) if pk is not None else None
        camp = db.get(Campaign, c.campaign_pk) if c is not None else None
        if c is None or camp is None or camp.region_id != school.region_id:
            raise EquipmentError(N_("No such contract for this school's region."))
        svc.record_delivery(
            db, who, c, school.id, day(delivered_on), _devices(devices), now=clock.now_ms()
        )
    except EquipmentError as err:
        return refused(request, db, err, back)
    svc.publish_lending(db, school.id)  # the school's library desk follows
    db.commit()
    return redirect(back)


@router.post("/equipment/school/{school_id}/items")
def item_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.accept")],
    school_id: SchoolId,
    kind: Annotated[str, Form(max_length=16)],
    inventory_no: Annotated[str, Form(max_length=64)],
    title: Text = "",
    grade: Annotated[str, Form(max_length=3)] = "",
    status: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Add a textbook or book; or, with ``status``, mark an item in repair, lost, written off."""
    school = school_in_scope(db, who, "equipment.accept", school_id)
    back = f"/equipment/school/{school.id}/inventory"
    try:
        if status:
            item = svc.find_item(db, school.id, inventory_no)
            if item is None:
                raise EquipmentError(N_("Unknown inventory number."), inventory_no[:64])
            svc.set_status(db, who, item, status, note, clock.now_ms())
        else:
            g = parse_id(grade)
            svc.add_item(
                db,
                who,
                school.id,
                kind=kind,
                inventory_no=inventory_no,
                title=title,
                grade=g if g and g <= 12 else None,
                now=clock.now_ms(),
            )
    except EquipmentError as err:
        return refused(request, db, err, back)
    svc.publish_lending(db, school.id)  # the school's library desk follows
    db.commit()
    return redirect(back)


@router.get("/equipment/school/{school_id}/labels")
def labels_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.view")],
    school_id: SchoolId,
    kind: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    import segno

    school = school_in_scope(db, who, "equipment.view", school_id)
    q = select(Item).where(Item.school_id == school.id).order_by(Item.inventory_no).limit(500)
    if kind:
        q = q.where(Item.kind == kind)
    labels = []
    for item in db.scalars(q):
        buf = io.BytesIO()
        segno.make(svc.label_code(item), error="m").save(buf, kind="svg", scale=3, border=2)
        import base64

        labels.append(
            (item, "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode())
        )
    return render(request, "equipment/labels.html", {"school": school, "labels": labels})


# ------------------------------------------------------------------------------ stocktaking


@router.get("/equipment/school/{school_id}/stocktake")
def stocktake_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.view")],
    school_id: SchoolId,
    last: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    school = school_in_scope(db, who, "equipment.view", school_id)
    take = db.execute(
        select(Stocktake).where(Stocktake.school_id == school.id, Stocktake.closed_at_ms.is_(None))
    ).scalar_one_or_none()
    missing = svc.missing(db, take) if take is not None else []
    return render(
        request,
        "equipment/stocktake.html",
        {
            "school": school,
            "take": take,
            "missing": missing,
            "last": last,
            "kinds": KIND_LABELS,
            "may": who.can("equipment.lend", school_id=school.id),
        },
    )


@router.post("/equipment/school/{school_id}/stocktake")
def stocktake_scan(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.lend")],
    school_id: SchoolId,
    code: Annotated[str, Form(max_length=200)] = "",
    action: Annotated[str, Form(max_length=10)] = "scan",
) -> Response:
    school = school_in_scope(db, who, "equipment.lend", school_id)
    back = f"/equipment/school/{school.id}/stocktake"
    take = svc.open_stocktake(db, who, school.id, clock.now_ms())
    if action == "close":
        take.closed_at_ms = clock.now_ms()
        db.commit()
        return redirect(back)
    try:
        item = svc.scan(db, take, code, clock.now_ms()) if code.strip() else None
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(f"{back}?last={item.inventory_no}" if item is not None else back)


# ------------------------------------------------------------------------------------ lending


@router.get("/equipment/school/{school_id}/desk")
def desk_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("equipment.lend")],
    school_id: SchoolId,
    class_pk: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    school = school_in_scope(db, who, "equipment.lend", school_id)
    classes = classes_in_scope(db, who, "equipment.lend", school.id)
    cpk = parse_id(class_pk)
    cls = next((c for c in classes if c.pk == cpk), classes[0] if classes else None)
    students = (
        list(
            db.scalars(
                select(Student)
                .where(Student.class_pk == cls.pk, Student.active.is_(True))
                .order_by(Student.surname, Student.given_name)
            )
        )
        if cls is not None
        else []
    )
    held = svc.outstanding(db, [s.pk for s in students])
    by_student: dict[int, list[Any]] = {}
    for loan, item in held:
        by_student.setdefault(loan.student_pk, []).append((loan, item))
    if cls is not None:
        audit(
            db,
            who,
            "eq.view_desk",
            f"class:{cls.pk}",
            school_id=school.id,
            summary="outstanding items of a class",
        )
        db.commit()
    camps, camp = _school_campaign(db, school, None)
    return render(
        request,
        "equipment/desk.html",
        {
            "school": school,
            "classes": classes,
            "cls": cls,
            "students": students,
            "held": by_student,
            "kinds": KIND_LABELS,
            "campaigns": camps,
            "camp": camp,
        },
    )


@router.post("/equipment/school/{school_id}/lend")
def lend_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.lend")],
    school_id: SchoolId,
    inventory_no: Annotated[str, Form(max_length=200)],
    student: Annotated[str, Form(max_length=20)] = "",
    action: Annotated[str, Form(max_length=10)] = "lend",
    condition: Annotated[str, Form(max_length=16)] = "ok",
    act_ref: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Hand an item to a student (chosen in the console), or take one back."""
    school = school_in_scope(db, who, "equipment.lend", school_id)
    back = f"/equipment/school/{school.id}/desk"
    try:
        item = svc.find_item(db, school.id, inventory_no)
        if item is None:
            raise EquipmentError(N_("Unknown inventory number."), inventory_no.strip()[:64])
        if action == "return":
            svc.give_back(
                db,
                who,
                item,
                now=clock.now_ms(),
                condition=condition if condition in ("ok", "damaged") else "ok",
            )
        else:
            pk = parse_id(student)
            st = db.get(Student, pk) if pk is not None else None
            if st is None or st.school_id != school.id:
                raise EquipmentError(N_("Unknown student."))
            svc.lend(
                db,
                who,
                item,
                st,
                today=clock.school_today(school),
                now=clock.now_ms(),
                act_ref=act_ref,
            )
    except EquipmentError as err:
        return refused(request, db, err, back)
    svc.publish_lending(db, school.id)  # the school's library desk follows
    db.commit()
    return redirect(back)


@router.post("/equipment/school/{school_id}/bulk")
def bulk_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.lend")],
    school_id: SchoolId,
    action: Annotated[str, Form(max_length=20)],
    class_pk: Annotated[str, Form(max_length=20)] = "",
    campaign: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Start of the year: devices to the approved list, textbooks to a class; end: returns."""
    school = school_in_scope(db, who, "equipment.lend", school_id)
    back = f"/equipment/school/{school.id}/desk"
    classes = {c.pk: c for c in classes_in_scope(db, who, "equipment.lend", school.id)}
    try:
        cpk = parse_id(class_pk)
        today, now = clock.school_today(school), clock.now_ms()
        if action == "devices_out":
            svc.bulk_hand_out_devices(
                db,
                who,
                campaign_of(db, school.region_id or "", campaign),
                school.id,
                today=today,
                now=now,
            )
        elif action == "textbooks_out":
            if cpk not in classes:
                raise EquipmentError(N_("Choose a class."))
            svc.bulk_hand_out_textbooks(db, who, classes[cpk], today=today, now=now)
        elif action == "return_class":
            if cpk not in classes:
                raise EquipmentError(N_("Choose a class."))
            svc.bulk_return(db, who, school.id, cpk, now=now)
        else:
            raise EquipmentError(N_("Unknown action."))
    except EquipmentError as err:
        return refused(request, db, err, back)
    svc.publish_lending(db, school.id)  # the school's library desk follows
    db.commit()
    return redirect(back + (f"?class_pk={cpk}" if cpk else ""))


# ---------------------------------------------------------------------- the hand-over act


ACT_TEXT = N_(
    "The item is handed over for the child's learning for temporary use. It stays on the "
    "school's balance and is returned at the end of the school year, on leaving the school or "
    "on request, in the condition it was received in, apart from normal wear."
)


def _loan_in_scope(db: Session, who: Principal, pk: int) -> tuple[Loan, Item, Student, School]:
    loan = db.get(Loan, pk)
    if loan is None:
        raise NotFound()
    school = school_in_scope(db, who, "equipment.lend", loan.school_id)
    return loan, db.get_one(Item, loan.item_pk), db.get_one(Student, loan.student_pk), school


def _act_lines(
    request: Request, db: Session, loan: Loan, item: Item, st: Student, school: School
) -> list[tuple[str, str]]:
    cls = db.get(SchoolClass, st.class_pk) if st.class_pk is not None else None
    return [
        (tr(request, N_("School")), school.name or school.id),
        (tr(request, N_("Student")), st.full_name),
        (tr(request, N_("Class")), cls.name if cls is not None else ""),
        (tr(request, N_("Kind")), tr(request, KIND_LABELS[ItemKind(item.kind)])),
        (tr(request, N_("Title")), item.title),
        (tr(request, N_("Inventory number")), item.inventory_no),
        (tr(request, N_("Serial")), item.serial),
        (tr(request, N_("Handed over on")), env.filters["datetime"](loan.lent_at_ms)),
        (tr(request, N_("Due")), loan.due_on.isoformat()),
    ]


ACT_SIGNATURES = (N_("Handed over (school)"), N_("Received (parent or guardian)"))


@router.get("/equipment/loan/{pk}/act")
def act_page(
    request: Request, db: Db, who: Annotated[Principal, require("equipment.lend")], pk: Id
) -> Response:
    """The hand-over act to print and sign, and the signed act's scan (upload, download)."""
    loan, item, st, school = _loan_in_scope(db, who, pk)
    scan = db.execute(select(LoanAct).where(LoanAct.loan_pk == loan.pk)).scalar_one_or_none()
    return render(
        request,
        "equipment/act.html",
        {
            "loan": loan,
            "school": school,
            "lines": _act_lines(request, db, loan, item, st, school),
            "text": ACT_TEXT,
            "signatures": ACT_SIGNATURES,
            "scan": scan,
        },
    )


@router.get("/equipment/loan/{pk}/act.pdf")
def act_pdf(
    request: Request, db: Db, who: Annotated[Principal, require("equipment.lend")], pk: Id
) -> Response:
    loan, item, st, school = _loan_in_scope(db, who, pk)
    sheet = Sheet(
        title=f"{tr(request, N_('Act of hand-over'))} № {loan.pk}",
        subtitle=[tr(request, ACT_TEXT)],
        headers=["", ""],
        rows=[[a, b] for a, b in _act_lines(request, db, loan, item, st, school)],
        signatures=[tr(request, s) for s in ACT_SIGNATURES],
        name="act",
    )
    return Response(
        to_pdf([sheet]),
        media_type=PDF_TYPE,
        headers={"content-disposition": disposition("act", str(loan.pk), ext="pdf")},
    )


@router.post("/equipment/loan/{pk}/act")
def act_upload(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("equipment.lend")],
    pk: Id,
    file: UploadFile,
) -> Response:
    """Keep the scan of the act the parent signed (PDF, JPEG or PNG up to 1 MB)."""
    loan, _item, _st, _school = _loan_in_scope(db, who, pk)
    back = f"/equipment/loan/{loan.pk}/act"
    data = file.file.read(svc.MAX_ACT_BYTES + 1)
    try:
        svc.attach_act_scan(db, who, loan, data, now=clock.now_ms())
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(back)


@router.get("/equipment/loan/{pk}/act/scan")
def act_scan(
    request: Request, db: Db, who: Annotated[Principal, require("equipment.lend")], pk: Id
) -> Response:
    loan, _item, _st, _school = _loan_in_scope(db, who, pk)
    scan = db.execute(select(LoanAct).where(LoanAct.loan_pk == loan.pk)).scalar_one_or_none()
    if scan is None:
        raise NotFound()
    ext = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}[scan.media_type]
    return Response(
        scan.data,
        media_type=scan.media_type,
        headers={
            "content-disposition": disposition("act-signed", str(loan.pk), ext=ext),
            "x-content-type-options": "nosniff",
        },
    )


# ------------------------------------------------------------------------ a student's items

Pupil = Annotated[Student, visible_student("equipment.view", "parent.view", session=True)]


@router.get("/equipment/student/{pk}")
def student_items(request: Request, db: Db, st: Pupil) -> Response:
    who: Principal = request.state.principal
    held = svc.outstanding(db, [st.pk])
    audit(
        db,
        who,
        "eq.view_student",
        f"student:{st.pk}",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="items held",
    )
    db.commit()
    return render(request, "equipment/student.html", {"st": st, "held": held, "kinds": KIND_LABELS})


@router.get("/equipment/parent")
def parent_items(
    request: Request, db: Db, clock: ClockDep, who: Annotated[Principal, require("parent.view")]
) -> Response:
    kids = [db.get_one(Student, c[0]) for c in who.children]
    held = svc.outstanding(db, [k.pk for k in kids])
    by_child: dict[int, list[Any]] = {}
    for loan, item in held:
        by_child.setdefault(loan.student_pk, []).append((loan, item))
    survey: dict[int, list[tuple[Campaign, SurveyAnswer | None]]] = {}
    consent: dict[int, bool] = {}
    for k in kids:
        school = db.get_one(School, k.school_id)
        consent[k.pk] = has_consent(db, k.pk, ConsentKind.EQUIPMENT_SURVEY)
        survey[k.pk] = [
            (
                c,
                db.execute(
                    select(SurveyAnswer).where(
                        SurveyAnswer.campaign_pk == c.pk, SurveyAnswer.student_pk == k.pk
                    )
                ).scalar_one_or_none(),
            )
            for c in svc.open_campaigns(db, school.region_id, clock.school_today(school))
        ]
    return render(
        request,
        "equipment/parent.html",
        {
            "kids": kids,
            "held": by_child,
            "kinds": KIND_LABELS,
            "survey": survey,
            "consent": consent,
        },
    )


@router.post("/equipment/parent/{pk}/survey")
def parent_survey(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("parent.view")],
    pk: Id,
    campaign: Annotated[str, Form(max_length=20)] = "",
    agree: Annotated[str, Form(max_length=5)] = "",
    has_computer: Annotated[str, Form(max_length=5)] = "",
    low_income: Annotated[str, Form(max_length=5)] = "",
    action: Annotated[str, Form(max_length=10)] = "answer",
) -> Response:
    """A parent answers the survey for their own child, giving the survey consent on the same
    form (recorded in the consent ledger), or withdraws it (the answers are erased)."""
    st = db.get(Student, pk)
    if st is None or not any(c[0] == pk for c in who.children):
        raise NotFound()
    school = db.get_one(School, st.school_id)
    back = "/equipment/parent"
    today = clock.school_today(school)
    guardian = db.execute(
        select(Guardian).where(Guardian.user_pk == who.user_pk).limit(1)
    ).scalar_one_or_none()
    given_by = guardian.full_name if guardian is not None else who.full_name
    try:
        if action == "withdraw":
            if has_consent(db, st.pk, ConsentKind.EQUIPMENT_SURVEY):
                record_consent(
                    db,
                    who,
                    st,
                    ConsentInput(
                        ConsentKind.EQUIPMENT_SURVEY, False, given_by[:200], "parent page", today
                    ),
                )
            svc.erase_answers(db, who, st)
        else:
            camp = campaign_of(db, school.region_id or "", campaign)
            if not has_consent(db, st.pk, ConsentKind.EQUIPMENT_SURVEY):
                if agree != "1":
                    raise EquipmentError(
                        N_("No parent's consent to the equipment survey for this student.")
                    )
                record_consent(
                    db,
                    who,
                    st,
                    ConsentInput(
                        ConsentKind.EQUIPMENT_SURVEY, True, given_by[:200], "parent page", today
                    ),
                )
            svc.record_answer(
                db,
                who,
                camp,
                st,
                has_computer=has_computer == "yes",
                low_income=bool(low_income),
                applied_at_ms=clock.now_ms(),
                source="parent",
            )
    except EquipmentError as err:
        return refused(request, db, err, back)
    db.commit()
    return redirect(back)
