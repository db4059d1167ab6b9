"""What a signed-in user may see: the schools, classes and students of their grants.

Written once here and used by every module's routes as ``Annotated`` dependencies:

    Schools = Annotated[list[School], visible_schools("cards.block")]
    Pupil = Annotated[Student, visible_student("cards.block")]

    def page(who: Annotated[Principal, require("cards.block")], st: Pupil, ...): ...

A student or school outside the user's scope is a 404 (``NotFound``), never a 403, so ids of
other schools leak nothing. The dependencies share the route's principal (one per request).
"""

# No ``from __future__ import annotations``: the dependencies built below annotate their
# parameters with local values (the gate, the path parameter's name) that FastAPI must see.
import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.console.params import Id
from server.console.web import Db, NotFound, any_user_dep, ensure, require_dep
from server.models import School
from server.people.models import SchoolClass, Student

Reach = Literal["school", "whole", "part"]

# ------------------------------------------------------------------------------- queries


def schools_in_scope(db: Session, who: Principal, perm: str) -> list[School]:
    """Schools where ``perm`` applies at least in part, ordered by id."""
    allowed = who.schools(perm)
    q = select(School).order_by(School.id)
    if allowed is not None:
        q = q.where(School.id.in_(sorted(allowed)))
    return list(db.scalars(q))


def pick_school(schools: list[School], wanted: str | None) -> School:
    """The school asked for among the visible ones (the first without a wish); else 404."""
    if not wanted:
        ensure(bool(schools))
        return schools[0]
    found = next((s for s in schools if s.id == wanted), None)
    if found is None:
        raise NotFound()
    return found


def school_in_scope(
    db: Session, who: Principal, perm: str, school_id: str, *, reach: Reach = "school"
) -> School:
    """A school the user may use ``perm`` on, else 404. ``reach``: "school" as a school (the
    grant covers the school itself), "whole" all of it (not only some classes or children),
    "part" any part of it (a class teacher's class is enough)."""
    if reach == "part":
        allowed_ids = who.schools(perm)
        allowed = allowed_ids is None or school_id in allowed_ids
    elif reach == "whole":
        allowed = who.whole_school(perm, school_id)
    else:
        allowed = who.can(perm, school_id=school_id)
    school = db.get(School, school_id) if allowed and len(school_id) <= 64 else None
    if school is None:
        raise NotFound()
    return school


def classes_in_scope(db: Session, who: Principal, perm: str, school_id: str) -> list[SchoolClass]:
    """The school's classes where ``perm`` applies, by grade and name."""
    q = (
        select(SchoolClass)
        .where(SchoolClass.school_id == school_id)
        .order_by(SchoolClass.grade, SchoolClass.name)
    )
    allowed = who.classes(perm, school_id)
    if allowed is not None:
        q = q.where(SchoolClass.pk.in_(sorted(allowed)))
    return list(db.scalars(q))


def may_see_student(who: Principal, st: Student, *perms: str) -> bool:
    return any(
        who.can(p, school_id=st.school_id, class_pk=st.class_pk, student_pk=st.pk) for p in perms
    )


def student_in_scope(db: Session, who: Principal, pk: int, *perms: str) -> Student:
    """The student ``pk`` if any of ``perms`` reaches them (their school, class, or own child)."""
    st = db.get(Student, pk)
    if st is None or not may_see_student(who, st, *perms):
        raise NotFound()
    return st


# --------------------------------------------------------------------------- dependencies


def _gate(perms: tuple[str, ...], session: bool) -> Callable[..., Principal]:
    return any_user_dep if session else require_dep(perms[0])


@functools.cache
def _visible_schools(perm: str) -> Callable[..., list[School]]:
    gate = require_dep(perm)

    def dep(db: Db, who: Annotated[Principal, Depends(gate)]) -> list[School]:
        return schools_in_scope(db, who, perm)

    dep.__name__ = f"visible_schools_{perm.replace('.', '_')}"
    return dep


def visible_schools(perm: str) -> Any:
    """A dependency: the schools where the route's ``require(perm)`` applies, ordered by id."""
    return Depends(_visible_schools(perm))


@functools.cache
def _visible_student(perms: tuple[str, ...], param: str, session: bool) -> Callable[..., Student]:
    gate = _gate(perms, session)

    def dep(
        db: Db,
        who: Annotated[Principal, Depends(gate)],
        pk: Annotated[Id, Path(alias=param)],
    ) -> Student:
        return student_in_scope(db, who, pk, *perms)

    dep.__name__ = f"visible_student_{'_'.join(p.replace('.', '_') for p in perms)}"
    return dep


def visible_student(*perms: str, param: str = "pk", session: bool = False) -> Any:
    """A dependency: the student of the path parameter ``param`` if one of ``perms`` reaches
    them, else 404. The route's gate is ``require(perms[0])`` (403 without it anywhere), or any
    signed-in user with ``session=True`` (a page for staff and parents alike)."""
    return Depends(_visible_student(perms, param, session))
