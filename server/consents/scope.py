"""Finding a student (or a school) the signed-in user may act on; anything else is a 404."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.console.web import ensure
from server.models import School
from server.people.models import SchoolClass, Student


def scoped_student(db: Session, who: Principal, perm: str, pk: int) -> Student:
    st = db.get(Student, pk)
    ensure(
        st is not None
        and who.can(perm, school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk)
    )
    assert st is not None
    return st


def class_of(db: Session, student: Student) -> SchoolClass:
    return db.get_one(SchoolClass, student.class_pk)


def visible_schools(db: Session, who: Principal, perm: str) -> list[School]:
    """Schools where ``perm`` applies at least in part, ordered by id."""
    from sqlalchemy import select

    allowed = who.schools(perm)
    q = select(School).order_by(School.id)
    if allowed is not None:
        q = q.where(School.id.in_(allowed))
    return list(db.execute(q).scalars())
