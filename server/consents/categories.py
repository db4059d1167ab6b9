"""Social categories (free meals): memberships with document and validity dates, published to
the edges as categories_set (the edge checks the dates at each tap)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import CategoriesSet, CategoryMembership, ConsentKind
from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import now_ms
from server.consents.models import CategoryCode, StudentCategory
from server.people.models import Student
from server.people.service import has_consent
from server.sync.changelog import append_changes

N_ = str

# English labels (msgids) of the category codes.
CATEGORY_LABELS: dict[str, str] = {
    CategoryCode.TARGETED_ASSISTANCE: N_("Targeted social assistance"),
    CategoryCode.BELOW_SUBSISTENCE: N_("Below the subsistence minimum"),
    CategoryCode.ORPHAN: N_("Orphan or without parental care"),
    CategoryCode.LARGE_FAMILY: N_("Large family"),
    CategoryCode.EMERGENCY: N_("Emergency situation"),
    CategoryCode.BOARD_DECISION: N_("Board of trustees decision"),
}


class CategoryError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CategoryInput:
    code: CategoryCode
    document: str
    valid_from: dt.date
    valid_to: dt.date


def _date(field: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as err:
        raise CategoryError(field, N_("A date as YYYY-MM-DD.")) from err


def parse_category_form(code: str, document: str, valid_from: str, valid_to: str) -> CategoryInput:
    """Check a membership form; a bad field raises CategoryError naming it. Pure."""
    try:
        c = CategoryCode(code)
    except ValueError as err:
        raise CategoryError("code", N_("Unknown category.")) from err
    doc = " ".join(document.split())
    if not doc:
        raise CategoryError("document", N_("Write the document (number and date or title)."))
    if len(doc) > 200:
        raise CategoryError("document", N_("At most 200 characters."))
    start = _date("valid_from", valid_from)
    end = _date("valid_to", valid_to)
    if end < start:
        raise CategoryError("valid_to", N_("The end date is before the start date."))
    if (end - start).days > 366 * 12:
        raise CategoryError("valid_to", N_("The validity period is longer than a school career."))
    return CategoryInput(c, doc, start, end)


def memberships(session: Session, student_pk: int) -> list[StudentCategory]:
    return list(
        session.execute(
            select(StudentCategory)
            .where(StudentCategory.student_pk == student_pk)
            .order_by(StudentCategory.valid_from.desc(), StudentCategory.pk.desc())
        ).scalars()
    )


def published_memberships(
    session: Session, student_pk: int, today: dt.date
) -> list[CategoryMembership]:
    """What the edge gets: memberships not yet expired (least data)."""
    return [
        CategoryMembership(
            code=m.code,
            valid_from=m.valid_from.isoformat(),
            valid_to=m.valid_to.isoformat(),
            document=m.document[:500],
        )
        for m in memberships(session, student_pk)
        if m.valid_to >= today
    ]


def _publish(session: Session, student: Student, today: dt.date) -> None:
    append_changes(
        session,
        student.school_id,
        [
            CategoriesSet(
                student_id=student.ref,
                categories=published_memberships(session, student.pk, today),
            )
        ],
    )


def add_membership(
    session: Session, who: Principal, student: Student, form: CategoryInput, today: dt.date
) -> StudentCategory:
    """Record a membership and publish the student's categories; caller commits."""
    if not has_consent(session, student.pk, ConsentKind.DATA):
        raise CategoryError("code", N_("No data consent is recorded for this student."))
    row = StudentCategory(
        student_pk=student.pk,
        school_id=student.school_id,
        code=form.code.value,
        document=form.document,
        valid_from=form.valid_from,
        valid_to=form.valid_to,
        recorded_by=who.user_pk,
        recorded_at_ms=now_ms(),
    )
    session.add(row)
    session.flush()
    audit(
        session,
        who,
        "change",
        "category",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"category {form.code.value} added; document {form.document}; "
        f"{form.valid_from.isoformat()}..{form.valid_to.isoformat()}",
    )
    _publish(session, student, today)
    return row


def remove_membership(
    session: Session, who: Principal, student: Student, row: StudentCategory, today: dt.date
) -> None:
    session.delete(row)
    session.flush()
    audit(
        session,
        who,
        "change",
        "category",
        student_pk=student.pk,
        school_id=student.school_id,
        summary=f"category {row.code} removed; document {row.document}",
    )
    _publish(session, student, today)


def valid_on(
    session: Session, school_id: str, day: dt.date, class_pks: set[int] | None
) -> list[tuple[StudentCategory, Student]]:
    """Memberships of a school's students valid on ``day`` (optionally only some classes)."""
    q = (
        select(StudentCategory, Student)
        .join(Student, Student.pk == StudentCategory.student_pk)
        .where(
            StudentCategory.school_id == school_id,
            StudentCategory.valid_from <= day,
            StudentCategory.valid_to >= day,
            Student.active.is_(True),
        )
        .order_by(Student.surname, Student.given_name, StudentCategory.code)
    )
    if class_pks is not None:
        q = q.where(Student.class_pk.in_(class_pks))
    return [(m, s) for m, s in session.execute(q).all()]
