"""Console pages of the gifted-children registry: nominations, the registry (paged, with plan
versus fact), a child's roadmap (coordinator's editor), reminders, the annual statistics by
region (page, XLSX, PDF) and the teachers who prepared prize-winners."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import Clock, ClockDep
from server.console.i18n import gettext
from server.console.params import parse_id
from server.console.scope import (
    classes_in_scope,
    pick_school,
    school_in_scope,
    visible_schools,
    visible_student,
)
from server.console.web import Db, nav_item, redirect, render, request_lang, require
from server.gifted import rules, service
from server.gifted.models import Activity, GiftedEntry, Support
from server.gifted.service import GiftedError
from server.models import School
from server.people.models import SchoolClass, Student
from server.people.service import has_consent
from server.reports.export import PDF_TYPE, XLSX_TYPE, Cell, Sheet, disposition, to_pdf, to_xlsx

router = APIRouter()
nav_item("gifted.view", "/gifted", "Gifted children", 60)
nav_item("gifted.nominate", "/gifted/nominations", "Nominations", 61)
nav_item("gifted.report", "/gifted/statistics", "Gifted: statistics", 62)

N_ = str
FORMATS = ("html", "xlsx", "pdf")
REMIND_DAYS = 14

Text = Annotated[str, Form(max_length=600)]
Short = Annotated[str, Form(max_length=40)]


def _year(text: str | None, today: dt.date) -> int:
    if text and text.isascii() and text.isdigit() and len(text) == 4:
        y = int(text)
        if 2000 <= y <= 2100:
            return y
    return today.year


def _fmt(text: str) -> str:
    return text if text in FORMATS else "html"


# ------------------------------------------------------------------------------ registry


@router.get("/gifted")
def registry_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.view")],
    schools: Annotated[list[School], visible_schools("gifted.view")],
    school: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[str | None, Query(max_length=6)] = None,
) -> Response:
    current = pick_school(schools, school) if schools else None
    rows: list[service.RegistryRow] = []
    total = 0
    number = parse_id(page) or 1
    locality = None
    if current is not None:
        today = clock.school_today(current)
        allowed = who.classes("gifted.view", current.id)
        rows, total = service.registry(
            db, current.id, sorted(allowed) if allowed is not None else None, today, number
        )
        locality = service.locality_of(db, current.id)
        audit(
            db, who, "view", "gifted", school_id=current.id, summary=f"registry, {len(rows)} rows"
        )
        db.commit()
    return render(
        request,
        "gifted/registry.html",
        {
            "schools": schools,
            "school": current,
            "rows": rows,
            "total": total,
            "page": number,
            "pages": max(1, -(-total // service.PAGE)),
            "locality": locality,
            "localities": service.LOCALITY_LABELS,
            "groups": rules.GROUP_LABELS,
            "can_edit": current is not None and who.can("gifted.edit", school_id=current.id),
        },
    )


@router.post("/gifted/schools/{school}/locality")
def locality_save(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("gifted.edit")],
    school: Annotated[str, Path(max_length=64)],
    locality: Short = "",
) -> Response:
    sch = school_in_scope(db, who, "gifted.edit", school)
    try:
        service.set_locality(db, who, sch.id, locality)
    except GiftedError:
        db.rollback()
        return render(request, "error.html", {"code": 400, "message": "Bad request."}, 400)
    db.commit()
    return redirect(f"/gifted?school={sch.id}")


# ---------------------------------------------------------------------------- nominations


@router.get("/gifted/nominations")
def nominations_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("gifted.nominate")],
    schools: Annotated[list[School], visible_schools("gifted.nominate")],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    current = pick_school(schools, school) if schools else None
    rows: list[Any] = []
    classes: list[SchoolClass] = []
    students: list[Student] = []
    if current is not None:
        classes = classes_in_scope(db, who, "gifted.nominate", current.id)
        pks = [c.pk for c in classes]
        allowed = who.classes("gifted.nominate", current.id)
        rows = service.school_nominations(db, current.id, pks if allowed is not None else None)
        students = list(
            db.query(Student)
            .filter(
                Student.school_id == current.id, Student.class_pk.in_(pks), Student.active.is_(True)
            )
            .order_by(Student.surname, Student.given_name)
            .limit(1000)
        )
        audit(
            db,
            who,
            "view",
            "gifted",
            school_id=current.id,
            summary=f"nominations, {len(rows)} rows",
        )
        db.commit()
    return render(
        request,
        "gifted/nominations.html",
        {
            "schools": schools,
            "school": current,
            "rows": rows,
            "students": students,
            "classes": {c.pk: c.name for c in classes},
            "bases": service.BASIS_LABELS,
        },
    )


def _nominate_page(
    request: Request,
    db: Session,
    who: Principal,
    student: Student,
    clock: Clock,
    *,
    error: GiftedError | None = None,
    form: dict[str, str] | None = None,
    saved: bool = False,
    status: int = 200,
) -> Response:
    school = db.get_one(School, student.school_id)
    return render(
        request,
        "gifted/nominate.html",
        {
            "student": student,
            "cls": db.get_one(SchoolClass, student.class_pk),
            "rows": service.nominations_of(db, student.pk),
            "teachers": service.school_staff(db, student.school_id),
            "names": service.staff_names(
                db, [n.teacher_pk for n in service.nominations_of(db, student.pk)]
            ),
            "bases": service.BASIS_LABELS,
            "levels": service.LEVEL_LABELS,
            "error": error,
            "saved": saved,
            "form": form or {"nominated_on": clock.school_today(school).isoformat()},
            "can_view": who.can(
                "gifted.view",
                school_id=student.school_id,
                class_pk=student.class_pk,
                student_pk=student.pk,
            ),
        },
        status,
    )


@router.get("/gifted/student/{pk}/nominate")
def nominate_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.nominate")],
    student: Annotated[Student, visible_student("gifted.nominate")],
) -> Response:
    audit(
        db,
        who,
        "view",
        "gifted",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="nominations",
    )
    db.commit()
    return _nominate_page(request, db, who, student, clock)


@router.post("/gifted/student/{pk}/nominate")
def nominate_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.nominate")],
    student: Annotated[Student, visible_student("gifted.nominate")],
    basis: Short = "",
    subject: Annotated[str, Form(max_length=200)] = "",
    detail: Annotated[str, Form(max_length=300)] = "",
    level: Short = "",
    place: Short = "",
    score: Short = "",
    teacher: Short = "",
    nominated_on: Short = "",
) -> Response:
    form = {
        "basis": basis,
        "subject": subject,
        "detail": detail,
        "level": level,
        "place": place,
        "score": score,
        "teacher": teacher,
        "nominated_on": nominated_on,
    }
    school = db.get_one(School, student.school_id)
    try:
        parsed = service.parse_nomination(
            basis,
            subject,
            detail,
            level,
            place,
            score,
            teacher,
            nominated_on,
            clock.school_today(school),
        )
        service.nominate(db, who, student, parsed)
    except GiftedError as err:
        db.rollback()
        return _nominate_page(request, db, who, student, clock, error=err, form=form, status=400)
    db.commit()
    return _nominate_page(request, db, who, student, clock, saved=True)


# ------------------------------------------------------------------------------- roadmap


def _roadmap_page(
    request: Request,
    db: Session,
    who: Principal,
    student: Student,
    clock: Clock,
    *,
    error: GiftedError | None = None,
    status: int = 200,
) -> Response:
    school = db.get_one(School, student.school_id)
    today = clock.school_today(school)
    entry = service.entry_of(db, student.pk)
    activities = service.activities_of(db, entry.pk) if entry is not None else []
    support = service.support_of(db, entry.pk) if entry is not None else []
    nominations = service.nominations_of(db, student.pk)
    names = service.staff_names(
        db, [a.teacher_pk for a in activities] + [n.teacher_pk for n in nominations]
    )
    plan = (
        rules.plan_fact(
            [service.activity_fact(a) for a in activities],
            [service.support_fact(s) for s in support],
            today,
        )
        if entry is not None
        else None
    )
    tutoring = service.tutoring_results(db, student.pk) if entry is not None else []
    return render(
        request,
        "gifted/roadmap.html",
        {
            "student": student,
            "cls": db.get_one(SchoolClass, student.class_pk),
            "school": school,
            "today": today,
            "entry": entry,
            "activities": activities,
            "support": support,
            "nominations": nominations,
            "names": names,
            "plan": plan,
            "tutoring": tutoring,
            "groups": sorted(service.groups_of(db, student, today)),
            "group_labels": rules.GROUP_LABELS,
            "locality": service.locality_of(db, student.school_id),
            "consent": has_consent(db, student.pk, ConsentKind.GIFTED),
            "teachers": service.school_staff(db, student.school_id),
            "kinds": service.ACTIVITY_LABELS,
            "statuses": service.STATUS_LABELS,
            "support_kinds": service.SUPPORT_LABELS,
            "bases": service.BASIS_LABELS,
            "levels": service.LEVEL_LABELS,
            "error": error,
            "can_edit": who.can(
                "gifted.edit",
                school_id=student.school_id,
                class_pk=student.class_pk,
                student_pk=student.pk,
            ),
            "can_consent": who.can(
                "consents.edit",
                school_id=student.school_id,
                class_pk=student.class_pk,
                student_pk=student.pk,
            ),
        },
        status,
    )


@router.get("/gifted/student/{pk}")
def roadmap_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.view")],
    student: Annotated[Student, visible_student("gifted.view")],
) -> Response:
    audit(
        db,
        who,
        "view",
        "gifted",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="roadmap, nominations, plan versus fact",
    )
    db.commit()
    return _roadmap_page(request, db, who, student, clock)


def _entry(db: Session, student: Student) -> GiftedEntry:
    entry = service.entry_of(db, student.pk)
    if entry is None:
        raise GiftedError("entry", N_("The child is not in the registry."))
    return entry


def _done(
    request: Request, db: Session, who: Principal, student: Student, clock: Clock, err: Any
) -> Response:
    if err is not None:
        db.rollback()
        return _roadmap_page(request, db, who, student, clock, error=err, status=400)
    db.commit()
    return redirect(f"/gifted/student/{student.pk}")


@router.post("/gifted/student/{pk}/enter")
def enter_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
) -> Response:
    err = None
    try:
        service.enter(db, who, student, clock.school_today(db.get_one(School, student.school_id)))
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


@router.post("/gifted/student/{pk}/roadmap")
def roadmap_save(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
    abilities: Text = "",
    goals: Text = "",
) -> Response:
    err = None
    try:
        service.update_roadmap(db, who, _entry(db, student), abilities, goals)
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


@router.post("/gifted/student/{pk}/activities")
def activity_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
    kind: Short = "",
    title: Annotated[str, Form(max_length=300)] = "",
    subject: Annotated[str, Form(max_length=200)] = "",
    level: Short = "",
    planned_from: Short = "",
    planned_to: Short = "",
    teacher: Short = "",
) -> Response:
    err = None
    try:
        entry = _entry(db, student)
        form = service.parse_activity(
            kind, title, subject, level, planned_from, planned_to, teacher
        )
        service.add_activity(db, who, entry, form)
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


@router.post("/gifted/student/{pk}/activities/result")
def activity_result(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
    item: Short = "",
    status: Short = "",
    done_on: Short = "",
    result: Annotated[str, Form(max_length=300)] = "",
    place: Short = "",
) -> Response:
    err = None
    try:
        entry = _entry(db, student)
        activity = service.item_of(db, Activity, entry, parse_id(item))
        today = clock.school_today(db.get_one(School, student.school_id))
        form = service.parse_result(status, done_on, result, place, today)
        service.record_result(db, who, entry, activity, form)
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


@router.post("/gifted/student/{pk}/support")
def support_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
    kind: Short = "",
    title: Annotated[str, Form(max_length=300)] = "",
    planned_on: Short = "",
    amount: Short = "",
) -> Response:
    err = None
    try:
        entry = _entry(db, student)
        service.add_support(db, who, entry, service.parse_support(kind, title, planned_on, amount))
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


@router.post("/gifted/student/{pk}/support/paid")
def support_paid(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.edit")],
    student: Annotated[Student, visible_student("gifted.edit")],
    item: Short = "",
    paid_on: Short = "",
    amount: Short = "",
) -> Response:
    err = None
    try:
        entry = _entry(db, student)
        row: Support = service.item_of(db, Support, entry, parse_id(item))
        today = clock.school_today(db.get_one(School, student.school_id))
        service.record_payment(db, who, entry, row, paid_on, amount, today)
    except GiftedError as e:
        err = e
    return _done(request, db, who, student, clock, err)


# ----------------------------------------------------------------------------- reminders


@router.get("/gifted/reminders")
def reminders_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.view")],
    schools: Annotated[list[School], visible_schools("gifted.view")],
) -> Response:
    ids = {s.id for s in schools}
    today = clock.today_in(None)
    due = [
        r
        for r in service.due_items(db, ids, today, REMIND_DAYS)
        if who.can(
            "gifted.view",
            school_id=r.student.school_id,
            class_pk=r.student.class_pk,
            student_pk=r.student.pk,
        )
    ]
    audit(db, who, "view", "gifted", summary=f"reminders, {len(due)} due")
    db.commit()
    return render(
        request,
        "gifted/reminders.html",
        {"due": due, "today": today, "days": REMIND_DAYS, "schools": {s.id: s for s in schools}},
    )


# ------------------------------------------------------------------------------- reports


def _t(request: Request) -> Any:
    lang = request_lang(request)
    return lambda m: gettext(m, lang)


def statistics_sheets(
    t: Any, year: int, rows: list[rules.RegionYear], names: dict[str, str]
) -> list[Sheet]:
    """Two tables: the children by the decree's groups with their prizes, and the year's
    activities and support by kind (one table of all would not fit a landscape page)."""
    kinds = list(service.ACTIVITY_LABELS)
    sups = list(service.SUPPORT_LABELS)
    total = rules.statistics_total(rows)
    subtitle = [
        f"{t(N_('Year'))}: {year}",
        t(N_("Decree No. 997: gifted children from rural areas, large and low-income families")),
    ]

    def children(r: rules.RegionYear, label: str) -> list[Cell]:
        return [
            label,
            r.gifted,
            r.rural,
            r.urban_large_or_low_income,
            r.urban_large_family,
            r.urban_low_income,
            r.other,
            r.prize_winners,
            r.prizes,
        ]

    def work(r: rules.RegionYear, label: str) -> list[Cell]:
        return [
            label,
            *[r.activities_done.get(k, 0) for k in kinds],
            r.activities_total,
            *[round(r.support_paid_tiyn.get(k, 0) / 100, 2) for k in sups],
            round(r.support_total_tiyn / 100, 2),
        ]

    return [
        Sheet(
            title=t(N_("Gifted children: annual statistics by region")),
            name=t(N_("Statistics")),
            subtitle=subtitle,
            headers=[
                t(N_("Region")),
                t(N_("In the registry")),
                t(N_("Rural")),
                t(N_("Urban, large or low-income family")),
                t(N_("of them large families")),
                t(N_("of them low-income")),
                t(N_("Other")),
                t(N_("Prize-winners")),
                t(N_("Prize places")),
            ],
            rows=[children(r, names.get(r.region, r.region)) for r in rows],
            totals=children(total, t(N_("Total"))),
        ),
        Sheet(
            title=t(N_("Activities done and support paid in the year")),
            name=t(N_("Activities and support")),
            subtitle=subtitle,
            headers=[
                t(N_("Region")),
                *[t(service.ACTIVITY_LABELS[k]) for k in kinds],
                t(N_("Activities, total")),
                *[f"{t(service.SUPPORT_LABELS[k])}, ₸" for k in sups],
                t(N_("Support, total, ₸")),
            ],
            rows=[work(r, names.get(r.region, r.region)) for r in rows],
            totals=work(total, t(N_("Total"))),
        ),
    ]


def teachers_sheet(t: Any, year: int, rows: list[service.TeacherRow]) -> Sheet:
    return Sheet(
        title=t(N_("Teachers who prepared prize-winners")),
        name=t(N_("Teachers")),
        subtitle=[f"{t(N_('Year'))}: {year}"],
        headers=[
            t(N_("Teacher")),
            t(N_("School")),
            t(N_("Prize places")),
            t(N_("First places")),
            t(N_("Children")),
            t(N_("Results")),
        ],
        rows=[
            [
                r.name,
                r.school,
                r.award.prizes,
                r.award.firsts,
                len(r.award.students),
                "; ".join(r.award.what)[:500],
            ]
            for r in rows
        ],
    )


def _export(sheets: list[Sheet], fmt: str, *parts: str) -> Response:
    if fmt == "xlsx":
        data, ctype = to_xlsx(sheets), XLSX_TYPE
    else:
        data, ctype = to_pdf(sheets, subject=sheets[0].title), PDF_TYPE
    return Response(
        data, media_type=ctype, headers={"Content-Disposition": disposition(*parts, ext=fmt)}
    )


@router.get("/gifted/statistics")
def statistics_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.report")],
    year: Annotated[str | None, Query(max_length=6)] = None,
    format: Annotated[str, Query(max_length=6)] = "html",
) -> Response:
    y = _year(year, clock.today_in(None))
    allowed = who.schools("gifted.report")
    rows = service.annual_statistics(db, allowed, y)
    names = service.region_names(db)
    fmt = _fmt(format)
    audit(db, who, "view" if fmt == "html" else "export", "gifted", summary=f"statistics {y}")
    db.commit()
    sheets = statistics_sheets(_t(request), y, rows, names)
    if fmt != "html":
        return _export(sheets, fmt, "gifted-statistics", str(y))
    return render(
        request,
        "gifted/statistics.html",
        {"year": y, "sheets": sheets, "years": range(y - 3, y + 2), "page": "statistics"},
    )


@router.get("/gifted/teachers")
def teachers_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("gifted.report")],
    year: Annotated[str | None, Query(max_length=6)] = None,
    format: Annotated[str, Query(max_length=6)] = "html",
) -> Response:
    y = _year(year, clock.today_in(None))
    rows = service.prize_teachers(db, who.schools("gifted.report"), y)
    fmt = _fmt(format)
    audit(db, who, "view" if fmt == "html" else "export", "gifted", summary=f"teachers {y}")
    db.commit()
    sheets = [teachers_sheet(_t(request), y, rows)]
    if fmt != "html":
        return _export(sheets, fmt, "gifted-teachers", str(y))
    return render(
        request,
        "gifted/statistics.html",
        {"year": y, "sheets": sheets, "years": range(y - 3, y + 2), "page": "teachers"},
    )
