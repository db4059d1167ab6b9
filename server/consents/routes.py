"""Consent pages of a student (/students/{pk}/consents) and social categories
(/students/{pk}/categories, /categories)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from protocol.messages import ConsentKind
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import Clock, ClockDep
from server.consents.categories import (
    CATEGORY_LABELS,
    CategoryError,
    add_membership,
    memberships,
    parse_category_form,
    remove_membership,
    valid_on,
)
from server.consents.models import StudentCategory
from server.consents.service import (
    ConsentError,
    consent_history,
    consent_states,
    current_consents,
    parse_consent_form,
    record_consent,
    templates_deleted_event,
)
from server.console.params import Id, parse_day
from server.console.scope import pick_school, visible_schools, visible_student
from server.console.web import Db, ensure, nav_item, redirect, redirect_done, render, require, tr
from server.models import School
from server.people.models import Guardian, SchoolClass, Student, StudentGuardian

router = APIRouter()
nav_item("consents.edit", "/consents", "Consents", 25)
nav_item("categories.view", "/categories", "Social categories", 40)

N_ = str
KIND_LABELS = {
    ConsentKind.DATA.value: N_("Personal data"),
    ConsentKind.BIOMETRIC.value: N_("Biometrics (face)"),
    ConsentKind.NOTIFICATIONS.value: N_("Notifications to parents"),
    ConsentKind.GIFTED.value: N_("Gifted-children registry"),
    ConsentKind.EQUIPMENT_SURVEY.value: N_("Equipment survey (computer at home, family income)"),
    ConsentKind.TUTORING.value: N_("Tutoring project"),
}


def _consent_page(
    request: Request,
    db: Db,
    who: Principal,
    student: Student,
    clock: Clock,
    *,
    error: ConsentError | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    school = db.get_one(School, student.school_id)
    current = current_consents(db, student.pk)
    # Deletion is due since the biometric withdrawal or, with data withdrawn, since that.
    due = [
        c.recorded_at_ms
        for c in (current["biometric"], current["data"])
        if c is not None and not c.granted
    ]
    ctx = {
        "student": student,
        "cls": db.get_one(SchoolClass, student.class_pk),
        "current": current,
        "history": consent_history(db, student.pk),
        "guardians": list(
            db.execute(
                select(Guardian.full_name)
                .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
                .where(StudentGuardian.student_pk == student.pk)
                .order_by(Guardian.full_name)
            ).scalars()
        ),
        "deleted": templates_deleted_event(db, student, min(due)) if due else None,
        "kinds": KIND_LABELS,
        "error": error,
        "form": form or {"signed_on": clock.school_today(school).isoformat()},
        "zone": school.timezone,
        "can_cards": who.can(
            "cards.block",
            school_id=student.school_id,
            class_pk=student.class_pk,
            student_pk=student.pk,
        ),
        "can_categories": who.can(
            "categories.view",
            school_id=student.school_id,
            class_pk=student.class_pk,
            student_pk=student.pk,
        ),
    }
    return render(request, "consents/student.html", ctx, status)


@router.get("/students/{pk}/consents")
def consents_page(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("consents.edit")],
    student: Annotated[Student, visible_student("consents.edit")],
) -> Response:
    audit(
        db,
        who,
        "view",
        "consent",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="consent records and history",
    )
    db.commit()
    return _consent_page(request, db, who, student, clock)


@router.post("/students/{pk}/consents")
def consents_record(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("consents.edit")],
    student: Annotated[Student, visible_student("consents.edit")],
    kind: Annotated[str, Form(max_length=20)],
    decision: Annotated[str, Form(max_length=20)],
    given_by: Annotated[str, Form(max_length=300)] = "",
    document: Annotated[str, Form(max_length=300)] = "",
    signed_on: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school = db.get_one(School, student.school_id)
    form = {
        "kind": kind,
        "decision": decision,
        "given_by": given_by,
        "document": document,
        "signed_on": signed_on,
    }
    try:
        parsed = parse_consent_form(
            kind, decision, given_by, document, signed_on, clock.school_today(school)
        )
        effects = record_consent(db, who, student, parsed)
    except ConsentError as err:
        db.rollback()
        return _consent_page(request, db, who, student, clock, error=err, form=form, status=400)
    db.commit()
    return redirect_done(
        request,
        f"/students/{student.pk}/consents",
        N_("The consent decision is recorded."),
        *effects,
    )


# ----------------------------------------------------------------------------- categories


def _categories_page(
    request: Request,
    db: Db,
    who: Principal,
    student: Student,
    clock: Clock,
    *,
    error: CategoryError | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    school = db.get_one(School, student.school_id)
    today = clock.school_today(school)
    return render(
        request,
        "consents/categories_student.html",
        {
            "student": student,
            "cls": db.get_one(SchoolClass, student.class_pk),
            "rows": memberships(db, student.pk),
            "labels": CATEGORY_LABELS,
            "today": today,
            "error": error,
            "form": form or {"valid_from": today.isoformat()},
            "can_edit": who.can(
                "categories.edit",
                school_id=student.school_id,
                class_pk=student.class_pk,
                student_pk=student.pk,
            ),
        },
        status,
    )


@router.get("/students/{pk}/categories")
def categories_student(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("categories.view")],
    student: Annotated[Student, visible_student("categories.view")],
) -> Response:
    audit(
        db,
        who,
        "view",
        "category",
        student_pk=student.pk,
        school_id=student.school_id,
        summary="social categories",
    )
    db.commit()
    return _categories_page(request, db, who, student, clock)


@router.post("/students/{pk}/categories")
def categories_add(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("categories.edit")],
    student: Annotated[Student, visible_student("categories.edit")],
    code: Annotated[str, Form(max_length=40)],
    document: Annotated[str, Form(max_length=300)] = "",
    valid_from: Annotated[str, Form(max_length=20)] = "",
    valid_to: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school = db.get_one(School, student.school_id)
    form = {"code": code, "document": document, "valid_from": valid_from, "valid_to": valid_to}
    try:
        parsed = parse_category_form(code, document, valid_from, valid_to)
        add_membership(db, who, student, parsed, clock.school_today(school))
    except CategoryError as err:
        db.rollback()
        return _categories_page(request, db, who, student, clock, error=err, form=form, status=400)
    db.commit()
    return redirect_done(
        request, f"/students/{student.pk}/categories", N_("Saved and sent to the school.")
    )


@router.post("/students/{pk}/categories/{membership_pk}/remove")
def categories_remove(
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("categories.edit")],
    student: Annotated[Student, visible_student("categories.edit")],
    membership_pk: Id,
) -> Response:
    row = db.get(StudentCategory, membership_pk)
    ensure(row is not None and row.student_pk == student.pk)
    assert row is not None
    school = db.get_one(School, student.school_id)
    remove_membership(db, who, student, row, clock.school_today(school))
    db.commit()
    return redirect(f"/students/{student.pk}/categories")


@router.get("/categories")
def categories_list(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("categories.view")],
    schools: Annotated[list[School], visible_schools("categories.view")],
    clock: ClockDep,
    school: Annotated[str | None, Query(max_length=64)] = None,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    chosen = pick_school(schools, school)
    on = parse_day(day) or clock.school_today(chosen)
    rows = valid_on(db, chosen.id, on, who.classes("categories.view", chosen.id))
    audit(
        db,
        who,
        "view",
        "category",
        school_id=chosen.id,
        summary=f"students with social categories on {on.isoformat()}: {len(rows)} row(s)",
    )
    db.commit()
    classes = {c.pk: c.name for c in _classes(db, chosen.id)}
    return render(
        request,
        "consents/categories_list.html",
        {
            "schools": schools,
            "school": chosen,
            "day": on,
            "rows": rows,
            "labels": CATEGORY_LABELS,
            "classes": classes,
            "counts": {
                code: len({s.pk for m, s in rows if m.code == code}) for code in CATEGORY_LABELS
            },
            "error": tr(request, "Not a date; today is shown.")
            if day and on.isoformat() != day
            else None,
        },
    )


def _classes(db: Db, school_id: str) -> list[SchoolClass]:
    return list(db.execute(select(SchoolClass).where(SchoolClass.school_id == school_id)).scalars())


# ------------------------------------------------------------------------ the consent list


@router.get("/consents")
def consents_list(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("consents.edit")],
    schools: Annotated[list[School], visible_schools("consents.edit")],
    school: Annotated[str | None, Query(max_length=64)] = None,
    class_pk: Annotated[Id | None, Query()] = None,
) -> Response:
    """Students in scope with their current consents: who still lacks a parent's signature."""
    chosen = pick_school(schools, school)
    allowed = who.classes("consents.edit", chosen.id)
    classes = [c for c in _classes(db, chosen.id) if allowed is None or c.pk in allowed]
    classes.sort(key=lambda c: (c.grade, c.name))
    ensure(class_pk is None or any(c.pk == class_pk for c in classes))
    shown = {class_pk} if class_pk is not None else {c.pk for c in classes}
    students, state = consent_states(db, chosen.id, sorted(shown))
    audit(
        db,
        who,
        "view",
        "consent",
        school_id=chosen.id,
        summary=f"consent states of {len(students)} student(s)",
    )
    db.commit()
    return render(
        request,
        "consents/list.html",
        {
            "schools": schools,
            "school": chosen,
            "classes": classes,
            "class_pk": class_pk,
            "class_names": {c.pk: c.name for c in classes},
            "students": students,
            "state": state,
            "kinds": KIND_LABELS,
            "missing": sum(1 for s in students if not state[s.pk].get("data")),
        },
    )
