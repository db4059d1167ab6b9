"""Conversions between wire records and the decision core's in-memory state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from edge.core.model import Card, Category, SchoolState, Staff, Student
from protocol.messages import (
    CardBinding,
    CategoryMembership,
    ConsentKind,
    ConsentRecord,
    OwnerKind,
    StaffRecord,
    StudentRecord,
)


def category(c: CategoryMembership) -> Category:
    return Category(
        c.code, dt.date.fromisoformat(c.valid_from), dt.date.fromisoformat(c.valid_to), c.document
    )


def consents_granted(records: list[ConsentRecord]) -> frozenset[ConsentKind]:
    return frozenset(ConsentKind(r.kind) for r in records if r.granted)


def student(r: StudentRecord) -> Student:
    return Student(
        id=r.id,
        grade=r.grade,
        class_name=r.class_name,
        shift=r.shift,
        consents=consents_granted(r.consents),
        categories=tuple(category(c) for c in r.categories),
    )


def staff(r: StaffRecord) -> Staff:
    return Staff(r.id, frozenset(r.roles), frozenset(r.classes), r.pin_hash)


def card(b: CardBinding) -> Card:
    return Card(b.credential.upper(), OwnerKind(b.owner_kind), b.owner_id, b.blocked_reason)


def build_state(
    students: list[StudentRecord],
    staff_records: list[StaffRecord],
    cards: Sequence[CardBinding | Card],
) -> SchoolState:
    """The decision state; ``cards`` as bindings (a roster file: by number) or as the store
    keeps them (``Card.credential`` is then the store's key of the number)."""
    state = SchoolState()
    state.students = {s.id: student(s) for s in students}
    state.staff_by_id = {s.id: staff(s) for s in staff_records}
    kept = [c if isinstance(c, Card) else card(c) for c in cards]
    state.cards = {c.credential: c for c in kept}
    return state
