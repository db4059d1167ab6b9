"""Roster operations against the database: plan and apply an import, edit students, classes,
guardians and staff, and publish what the school's edges need through the downlink.

Every function leaves the commit to its caller except ``import_rows`` (one import, one
transaction). A student reaches the edges only while active and with a granted data consent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import (
    CardBind,
    CardBinding,
    Change,
    ConsentKind,
    OwnerKind,
    StaffRecord,
    StaffRemove,
    StaffUpsert,
    StudentRecord,
    StudentRemove,
    StudentUpsert,
)
from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import Card, CardStatus
from server.clock import now_ms
from server.consents.categories import published_memberships
from server.consents.models import StudentCategory
from server.models import School
from server.people.models import (
    Consent,
    Guardian,
    SchoolClass,
    StaffMember,
    Student,
    StudentGuardian,
)
from server.people.service import build_student_record, student_record
from server.policy.service import school_today
from server.roster import rules
from server.roster.models import StaffClass
from server.roster.rules import N_, ClassInfo, RawRow, RosterRow, RowError, class_key
from server.roster.rules import parse_file as parse_file  # the Python API: parse, then import
from server.sync.changelog import append_changes, load_state

log = logging.getLogger(__name__)


class RosterError(ValueError):
    """A refused roster operation; the message is an English msgid safe to show."""


# ------------------------------------------------------------------------------- publishing


def _current_consents(
    session: Session, student_pks: Sequence[int]
) -> dict[tuple[int, str], Consent]:
    """The newest consent row per (student, kind), for many students in a few queries."""
    out: dict[tuple[int, str], Consent] = {}
    pks = list(student_pks)
    for i in range(0, len(pks), 1000):
        for c in session.execute(
            select(Consent).where(Consent.student_pk.in_(pks[i : i + 1000])).order_by(Consent.pk)
        ).scalars():
            out[(c.student_pk, c.kind)] = c
    return out


def student_records(session: Session, students: Sequence[Student]) -> dict[int, StudentRecord]:
    """``people.service.student_record`` for many students at once (consents loaded in bulk);
    a test holds the two equal."""
    if len(students) <= 5:
        return {st.pk: student_record(session, st) for st in students}
    consents = _current_consents(session, [st.pk for st in students])
    out: dict[int, StudentRecord] = {}
    for st in students:
        cls = session.get_one(SchoolClass, st.class_pk)
        current = {kind: consents.get((st.pk, kind.value)) for kind in ConsentKind}
        out[st.pk] = build_student_record(st, cls, current)
    return out


def student_changes(session: Session, students: Sequence[Student]) -> list[Change]:
    """What the edges get for these students: an upsert while active with data consent
    (consent first), else a removal.

    An upsert replaces the whole record at the edge, social categories included, so it carries
    the categories the edge has now (from the school's change log), or for a student not on the
    edges, the memberships the consents module publishes: renaming or moving a student must
    not take away their free meals.
    """
    records = student_records(session, students)
    states = {school: load_state(session, school) for school in {st.school_id for st in students}}
    off_edge = [st.pk for st in students if st.ref not in states[st.school_id].students]
    with_categories: set[int] = set()
    for i in range(0, len(off_edge), 1000):
        with_categories |= set(
            session.execute(
                select(StudentCategory.student_pk)
                .where(StudentCategory.student_pk.in_(off_edge[i : i + 1000]))
                .distinct()
            ).scalars()
        )
    bound: dict[int, list[Card]] = {}
    for i in range(0, len(off_edge), 1000):
        for card in session.execute(
            select(Card)
            .where(
                Card.student_pk.in_(off_edge[i : i + 1000]),
                Card.status != CardStatus.UNBOUND.value,
            )
            .order_by(Card.pk)
        ).scalars():
            bound.setdefault(card.student_pk or 0, []).append(card)
    out: list[Change] = []
    for st in students:
        rec = records[st.pk]
        data = next((c for c in rec.consents if c.kind == ConsentKind.DATA.value), None)
        if st.active and data is not None and data.granted:
            on_edge = states[st.school_id].students.get(st.ref)
            if on_edge is not None:
                categories = on_edge.categories
            elif st.pk in with_categories:
                categories = published_memberships(
                    session, st.pk, school_today(session.get_one(School, st.school_id))
                )
            else:
                categories = []
            out.append(StudentUpsert(student=rec.model_copy(update={"categories": categories})))
            if on_edge is None:
                # Back on the edges (reactivated): the cards still bound to them come back too.
                out.extend(_card_binds(st, bound.get(st.pk, [])))
        else:
            out.append(StudentRemove(student_id=st.ref))
    return out


def _card_binds(st: Student, cards: Sequence[Card]) -> list[Change]:
    """Numbers the centre still holds (before the move) go back to the edges; a card bound at
    the school went with the student's removal there and is tapped again at the desk."""
    return [
        CardBind(
            card=CardBinding(
                credential=c.credential,
                owner_kind=OwnerKind.STUDENT,
                owner_id=st.ref,
                blocked_reason=c.block_reason if c.status == CardStatus.BLOCKED.value else None,
            )
        )
        for c in cards
        if c.credential is not None
    ]


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
    # what the preview shows for a change: (field, stored value, the file's value)
    diffs: list[tuple[str, str, str]] = field(default_factory=list)


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


def lock_school(session: Session, school_id: str) -> None:
    """Imports into one school run one at a time: the plan is made under the lock, so two
    imports of the same file cannot both create its students. (The same row lock as
    ``append_changes``; a no-op on SQLite, which has one writer anyway.)"""
    session.execute(select(School.id).where(School.id == school_id).with_for_update())


def _error_order(e: RowError) -> tuple[int, int]:
    return (e.line, rules.COLUMNS.index(e.column) if e.column in rules.COLUMNS else -1)


def check(
    session: Session, school_id: str, raws: Iterable[RawRow], today: dt.date
) -> tuple[rules.CheckedRoster, ImportPlan]:
    """The rows' own checks, then the plan against the school's roster, with all errors."""
    classes = class_infos(session, school_id)
    checked = rules.check_rows(
        raws, {k: ClassInfo(c.name, c.grade, c.shift) for k, c in classes.items()}, today
    )
    plan = plan_import(session, school_id, checked.rows, list(checked.new_classes.values()))
    plan.errors = sorted([*checked.errors, *plan.errors], key=_error_order)
    return checked, plan


class _SchoolIndex:
    """The school's students, their data consents and guardians, loaded once per import (an
    import of 5,000 lines must not cost 20,000 queries)."""

    def __init__(self, session: Session, school_id: str, refs: Iterable[str]) -> None:
        self.school_id = school_id
        students = list(
            session.execute(select(Student).where(Student.school_id == school_id)).scalars()
        )
        self.by_ref: dict[str, Student] = {st.ref: st for st in students}
        wanted = [r for r in set(refs) if r and r not in self.by_ref]
        self.foreign_refs: set[str] = set()
        for i in range(0, len(wanted), 1000):
            self.foreign_refs |= set(
                session.execute(
                    select(Student.ref).where(Student.ref.in_(wanted[i : i + 1000]))
                ).scalars()
            )
        self.by_name: dict[tuple[str, str], list[Student]] = {}
        for st in students:
            self.by_name.setdefault((st.surname.lower(), st.given_name.lower()), []).append(st)
        consents = _current_consents(session, [st.pk for st in students])
        self.data_consent: dict[int, Consent] = {
            pk: c for (pk, kind), c in consents.items() if kind == ConsentKind.DATA.value
        }
        self.guardians: dict[int, list[Guardian]] = {}
        # (phone, name): a sibling's guardian is the same person only if both match (parents
        # often share one phone).
        self.by_phone: dict[tuple[str, str], Guardian] = {}
        for link, g in session.execute(
            select(StudentGuardian, Guardian)
            .join(Guardian, Guardian.pk == StudentGuardian.guardian_pk)
            .join(Student, Student.pk == StudentGuardian.student_pk)
            .where(Student.school_id == school_id)
            .order_by(Guardian.pk)
        ).all():
            self.guardians.setdefault(link.student_pk, []).append(g)
            if g.phone:
                self.by_phone.setdefault((g.phone, g.full_name.casefold()), g)

    def match(self, row: RosterRow, errors: list[RowError]) -> Student | None:
        if row.ref:
            if row.ref in self.foreign_refs:
                errors.append(
                    rules.row_error(row.line, "student_ref", rules.E_REF_OTHER_SCHOOL, ref=row.ref)
                )
            return self.by_ref.get(row.ref)
        found = [
            st
            for st in self.by_name.get((row.surname.lower(), row.given_name.lower()), [])
            if (not row.patronymic or st.patronymic.lower() == row.patronymic.lower())
            and (row.birth_date is None or st.birth_date == row.birth_date)
        ]
        if len(found) > 1:
            errors.append(rules.row_error(row.line, "surname", rules.E_AMBIGUOUS))
            return None
        return found[0] if found else None

    def guardian(
        self, student_pk: int | None, name: str, phone: str, email: str
    ) -> tuple[Guardian | None, bool]:
        """This guardian among the student's guardians (linked=True), else a sibling's
        guardian with the same phone and name in this school (linked=False)."""
        # By name: parents often share one phone or e-mail.
        for g in self.guardians.get(student_pk, []) if student_pk is not None else []:
            if g.full_name.casefold() == name.casefold():
                return g, True
        sibling = self.by_phone.get((phone, name.casefold()))
        if phone and sibling is not None:
            return sibling, False
        return None, False

    def link(self, student_pk: int, g: Guardian) -> None:
        self.guardians.setdefault(student_pk, []).append(g)
        if g.phone:
            self.by_phone.setdefault((g.phone, g.full_name.casefold()), g)

    def consent_needed(
        self, student_pk: int | None, row: RosterRow, errors: list[RowError]
    ) -> bool:
        c = self.data_consent.get(student_pk) if student_pk is not None else None
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
            return False  # a newer consent is on record already
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
    index = _SchoolIndex(session, school_id, (r.ref for r in rows))
    errors: list[RowError] = []
    planned: list[PlannedRow] = []
    seen_pks: dict[int, int] = {}
    for row in rows:
        n_err = len(errors)
        st = index.match(row, errors)
        if st is not None and st.pk in seen_pks:
            errors.append(
                rules.row_error(row.line, "surname", rules.E_DUP_PERSON, other=seen_pks[st.pk])
            )
        consent = index.consent_needed(st.pk if st is not None else None, row, errors)
        if len(errors) > n_err:
            continue
        if st is None:
            planned.append(PlannedRow(row, "create", None, row.ref, ["new"]))
            continue
        seen_pks[st.pk] = row.line
        changes: list[str] = []
        diffs: list[tuple[str, str, str]] = []

        def differs(
            name: str,
            old: object,
            new: object,
            changes: list[str] = changes,
            diffs: list[tuple[str, str, str]] = diffs,
        ) -> None:
            changes.append(name)
            diffs.append((name, "" if old is None else str(old), "" if new is None else str(new)))

        if st.surname != row.surname:
            differs("surname", st.surname, row.surname)
        if st.given_name != row.given_name:
            differs("given_name", st.given_name, row.given_name)
        if row.patronymic and st.patronymic != row.patronymic:
            differs("patronymic", st.patronymic, row.patronymic)
        if row.birth_date is not None and st.birth_date != row.birth_date:
            differs("birth_date", st.birth_date, row.birth_date)
        cls = classes.get(class_key(row.class_name))
        if cls is None or cls.pk != st.class_pk:
            now_in = session.get(SchoolClass, st.class_pk)
            differs("class", now_in.name if now_in is not None else "", row.class_name)
        if not st.active:
            changes.append("active")
        if row.guardian_name:
            g, linked = index.guardian(
                st.pk, row.guardian_name, row.guardian_phone, row.guardian_email
            )
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
            PlannedRow(row, "update" if changes else "unchanged", st.pk, st.ref, changes, diffs)
        )
    return ImportPlan(school_id, planned, errors, list(new_classes))


def _new_refs(session: Session, n: int) -> list[str]:
    """Stable ids for the wire: random, never derived from a name or an IIN."""
    out: list[str] = []
    while len(out) < n:
        batch = {"st-" + secrets.token_hex(6) for _ in range(n - len(out))} - set(out)
        taken = set(session.execute(select(Student.ref).where(Student.ref.in_(batch))).scalars())
        out.extend(sorted(batch - taken))
    return out


def apply_plan(
    session: Session, plan: ImportPlan, who: Principal | None, summary: str = ""
) -> ImportResult:
    """Writes the plan (the caller commits). Refuses a plan with errors."""
    if plan.errors:
        raise RosterError(N_("a roster with errors cannot be imported"))
    school_id = plan.school_id
    now = now_ms()
    result = ImportResult()
    with session.no_autoflush:
        for info in plan.new_classes:
            session.add(
                SchoolClass(school_id=school_id, name=info.name, grade=info.grade, shift=info.shift)
            )
            result.classes_created += 1
        session.flush()
        classes = class_infos(session, school_id)
        index = _SchoolIndex(session, school_id, ())
        fresh = iter(
            _new_refs(session, sum(1 for p in plan.rows if p.action == "create" and not p.row.ref))
        )
        touched: list[tuple[Student, PlannedRow]] = []
        for p in plan.rows:
            row = p.row
            if p.action == "unchanged":
                result.unchanged += 1
                continue
            cls = classes[class_key(row.class_name)]
            if p.action == "create":
                st = Student(
                    ref=row.ref or next(fresh),
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
            touched.append((st, p))
        session.flush()  # the new students' pks
        guardians: list[tuple[Student, Guardian]] = []
        for st, p in touched:
            row = p.row
            if row.guardian_name:
                g, linked = index.guardian(
                    st.pk, row.guardian_name, row.guardian_phone, row.guardian_email
                )
                if g is None:
                    g = Guardian(
                        full_name=row.guardian_name,
                        phone=row.guardian_phone,
                        email=row.guardian_email,
                    )
                    session.add(g)
                else:
                    if row.guardian_phone:
                        g.phone = row.guardian_phone
                    if row.guardian_email:
                        g.email = row.guardian_email
                if not linked:
                    index.link(st.pk, g)
                    guardians.append((st, g))
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
        session.flush()  # the new guardians' pks
        for st, g in guardians:
            session.add(StudentGuardian(student_pk=st.pk, guardian_pk=g.pk))
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


def raw_rows(rows: Iterable[Mapping[str, object] | RawRow]) -> list[RawRow]:
    """Rows given as {column: value} (numbered as lines of a file with a header: 2, 3, ...;
    column names as in a file, aliases included), or ``RawRow``s of ``parse_file``."""
    out = []
    for i, r in enumerate(rows, start=2):
        if isinstance(r, RawRow):
            out.append(r)
            continue
        cells = {}
        for k, v in r.items():
            text = v.isoformat() if isinstance(v, dt.date) else "" if v is None else str(v)
            cells[rules.column_name(k)] = text.strip()
        out.append(RawRow(i, cells))
    return out


def import_rows(
    session: Session,
    school_id: str,
    rows: Iterable[Mapping[str, object] | RawRow],
    who: Principal | None = None,
    *,
    today: dt.date | None = None,
    commit: bool = True,
) -> ImportResult:
    """Imports a school's roster from Python (the demo seeds its school so): all rows or
    nothing, by the same rules as a file. ``rows`` are {column: value} mappings with the
    file's column names, or the rows of ``parse_file(name, data)``. With ``commit`` (the
    default) the import is its own transaction: committed when applied, rolled back when
    refused."""
    raws = raw_rows(rows)
    unknown = {k for r in raws for k in r.cells if k not in rules.COLUMNS}
    missing = {c for c in rules.REQUIRED if raws and all(c not in r.cells for r in raws)}
    if unknown or missing:
        return ImportResult(
            errors=[rules.row_error(1, k, rules.E_UNKNOWN_COLUMN) for k in sorted(unknown)]
            + [rules.row_error(1, k, rules.E_MISSING_COLUMN) for k in sorted(missing)]
        )
    lock_school(session, school_id)
    if today is None:
        today = school_today(session.get_one(School, school_id))
    _checked, plan = check(session, school_id, raws, today)
    if plan.errors:
        if commit:
            session.rollback()
        return ImportResult(errors=plan.errors)
    try:
        result = apply_plan(session, plan, who)
    except Exception:
        session.rollback()
        raise
    if commit:
        session.commit()
    log.info(
        "roster import into %s: %d created, %d updated, %d unchanged, %d classes created",
        school_id,
        result.created,
        result.updated,
        result.unchanged,
        result.classes_created,
    )
    return result


def export_rows(session: Session, school_id: str) -> list[dict[str, str]]:
    """The school's active students in the import's format: edit the file and import it back
    (matched on student_ref; an unchanged line changes nothing). A student without a granted
    data consent has empty consent cells, which the import will ask for."""
    students = list(
        session.execute(
            select(Student, SchoolClass)
            .join(SchoolClass, SchoolClass.pk == Student.class_pk)
            .where(Student.school_id == school_id, Student.active.is_(True))
            .order_by(SchoolClass.grade, SchoolClass.name, Student.surname, Student.given_name)
        ).all()
    )
    index = _SchoolIndex(session, school_id, ())
    out = []
    for st, cls in students:
        guardians = index.guardians.get(st.pk, [])
        g = guardians[0] if guardians else None
        c = index.data_consent.get(st.pk)
        granted = c is not None and c.granted
        out.append(
            {
                "student_ref": st.ref,
                "surname": st.surname,
                "given_name": st.given_name,
                "patronymic": st.patronymic,
                "birth_date": st.birth_date.isoformat() if st.birth_date else "",
                "class": cls.name,
                "grade": str(cls.grade),
                "shift": str(cls.shift),
                "guardian_name": g.full_name if g else "",
                "guardian_phone": g.phone if g else "",
                "guardian_email": g.email if g else "",
                "consent_given_by": c.given_by if c is not None and granted else "",
                "consent_document": c.document if c is not None and granted else "",
                "consent_date": c.signed_on.isoformat() if c is not None and granted else "",
            }
        )
    return out


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
    """An upsert replaces the edge's record. It never carries a PIN hash: PINs reach the edges
    sealed (``server.staffpins``) and the edge keeps them apart from the roster."""
    if not member.active:
        return StaffRemove(staff_id=member.ref)
    return StaffUpsert(staff=staff_record(session, member))


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
    # A sibling's guardian (same phone and name in this school) is the same person: one
    # record, so one console account and one notification per event cover both children.
    g, linked = _SchoolIndex(session, st.school_id, ()).guardian(
        st.pk, full_name, norm_phone, email
    )
    if g is not None and linked:
        raise RosterError(N_("This guardian is linked to the student already."))
    if g is None:
        g = Guardian(full_name=full_name, phone=norm_phone, email=email)
        session.add(g)
        session.flush()
    elif email and not g.email:
        g.email = email
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


@dataclass(frozen=True)
class StudentPage:
    rows: list[tuple[Student, SchoolClass]]
    total: int  # how many match, over all pages
    page: int  # 1-based, clamped to the last page
    pages: int


SORTS = ("class", "name", "id")


def find_students(
    session: Session,
    school_id: str,
    class_pks: Sequence[int],
    text: str = "",
    *,
    with_inactive: bool = False,
    page: int = 1,
    per_page: int = 100,
    sort: str = "class",
) -> StudentPage:
    """Students of these classes of the school with their class, one page of them.

    ``text`` matches a part of the surname, given name or patronymic, or a part of the student
    id, by Unicode case folding (``rules.search_key``): "иванов" finds "Иванов" and "ӘЛИЯ" finds
    "Әлия" on PostgreSQL under any collation and on the demo's SQLite alike (SQL ``lower()`` is
    ASCII-only there, and under PostgreSQL's "C" collation). A school's students are a few
    thousand rows at most, so the match runs here, not in SQL. ``sort`` is one of ``SORTS``.
    """
    q = (
        select(Student, SchoolClass)
        .join(SchoolClass, SchoolClass.pk == Student.class_pk)
        .where(Student.school_id == school_id, Student.class_pk.in_(list(class_pks)))
    )
    if not with_inactive:
        q = q.where(Student.active.is_(True))
    rows = [(st, cls) for st, cls in session.execute(q).all()]
    needle = rules.search_key(text)
    if needle:
        rows = [
            (st, cls)
            for st, cls in rows
            if needle in rules.search_key(st.full_name) or needle in rules.search_key(st.ref)
        ]

    def by_name(r: tuple[Student, SchoolClass]) -> tuple[str, ...]:
        st = r[0]
        return (rules.search_key(st.surname), rules.search_key(st.given_name), st.ref)

    def by_class(r: tuple[Student, SchoolClass]) -> tuple[object, ...]:
        return (r[1].grade, r[1].name, *by_name(r))

    if sort == "name":
        rows.sort(key=by_name)
    elif sort == "id":
        rows.sort(key=lambda r: r[0].ref)
    else:
        rows.sort(key=by_class)
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(1, page), pages)
    first = (page - 1) * per_page
    return StudentPage(rows[first : first + per_page], len(rows), page, pages)


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
    "senior_counsellor",
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
    was_active = bool(member.active) if pk is not None else False
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
