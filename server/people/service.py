"""Schools and regions; what an edge knows of a student (``student_record``)."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import CENTRE_ONLY_CONSENTS, ConsentKind, ConsentRecord, StudentRecord
from server.devices import ensure_school
from server.models import Region, School
from server.people.models import Consent, SchoolClass, Student


def add_school(
    session: Session,
    school_id: str,
    name: str = "",
    *,
    region: str | None = None,
    region_name: str = "",
) -> School:
    if region is not None and session.get(Region, region) is None:
        session.add(Region(id=region, name=region_name or region))
        session.flush()
    school = ensure_school(session, school_id, name)
    if name:
        school.name = name
    if region is not None:
        school.region_id = region
    session.flush()
    return school


def current_consent(session: Session, student_pk: int, kind: ConsentKind) -> Consent | None:
    """The newest consent decision of this kind for the student (None: never recorded)."""
    return session.execute(
        select(Consent)
        .where(Consent.student_pk == student_pk, Consent.kind == kind.value)
        .order_by(Consent.pk.desc())
        .limit(1)
    ).scalar_one_or_none()


def has_consent(session: Session, student_pk: int, kind: ConsentKind) -> bool:
    """DESIGN invariant 6: no card, template or notification without this being True."""
    c = current_consent(session, student_pk, kind)
    return c is not None and c.granted


def student_record(session: Session, student: Student) -> StudentRecord:
    """What the school's edge gets for a student: id, grade, class, shift, a display name for
    canteen staff, consents. Categories are added by the consents module (categories_set)."""
    cls = session.get_one(SchoolClass, student.class_pk)
    current = {kind: current_consent(session, student.pk, kind) for kind in ConsentKind}
    return build_student_record(student, cls, current)


def build_student_record(
    student: Student, cls: SchoolClass, consents: Mapping[ConsentKind, Consent | None]
) -> StudentRecord:
    """The record from already loaded rows (bulk callers load the consents at once)."""
    records = [
        ConsentRecord.model_validate(
            {
                "kind": kind.value,
                "granted": c.granted,
                "given_by": c.given_by[:500],
                "at_ms": c.recorded_at_ms,
                "document": c.document[:500],
            },
            strict=False,
        )
        for kind in ConsentKind
        # Consents the edges decide nothing on stay at the centre (least data).
        if kind not in CENTRE_ONLY_CONSENTS and (c := consents.get(kind)) is not None
    ]
    return StudentRecord(
        id=student.ref,
        grade=cls.grade,
        class_name=cls.name,
        shift=cls.shift,
        display_name=f"{student.surname} {student.given_name}"[:500],
        consents=records,
    )
