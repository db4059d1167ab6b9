"""Roster operations against the database: plan and apply an import, edit students, classes,
guardians and staff, and publish what the school's edges need through the downlink.

Every function leaves the commit to its caller except ``import_rows`` (one import, one
transaction). A student reaches the edges only while active and with a granted data consent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from protocol.messages import (
    Change,
    StaffRecord,
    StaffRemove,
    StaffUpsert,
    StudentRemove,
    StudentUpsert,
)
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import now_ms
from server.people.models import (
    Consent,
    ConsentKind,
    Guardian,
    SchoolClass,
    StaffMember,
    Student,
    StudentGuardian,
)
from server.people.service import current_consent, has_consent, student_record
from server.roster import rules
from server.roster.models import StaffClass
from server.roster.rules import N_, ClassInfo, RawRow, RosterRow, RowError, class_key
from server.sync.service import append_changes


class RosterError(ValueError):
    """A refused roster operation; the message is an English msgid safe to show."""


# ------------------------------------------------------------------------------- publishing


def student_changes(session: Session, students: Iterable[Student]) -> list[Change]:
    """What the edges get for these students: an upsert while active with data consent
    (consent first), else a removal."""
    out: list[Change] = []
    for st in students:
        if st.active and has_consent(session, st.pk, ConsentKind.DATA):
            out.append(StudentUpsert(student=student_record(session, st)))
        else:
            out.append(StudentRemove(student_id=st.ref))
    return out


def publish_students(session: Session, school_id: str, students: Sequence[Student]) -> None:
    changes = student_changes(session, students)
    if changes:
        append_changes(session, school_id, changes)


# ------------------------------------------------------------------------------------ import


@dataclass(slots=True)
class PlannedRow:
    row: RosterRow
    action: str  # "create" | "update" | "unchanged"
    student_pk: int | None = None
    ref: str = ""
    changes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ImportPlan:
    school_id: str
    rows: list[PlannedRow]
    errors: list[RowError]
    new_classes: list[ClassInfo]

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for r in self.rows:
            h.update(f"{r.row.line}|{r.action}|{r.student_pk}|{','.join(r.changes)}\n".encode())
        for c in self.new_classes:
            h.update(f"class|{c.name}|{c.grade}|{c.shift}\n".encode())
        h.update(rules.rows_digest(r.row for r in self.rows).encode())
        return h.hexdigest()


@dataclass(slots=True)
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    classes_created: int = 0
    student_pks: list[int] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    version: int | None = None  # the school's downlink version that carries the import

    @property
    def ok(self) -> bool:
        return not self.errors


def class_infos(session: Session, school_id: str) -> dict[str, SchoolClass]:
    return {
        class_key(c.name): c
        for c in session.execute(
            select(SchoolClass).where(SchoolClass.school_id == school_id)
        ).scalars()
    }


def check(
    session: Session, school_id: str, raws: Iterable[RawRow], today: dt.date
) -> tuple[rules.CheckedRoster, ImportPlan]:
    classes = class_infos(session, school_id)
    checked = rules.check_rows(
        raws, {k: ClassInfo(c.name, c.grade, c.shift) for k, c in classes.items()}, today
    )
    plan = plan_import(session, school_id, checked.rows, list(checked.new_classes.values()))
    plan.errors = sorted(
        [*checked.errors, *plan.errors],
        key=lambda e: (e.line, rules.COLUMNS.index(e.column) if e.column in rules.COLUMNS else -1),
    )
    return checked, plan


def _find_guardian(
    session: Session, student_pk: int | None, school_id: str, row: RosterRow
) -> tuple[Guardian | None, bool]:
    """The row's guardian among the student's guardians (linked=True), else a sibling's guardian
    with the same phone in this school (linked=False)."""
    if student_pk is not None:
        mine = list(
            session.execute(
                select(Guardian)
                .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
                .where(StudentGuardian.student_pk == student_pk)
            ).scalars()
        )
        for g in mine:
            if (
                (row.guardian_phone and g.phone == row.guardian_phone)
                or (row.guardian_email and g.email.lower() == row.guardian_email)
                or g.full_name.casefold() == row.guardian_name.casefold()
            ):
                return g, True
    if row.guardian_phone:
        sibling = session.execute(
            select(Guardian)
            .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
            .join(Student, Student.pk == StudentGuardian.student_pk)
            .where(Student.school_id == school_id, Guardian.phone == row.guardian_phone)
            .limit(1)
        ).scalar_one_or_none()
        if sibling is not None:
            return sibling, False
    return None, False


def _match(
    session: Session, school_id: str, row: RosterRow, errors: list[RowError]
) -> Student | None:
    if row.ref:
        st = session.execute(select(Student).where(Student.ref == row.ref)).scalar_one_or_none()
        if st is not None and st.school_id != school_id:
            errors.append(
                rules.row_error(row.line, "student_ref", rules.E_REF_OTHER_SCHOOL, ref=row.ref)
            )
            return None
        return st
    q = select(Student).where(
        Student.school_id == school_id,
        func.lower(Student.surname) == row.surname.lower(),
        func.lower(Student.given_name) == row.given_name.lower(),
    )
    if row.patronymic:
        q = q.where(func.lower(Student.patronymic) == row.patronymic.lower())
    if row.birth_date is not None:
        q = q.where(Student.birth_date == row.birth_date)
    found = list(session.execute(q.limit(2)).scalars())
    if len(found) > 1:
        errors.append(rules.row_error(row.line, "surname", rules.E_AMBIGUOUS))
        return None
    return found[0] if found else None


def _consent_needed(
    session: Session, student_pk: int | None, row: RosterRow, errors: list[RowError]
) -> bool:
    if student_pk is None:
        return True
    c = current_consent(session, student_pk, ConsentKind.DATA)
    if c is None:
        return True
    if not c.granted:
        if c.signed_on >= row.consent_date:
            errors.append(
                rules.row_error(
                    row.line, "consent_date", rules.E_WITHDRAWN, date=c.signed_on.isoformat()
                )
            )
        return True
    if c.signed_on > row.consent_date:
        return False  # a newer consent is already on record
    return (c.given_by, c.document, c.signed_on) != (
        row.consent_given_by,
        row.consent_document,
        row.consent_date,
    )


def plan_import(
    session: Session, school_id: str, rows: Sequence[RosterRow], new_classes: Sequence[ClassInfo]
) -> ImportPlan:
    """What applying ``rows`` would do, row by row; errors that only the database shows."""
    classes = class_infos(session, school_id)
    errors: list[RowError] = []
    planned: list[PlannedRow] = []
    seen_pks: dict[int, int] = {}
    for row in rows:
        n_err = len(errors)
        st = _match(session, school_id, row, errors)
        if st is not None and st.pk in seen_pks:
            errors.append(
                rules.row_error(row.line, "surname", rules.E_DUP_PERSON, other=seen_pks[st.pk])
            )
        consent = _consent_needed(session, st.pk if st is not None else None, row, errors)
        if len(errors) > n_err:
            continue
        if st is None:
            planned.append(PlannedRow(row, "create", None, row.ref, ["new"]))
            continue
        seen_pks[st.pk] = row.line
        changes: list[str] = []
        if st.surname != row.surname:
            changes.append("surname")
        if st.given_name != row.given_name:
            changes.append("given_name")
        if row.patronymic and st.patronymic != row.patronymic:
            changes.append("patronymic")
        if row.birth_date is not None and st.birth_date != row.birth_date:
            changes.append("birth_date")
        cls = classes.get(class_key(row.class_name))
        if cls is None or cls.pk != st.class_pk:
            changes.append("class")
        if not st.active:
            changes.append("active")
        if row.guardian_name:
            g, linked = _find_guardian(session, st.pk, school_id, row)
            if (
                g is None
                or not linked
                or (row.guardian_phone and g.phone != row.guardian_phone)
                or (row.guardian_email and g.email.lower() != row.guardian_email)
            ):
                changes.append("guardian")
        if consent:
            changes.append("consent")
        planned.append(
            PlannedRow(row, "update" if changes else "unchanged", st.pk, st.ref, changes)
        )
    return ImportPlan(school_id, planned, errors, list(new_classes))


def _new_ref(session: Session, taken: set[str]) -> str:
    """A stable id for the wire: random, never derived from a name or an IIN."""
    while True:
        ref = "st-" + secrets.token_hex(6)
        if (
            ref not in taken
            and session.execute(select(Student.pk).where(Student.ref == ref)).first() is None
        ):
            taken.add(ref)
            return ref


def apply_plan(
    session: Session, plan: ImportPlan, who: Principal | None, summary: str = ""
) -> ImportResult:
    """Writes the plan (the caller commits). Refuses a plan with errors."""
    if plan.errors:
        raise RosterError(N_("a roster with errors cannot be imported"))
    school_id = plan.school_id
    now = now_ms()
    result = ImportResult()
    for info in plan.new_classes:
        session.add(
            SchoolClass(school_id=school_id, name=info.name, grade=info.grade, shift=info.shift)
        )
        result.classes_created += 1
    session.flush()
    classes = class_infos(session, school_id)
    taken: set[str] = set()
    touched: list[tuple[Student, PlannedRow]] = []
    for p in plan.rows:
        row = p.row
        if p.action == "unchanged":
            result.unchanged += 1
            continue
        cls = classes[class_key(row.class_name)]
        if p.action == "create":
            st = Student(
                ref=row.ref or _new_ref(session, taken),
                school_id=school_id,
                class_pk=cls.pk,
                surname=row.surname,
                given_name=row.given_name,
                patronymic=row.patronymic,
                birth_date=row.birth_date,
                active=True,
                created_at_ms=now,
                updated_at_ms=now,
            )
            session.add(st)
            session.flush()
            result.created += 1
        else:
            assert p.student_pk is not None
            st = session.get_one(Student, p.student_pk)
            st.surname, st.given_name = row.surname, row.given_name
            if row.patronymic:
                st.patronymic = row.patronymic
            if row.birth_date is not None:
                st.birth_date = row.birth_date
            st.class_pk = cls.pk
            st.active = True
            st.updated_at_ms = now
            result.updated += 1
        if row.guardian_name:
            _upsert_guardian(session, st, school_id, row)
        if "consent" in p.changes or p.action == "create":
            session.add(
                Consent(
                    student_pk=st.pk,
                    kind=ConsentKind.DATA.value,
                    granted=True,
                    given_by=row.consent_given_by,
                    document=row.consent_document,
                    signed_on=row.consent_date,
                    recorded_by=who.user_pk if who is not None else None,
                    recorded_at_ms=now,
                )
            )
        touched.append((st, p))
    session.flush()
    if touched:
        delta = append_changes(
            session, school_id, student_changes(session, [st for st, _ in touched])
        )
        result.version = delta.version
    for st, p in touched:
        result.student_pks.append(st.pk)
        what = "created" if p.action == "create" else "fields " + ", ".join(p.changes)
        doc = (
            f"; data consent document {p.row.consent_document}"
            if "consent" in p.changes or p.action == "create"
            else ""
        )
        audit(
            session,
            who,
            "change",
            "student",
            student_pk=st.pk,
            school_id=school_id,
            summary=f"roster import: {what}{doc}",
        )
    audit(
        session,
        who,
        "import",
        "roster",
        school_id=school_id,
        summary=(
            f"{summary}created {result.created}, updated {result.updated}, "
            f"unchanged {result.unchanged}, classes created {result.classes_created}"
        ),
    )
    session.flush()
    return result


def _upsert_guardian(session: Session, st: Student, school_id: str, row: RosterRow) -> None:
    g, linked = _find_guardian(session, st.pk, school_id, row)
    if g is None:
        g = Guardian(
            full_name=row.guardian_name, phone=row.guardian_phone, email=row.guardian_email
        )
        session.add(g)
        session.flush()
    else:
        if row.guardian_phone:
            g.phone = row.guardian_phone
        if row.guardian_email:
            g.email = row.guardian_email
    if not linked:
        session.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
        session.flush()


def raw_rows(rows: Iterable[Mapping[str, object]]) -> list[RawRow]:
    """Rows given as {column: value} (line numbers as in a file with a header: 2, 3, ...)."""
    out = []
    for i, r in enumerate(rows, start=2):
        cells = {}
        for k, v in r.items():
            if isinstance(v, dt.date):
                cells[k] = v.isoformat()
            else:
                cells[k] = "" if v is None else str(v).strip()
        out.append(RawRow(i, cells))
    return out


def import_rows(
    session: Session,
    school_id: str,
    rows: Iterable[Mapping[str, object]],
    who: Principal | None = None,
    *,
    today: dt.date | None = None,
    commit: bool = True,
) -> ImportResult:
    """Imports a school's roster from Python (the demo seeds its school so): all rows or
    nothing. ``rows`` are {column: value} mappings with the file's column names."""
    raws = raw_rows(rows)
    unknown = {k for r in raws for k in r.cells if k not in rules.COLUMNS}
    if unknown:
        return ImportResult(
            errors=[rules.row_error(1, k, rules.E_UNKNOWN_COLUMN) for k in sorted(unknown)]
        )
    _checked, plan = check(session, school_id, raws, today or dt.date.today())
    if plan.errors:
        return ImportResult(errors=plan.errors)
    try:
        result = apply_plan(session, plan, who)
    except Exception:
        session.rollback()
        raise
    if commit:
        session.commit()
    return result


# ----------------------------------------------------------------------------------- staff


def staff_record(session: Session, member: StaffMember) -> StaffRecord:
    classes = [
        name
        for (name,) in session.execute(
            select(SchoolClass.name)
            .join(StaffClass, StaffClass.class_pk == SchoolClass.pk)
            .where(StaffClass.staff_pk == member.pk)
            .order_by(SchoolClass.name)
        )
    ]
    roles = [r for r in member.edge_roles.split(",") if r]
    return StaffRecord(
        id=member.ref, roles=roles, classes=classes, display_name=member.full_name[:500]
    )


def staff_change(session: Session, member: StaffMember) -> Change:
    if member.active:
        return StaffUpsert(staff=staff_record(session, member))
    return StaffRemove(staff_id=member.ref)


# ------------------------------------------------------------------------- editing one student


def edit_student(
    session: Session,
    who: Principal | None,
    st: Student,
    *,
    surname: str,
    given_name: str,
    patronymic: str,
    birth_date: dt.date | None,
    class_pk: int,
) -> list[str]:
    """Changes a student's names, birth date or class (a transfer); publishes and audits.
    Returns the names of the fields changed."""
    surname, given_name, patronymic = surname.strip(), given_name.strip(), patronymic.strip()
    if not surname or not given_name:
        raise RosterError(N_("Surname and given name are required."))
    cls = session.get(SchoolClass, class_pk)
    if cls is None or cls.school_id != st.school_id:
        raise RosterError(N_("Choose a class of the student's school."))
    changed = [
        name
        for name, old, new in (
            ("surname", st.surname, surname),
            ("given_name", st.given_name, given_name),
            ("patronymic", st.patronymic, patronymic),
            ("birth_date", st.birth_date, birth_date),
            ("class", st.class_pk, class_pk),
        )
        if old != new
    ]
    if not changed:
        return []
    st.surname, st.given_name, st.patronymic = surname, given_name, patronymic
    st.birth_date, st.class_pk = birth_date, class_pk
    st.updated_at_ms = now_ms()
    session.flush()
    publish_students(session, st.school_id, [st])
    audit(
        session,
        who,
        "change",
        "student",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="fields " + ", ".join(changed),
    )
    return changed


def set_active(session: Session, who: Principal | None, st: Student, active: bool) -> None:
    """Deactivating (left the school) removes the student from the school's edges; their
    history stays. Reactivating publishes them again (with data consent only)."""
    if st.active == active:
        return
    st.active = active
    st.updated_at_ms = now_ms()
    session.flush()
    publish_students(session, st.school_id, [st])
    audit(
        session,
        who,
        "change",
        "student",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="activated" if active else "deactivated",
    )


def add_guardian(
    session: Session,
    who: Principal | None,
    st: Student,
    *,
    full_name: str,
    phone: str,
    email: str,
    relation: str = "parent",
) -> Guardian:
    full_name, email = full_name.strip(), email.strip().lower()
    if not full_name or len(full_name) > 200:
        raise RosterError(N_("The guardian's name is required."))
    norm_phone = ""
    if phone.strip():
        found = rules.normalize_phone(phone)
        if found is None:
            raise RosterError(rules.E_PHONE)
        norm_phone = found
    if email and (not rules.EMAIL_RE.match(email) or len(email) > 200):
        raise RosterError(rules.E_EMAIL)
    g = Guardian(full_name=full_name, phone=norm_phone, email=email)
    session.add(g)
    session.flush()
    session.add(
        StudentGuardian(student_pk=st.pk, guardian_pk=g.pk, relation=relation[:32] or "parent")
    )
    session.flush()
    audit(
        session,
        who,
        "change",
        "guardian",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="guardian added (name, phone, e-mail)",
    )
    return g


def remove_guardian(session: Session, who: Principal | None, st: Student, guardian_pk: int) -> None:
    link = session.get(StudentGuardian, (st.pk, guardian_pk))
    if link is None:
        raise RosterError(N_("Not a guardian of this student."))
    session.delete(link)
    session.flush()
    audit(
        session,
        who,
        "change",
        "guardian",
        student_pk=st.pk,
        school_id=st.school_id,
        summary="guardian unlinked",
    )


# ----------------------------------------------------------------------------------- classes


def save_class(
    session: Session, school_id: str, *, name: str, grade: int, shift: int, pk: int | None = None
) -> SchoolClass:
    """Creates or changes a class; a changed grade, shift or name reaches the edges through
    its students' records."""
    name = rules.clean_class_name(name)
    if not name or len(name) > 16:
        raise RosterError(rules.E_CLASS_NAME)
    if not 0 <= grade <= 12:
        raise RosterError(rules.E_GRADE)
    if not 1 <= shift <= 3:
        raise RosterError(rules.E_SHIFT)
    same = class_infos(session, school_id).get(class_key(name))
    if same is not None and same.pk != pk:
        raise RosterError(N_("A class with this name exists already."))
    if pk is None:
        cls = SchoolClass(school_id=school_id, name=name, grade=grade, shift=shift)
        session.add(cls)
        session.flush()
        return cls
    cls = session.get_one(SchoolClass, pk)
    changed = (cls.name, cls.grade, cls.shift) != (name, grade, shift)
    cls.name, cls.grade, cls.shift = name, grade, shift
    session.flush()
    if changed:
        students = list(
            session.execute(
                select(Student).where(Student.class_pk == cls.pk, Student.active.is_(True))
            ).scalars()
        )
        publish_students(session, school_id, students)
        members = list(
            session.execute(
                select(StaffMember)
                .join(StaffClass, StaffClass.staff_pk == StaffMember.pk)
                .where(StaffClass.class_pk == cls.pk)
            ).scalars()
        )
        if members:
            append_changes(session, school_id, [staff_change(session, m) for m in members])
    return cls


# ------------------------------------------------------------------------------------- staff

EDGE_ROLES = (
    "class_teacher",
    "duty_deputy",
    "social_pedagogue",
    "canteen",
    "librarian",
    "security",
    "admin",
)


def save_staff(
    session: Session,
    school_id: str,
    *,
    ref: str,
    full_name: str,
    position: str,
    roles: Sequence[str],
    class_pks: Sequence[int],
    active: bool = True,
    pk: int | None = None,
) -> StaffMember:
    """Creates or changes a staff member and publishes staff_upsert (staff_remove when
    deactivated) to the school's edges."""
    ref, full_name = ref.strip(), full_name.strip()
    if not rules.REF_RE.match(ref):
        raise RosterError(
            N_("A staff id may hold only Latin letters, digits and _ . : - (at most 64).")
        )
    if not full_name or len(full_name) > 200:
        raise RosterError(N_("The full name is required."))
    bad = [r for r in roles if r not in EDGE_ROLES]
    if bad:
        raise RosterError(N_("Unknown edge role."))
    classes = {c.pk for c in class_infos(session, school_id).values()}
    if any(c not in classes for c in class_pks):
        raise RosterError(N_("Choose a class of this school."))
    other = session.execute(
        select(StaffMember).where(StaffMember.school_id == school_id, StaffMember.ref == ref)
    ).scalar_one_or_none()
    if other is not None and other.pk != pk:
        raise RosterError(N_("A staff member with this id exists already."))
    if pk is None:
        member = StaffMember(school_id=school_id, ref=ref, full_name=full_name)
        session.add(member)
    else:
        member = session.get_one(StaffMember, pk)
        if member.ref != ref and member.active:
            # The edge knows them by the old id: remove it first.
            append_changes(session, school_id, [StaffRemove(staff_id=member.ref)])
        member.ref, member.full_name = ref, full_name
    member.position = position.strip()[:100]
    member.edge_roles = ",".join(r for r in EDGE_ROLES if r in roles)
    was_active = member.active if pk is not None else True
    member.active = active
    session.flush()
    for link in session.execute(
        select(StaffClass).where(StaffClass.staff_pk == member.pk)
    ).scalars():
        session.delete(link)
    session.flush()
    for c in sorted(set(class_pks)):
        session.add(StaffClass(staff_pk=member.pk, class_pk=c))
    session.flush()
    if active or was_active:
        append_changes(session, school_id, [staff_change(session, member)])
    return member
