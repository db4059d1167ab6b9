"""Console pages of the roster: students (list, card, edit, guardians), classes, staff, and the
roster import (upload -> preview with every error -> confirm, all rows or none)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.accounts.access import Grant, Principal, Role
from server.accounts.service import AccountError, create_user, invite
from server.audit.service import audit
from server.clock import ClockDep
from server.console.params import Id, SchoolId, parse_id
from server.console.scope import (
    classes_in_scope,
    pick_school,
    school_in_scope,
    schools_in_scope,
    visible_schools,
    visible_student,
)
from server.console.web import (
    Db,
    NotFound,
    Settings,
    ensure,
    nav_item,
    redirect,
    redirect_done,
    render,
    request_lang,
    require,
    tr,
)
from server.models import School
from server.people.models import Guardian, SchoolClass, StaffMember, Student, StudentGuardian
from server.people.service import current_consent
from server.roster import previews, rules, service
from server.roster.models import StaffClass
from server.roster.rules import N_, RawRow, RowError
from server.roster.service import RosterError

router = APIRouter()
nav_item("students.view", "/students", "Students", 20)
nav_item("students.view", "/classes", "Classes", 21)
nav_item("staff.edit", "/staff", "Staff", 22)
nav_item("roster.import", "/roster/import", "Import roster", 23)

PAGE = 100  # students per page
Viewed = Annotated[Student, visible_student("students.view")]
Edited = Annotated[Student, visible_student("students.edit")]


def _pick_school(schools: list[School], wanted: str | None) -> School | None:
    """The school asked for (404 if not visible), the first one, or None if none is visible."""
    return pick_school(schools, wanted) if wanted or schools else None


# ----------------------------------------------------------------------------------- helpers


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _localize(request: Request, e: RowError) -> str:
    return e.localized(lambda m: tr(request, m))


def _date(text: str) -> dt.date | None:
    return rules.parse_date(text) if text.strip() else None


# ----------------------------------------------------------------------------------- students


@router.get("/students")
def students_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.view")],
    schools: Annotated[list[School], visible_schools("students.view")],
    school: Annotated[str | None, Query(max_length=64)] = None,
    class_pk: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
    inactive: Annotated[str, Query(max_length=3)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    sort: Annotated[str, Query(max_length=8)] = "class",
) -> Response:
    current = _pick_school(schools, school)
    found = service.StudentPage([], 0, 1, 1)
    sort = sort if sort in service.SORTS else "class"
    classes: list[SchoolClass] = []
    cls_pk = parse_id(class_pk)
    if current is not None:
        classes = classes_in_scope(db, who, "students.view", current.id)
        visible = [c.pk for c in classes]
        if cls_pk is not None and cls_pk not in visible:
            # A class of the school this user may not see is 404; a class left in the query
            # from another school (the school was just switched) is simply dropped.
            other = db.get(SchoolClass, cls_pk)
            ensure(other is None or other.school_id != current.id)
            cls_pk = None
        found = service.find_students(
            db,
            current.id,
            [cls_pk] if cls_pk else visible,
            q.strip(),
            with_inactive=bool(inactive),
            page=page,
            per_page=PAGE,
            sort=sort,
        )
        audit(
            db,
            who,
            "view",
            "students",
            school_id=current.id,
            summary=f"list, page {found.page}, {len(found.rows)} rows",
        )
        db.commit()
    can_edit = current is not None and who.can("students.edit", school_id=current.id)
    return render(
        request,
        "roster/students.html",
        {
            "schools": schools,
            "school": current,
            "classes": classes,
            "class_pk": cls_pk,
            "q": q,
            "inactive": bool(inactive),
            "rows": found.rows,
            "found": found,
            "sort": sort,
            "can_edit": can_edit,
            "can_import": current is not None and who.can("roster.import", school_id=current.id),
        },
    )


def _card_context(db: Session, who: Principal, st: Student) -> dict[str, Any]:
    cls = db.get_one(SchoolClass, st.class_pk)
    guardians = list(
        db.execute(
            select(Guardian, StudentGuardian.relation)
            .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
            .where(StudentGuardian.student_pk == st.pk)
            .order_by(Guardian.pk)
        ).all()
    )
    consents = [(kind.value, current_consent(db, st.pk, kind)) for kind in ConsentKind]
    can_edit = who.can(
        "students.edit", school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk
    )
    return {
        "st": st,
        "cls": cls,
        "school": db.get(School, st.school_id),
        "guardians": guardians,
        "consents": consents,
        "can_edit": can_edit,
        "classes": classes_in_scope(db, who, "students.edit", st.school_id) if can_edit else [],
        "links": [
            (url, label)
            for perm, url, label in (
                ("consents.edit", f"/students/{st.pk}/consents", N_("Consents")),
                ("cards.block", f"/students/{st.pk}/cards", N_("Cards")),
                ("categories.view", f"/students/{st.pk}/categories", N_("Social categories")),
            )
            if who.can(perm, school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk)
        ],
        "error": None,
        "notice": None,
        "invite_url": None,
    }


@router.get("/students/{pk}")
def student_card(
    request: Request, db: Db, who: Annotated[Principal, require("students.view")], st: Viewed
) -> Response:
    ctx = _card_context(db, who, st)
    audit(
        db, who, "view", "student", student_pk=st.pk, school_id=st.school_id, summary="student card"
    )
    db.commit()
    return render(request, "roster/student.html", ctx)


def _card_after(
    request: Request,
    db: Session,
    who: Principal,
    st: Student,
    *,
    error: str | None = None,
    notice: str | None = None,
    invite_url: str | None = None,
) -> Response:
    ctx = _card_context(db, who, st)
    ctx.update(error=error, notice=notice, invite_url=invite_url)
    return render(request, "roster/student.html", ctx, 400 if error else 200)


@router.post("/students/{pk}")
def student_edit(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("students.edit")],
    st: Edited,
    surname: Annotated[str, Form(max_length=100)],
    given_name: Annotated[str, Form(max_length=100)],
    class_pk: Annotated[Id, Form()],
    patronymic: Annotated[str, Form(max_length=100)] = "",
    birth_date: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    birth = _date(birth_date)
    if birth_date.strip() and birth is None:
        return _card_after(request, db, who, st, error=tr(request, rules.E_DATE))
    if birth is not None and not rules.birth_date_ok(
        birth, clock.school_today(db.get(School, st.school_id))
    ):
        return _card_after(request, db, who, st, error=tr(request, rules.E_BIRTH_RANGE))
    cls = db.get(SchoolClass, class_pk)
    ensure(cls is not None and who.can("students.edit", school_id=cls.school_id, class_pk=cls.pk))
    try:
        changed = service.edit_student(
            db,
            who,
            st,
            surname=surname,
            given_name=given_name,
            patronymic=patronymic,
            birth_date=birth,
            class_pk=class_pk,
        )
    except RosterError as err:
        db.rollback()
        return _card_after(request, db, who, st, error=tr(request, str(err)))
    db.commit()
    return _card_after(
        request,
        db,
        who,
        st,
        notice=tr(request, "Saved.") if changed else tr(request, "Nothing changed."),
    )


@router.post("/students/{pk}/active")
def student_active(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.edit")],
    st: Edited,
    active: Annotated[str, Form(max_length=3)],
) -> Response:
    service.set_active(db, who, st, active == "1")
    db.commit()
    return redirect(f"/students/{st.pk}")


@router.post("/students/{pk}/guardians")
def guardian_add(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, require("students.edit")],
    st: Edited,
    full_name: Annotated[str, Form(max_length=200)],
    phone: Annotated[str, Form(max_length=40)] = "",
    email: Annotated[str, Form(max_length=200)] = "",
    relation: Annotated[str, Form(max_length=32)] = "parent",
    login: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    try:
        g = service.add_guardian(
            db, who, st, full_name=full_name, phone=phone, email=email, relation=relation
        )
        url = _invite_parent(request, db, settings, who, st, g, login) if login.strip() else None
    except (RosterError, AccountError) as err:
        db.rollback()
        return _card_after(request, db, who, st, error=tr(request, str(err)))
    db.commit()
    return _card_after(request, db, who, st, notice=tr(request, "Guardian added."), invite_url=url)


def _invite_parent(
    request: Request,
    db: Session,
    settings: Any,
    who: Principal,
    st: Student,
    g: Guardian,
    login: str,
) -> str:
    """A parent console account for the guardian, and a one-time link to set its password."""
    if g.user_pk is not None:
        raise RosterError(rules.N_("This guardian has a console account already."))
    user = create_user(
        db,
        login,
        g.full_name,
        [Grant(Role.PARENT)],
        email=g.email,
        phone=g.phone,
        lang=request_lang(request),
    )
    g.user_pk = user.pk
    token = invite(db, user, who.user_pk, settings.console_invite_ttl_s)
    audit(
        db,
        who,
        "change",
        "guardian",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="parent account invited",
    )
    return f"{settings.console_base_url.rstrip('/')}/invite/{token}"


@router.post("/students/{pk}/guardians/{gpk}/invite")
def guardian_invite(
    request: Request,
    db: Db,
    settings: Settings,
    who: Annotated[Principal, require("students.edit")],
    st: Edited,
    gpk: Id,
    login: Annotated[str, Form(min_length=1, max_length=100)],
) -> Response:
    ensure(db.get(StudentGuardian, (st.pk, gpk)) is not None)
    g = db.get_one(Guardian, gpk)
    try:
        url = _invite_parent(request, db, settings, who, st, g, login)
    except (RosterError, AccountError) as err:
        db.rollback()
        return _card_after(request, db, who, st, error=tr(request, str(err)))
    db.commit()
    return _card_after(request, db, who, st, invite_url=url)


@router.post("/students/{pk}/guardians/{gpk}/remove")
def guardian_remove(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.edit")],
    st: Edited,
    gpk: Id,
) -> Response:
    try:
        service.remove_guardian(db, who, st, gpk)
    except RosterError:
        db.rollback()
        ensure(False)
    db.commit()
    return redirect(f"/students/{st.pk}")


@router.post("/students")
def student_new(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("students.edit")],
    school: Annotated[str, Form(max_length=64)],
    surname: Annotated[str, Form(max_length=200)] = "",
    given_name: Annotated[str, Form(max_length=200)] = "",
    patronymic: Annotated[str, Form(max_length=200)] = "",
    birth_date: Annotated[str, Form(max_length=20)] = "",
    class_name: Annotated[str, Form(max_length=32)] = "",
    guardian_name: Annotated[str, Form(max_length=200)] = "",
    guardian_phone: Annotated[str, Form(max_length=40)] = "",
    guardian_email: Annotated[str, Form(max_length=200)] = "",
    consent_given_by: Annotated[str, Form(max_length=200)] = "",
    consent_document: Annotated[str, Form(max_length=200)] = "",
    consent_date: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """One new student: checked exactly like one row of an import (consent first)."""
    sch = school_in_scope(db, who, "students.edit", school, reach="whole")
    cells = {
        "surname": surname,
        "given_name": given_name,
        "patronymic": patronymic,
        "birth_date": birth_date,
        "class": class_name,
        "guardian_name": guardian_name,
        "guardian_phone": guardian_phone,
        "guardian_email": guardian_email,
        "consent_given_by": consent_given_by,
        "consent_document": consent_document,
        "consent_date": consent_date,
    }
    service.lock_school(db, school)
    _checked, plan = service.check(db, school, [RawRow(1, cells)], clock.school_today(sch))
    if plan.errors or not plan.rows or plan.rows[0].action != "create":
        errors = [f"{e.column}: {_localize(request, e)}" for e in plan.errors] or [
            tr(request, "This student is on the roster already.")
        ]
        return render(
            request,
            "roster/new_student.html",
            {
                "school_id": school,
                "errors": errors,
                "form": cells,
                "classes": _school_classes(db, school),
            },
            400,
        )
    result = service.apply_plan(db, plan, who, summary="one student added; ")
    db.commit()
    return redirect(f"/students/{result.student_pks[0]}")


@router.get("/students/new/{school}")
def student_new_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.edit")],
    school: SchoolId,
) -> Response:
    school_in_scope(db, who, "students.edit", school, reach="whole")
    ctx = {"school_id": school, "errors": [], "form": {}, "classes": _school_classes(db, school)}
    return render(request, "roster/new_student.html", ctx)


def _school_classes(db: Session, school: str) -> list[SchoolClass]:
    return list(
        db.execute(
            select(SchoolClass)
            .where(SchoolClass.school_id == school)
            .order_by(SchoolClass.grade, SchoolClass.name)
        ).scalars()
    )


# ----------------------------------------------------------------------------------- classes


def _classes_page(
    request: Request,
    db: Session,
    who: Principal,
    school: School | None,
    schools: list[School],
    error: str | None = None,
) -> Response:
    rows: list[Any] = []
    if school is not None:
        counts = dict(
            db.execute(
                select(Student.class_pk, func.count())
                .where(Student.school_id == school.id, Student.active.is_(True))
                .group_by(Student.class_pk)
            ).all()
        )
        rows = [
            (c, counts.get(c.pk, 0)) for c in classes_in_scope(db, who, "students.view", school.id)
        ]
    return render(
        request,
        "roster/classes.html",
        {
            "schools": schools,
            "school": school,
            "rows": rows,
            "can_edit": school is not None and who.whole_school("students.edit", school.id),
            "error": error,
        },
        400 if error else 200,
    )


@router.get("/classes")
def classes_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.view")],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    schools = schools_in_scope(db, who, "students.view")
    current = _pick_school(schools, school)
    return _classes_page(request, db, who, current, schools)


@router.post("/classes")
def classes_save(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("students.edit")],
    school: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=32)],
    grade: Annotated[int, Form()],
    shift: Annotated[int, Form()],
    pk: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school_in_scope(db, who, "students.edit", school, reach="whole")
    cls_pk = parse_id(pk)
    if cls_pk is not None:
        cls = db.get(SchoolClass, cls_pk)
        ensure(cls is not None and cls.school_id == school)
    try:
        service.save_class(db, school, name=name, grade=grade, shift=shift, pk=cls_pk)
    except RosterError as err:
        db.rollback()
        schools = schools_in_scope(db, who, "students.view")
        return _classes_page(
            request, db, who, _pick_school(schools, school), schools, tr(request, str(err))
        )
    db.commit()
    return redirect(f"/classes?school={school}")


# ------------------------------------------------------------------------------------- staff


def _staff_page(
    request: Request,
    db: Session,
    who: Principal,
    school: School | None,
    schools: list[School],
    error: str | None = None,
) -> Response:
    rows: list[Any] = []
    classes: list[SchoolClass] = []
    if school is not None:
        classes = classes_in_scope(db, who, "staff.edit", school.id)
        names = {c.pk: c.name for c in classes}
        links: dict[int, list[int]] = {}
        for s_pk, c_pk in db.execute(
            select(StaffClass.staff_pk, StaffClass.class_pk)
            .join(StaffMember, StaffMember.pk == StaffClass.staff_pk)
            .where(StaffMember.school_id == school.id)
        ):
            links.setdefault(s_pk, []).append(c_pk)
        members = db.execute(
            select(StaffMember)
            .where(StaffMember.school_id == school.id)
            .order_by(StaffMember.full_name)
        ).scalars()
        rows = [
            (
                m,
                [r for r in m.edge_roles.split(",") if r],
                links.get(m.pk, []),
                [names.get(c, "") for c in links.get(m.pk, [])],
            )
            for m in members
        ]
    return render(
        request,
        "roster/staff.html",
        {
            "schools": schools,
            "school": school,
            "rows": rows,
            "classes": classes,
            "roles": service.EDGE_ROLES,
            "error": error,
        },
        400 if error else 200,
    )


@router.get("/staff")
def staff_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    schools = schools_in_scope(db, who, "staff.edit")
    current = _pick_school(schools, school)
    return _staff_page(request, db, who, current, schools)


@router.post("/staff")
def staff_save(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("staff.edit")],
    school: Annotated[str, Form(max_length=64)],
    ref: Annotated[str, Form(max_length=64)],
    full_name: Annotated[str, Form(max_length=200)],
    position: Annotated[str, Form(max_length=100)] = "",
    roles: Annotated[list[str] | None, Form(max_length=20)] = None,
    classes: Annotated[list[int] | None, Form(max_length=50)] = None,
    active: Annotated[str, Form(max_length=3)] = "1",
    pk: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    school_in_scope(db, who, "staff.edit", school, reach="whole")
    member_pk = parse_id(pk)
    if member_pk is not None:
        member = db.get(StaffMember, member_pk)
        ensure(member is not None and member.school_id == school)
    try:
        service.save_staff(
            db,
            school,
            ref=ref,
            full_name=full_name,
            position=position,
            roles=roles or [],
            class_pks=classes or [],
            active=active == "1",
            pk=member_pk,
        )
    except RosterError as err:
        db.rollback()
        schools = schools_in_scope(db, who, "staff.edit")
        return _staff_page(
            request, db, who, _pick_school(schools, school), schools, tr(request, str(err))
        )
    db.commit()
    return redirect(f"/staff?school={school}")


# ------------------------------------------------------------------------------------ import


@router.get("/roster/import")
def import_page(
    request: Request,
    db: Db,
    who: Annotated[Principal, require("roster.import")],
    school: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    schools = [
        s
        for s in schools_in_scope(db, who, "roster.import")
        if who.whole_school("roster.import", s.id)
    ]
    return render(
        request,
        "roster/import.html",
        {
            "schools": schools,
            "school_id": school,
            "columns": rules.COLUMNS,
            "aliases": rules.ALIASES,
            "required": rules.REQUIRED,
            "errors": [],
        },
    )


@router.get("/roster/export")
def export_csv(
    db: Db,
    who: Annotated[Principal, require("roster.import")],
    school: Annotated[str, Query(max_length=64)],
) -> Response:
    """The school's roster in the import's format (children's data: audited as an export)."""
    school_in_scope(db, who, "roster.import", school, reach="whole")
    rows = service.export_rows(db, school)
    audit(
        db, who, "export", "roster", school_id=school, summary=f"roster CSV, {len(rows)} students"
    )
    db.commit()
    return Response(
        rules.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="roster-{_safe(school)}.csv"'},
    )


@router.get("/roster/import/template.csv")
def template_csv(_who: Annotated[Principal, require("roster.import")]) -> Response:
    return Response(
        rules.template_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="roster-template.csv"'},
    )


@router.get("/roster/import/template.xlsx")
def template_xlsx(_who: Annotated[Principal, require("roster.import")]) -> Response:
    return Response(
        rules.template_xlsx(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"content-disposition": 'attachment; filename="roster-template.xlsx"'},
    )


@router.post("/roster/import")
def import_upload(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("roster.import")],
    school: Annotated[str, Form(max_length=64)],
    file: Annotated[UploadFile, File()],
) -> Response:
    sch = school_in_scope(db, who, "roster.import", school, reach="whole")
    data = file.file.read(rules.MAX_BYTES + 1)
    parsed = rules.parse_file((file.filename or "")[:200], data)
    pv = previews.preview_upload(db, who, sch.id, parsed, clock.school_today(sch), clock.now_ms())
    db.commit()
    return render(
        request,
        "roster/preview.html",
        {
            "school_id": sch.id,
            "parsed": parsed,
            "plan": pv.plan,
            "errors": [(e.line, e.column, _localize(request, e)) for e in pv.errors],
            "token": pv.token,
        },
        400 if pv.errors else 200,
    )


@router.post("/roster/import/confirm")
def import_confirm(
    request: Request,
    db: Db,
    clock: ClockDep,
    who: Annotated[Principal, require("roster.import")],
    token: Annotated[str, Form(max_length=64)],
    sha256: Annotated[str, Form(max_length=64)],
) -> Response:
    try:
        done = previews.confirm_preview(db, who, token, sha256, clock)
    except previews.PreviewRefused as err:
        db.rollback()
        return _refuse(request, tr(request, str(err)))
    except PermissionError:
        db.rollback()
        raise NotFound() from None
    db.commit()
    r = done.result
    items: list[tuple[str, str]] = [
        (N_("Roster imported"), done.file_name),
        (N_("New"), str(r.created)),
        (N_("Changed"), str(r.updated)),
        (N_("Unchanged"), str(r.unchanged)),
        (N_("New classes"), str(r.classes_created)),
    ]
    if r.version:
        items.append((N_("The school terminals receive the changes as version"), str(r.version)))
    return redirect_done(request, f"/students?school={done.school_id}", *items)


def _refuse(request: Request, message: str) -> Response:
    return render(request, "roster/refused.html", {"message": message}, 409)
