"""The roster file an operator gives ``qaqpa replay`` (and ``qaqpa edge import-roster``).

Format (JSON)::

  {"school": "S1",
   "students": [{"id": "s1", "grade": 3, "class": "3A", "shift": 1, "cards": ["EM:0004567891"],
                 "consent": {"data": true, "biometric": false},
                 "categories": [{"code": "large_family", "from": "2025-09-01",
                                 "to": "2026-05-31", "doc": "board-12"}]}],
   "staff": [{"id": "t1", "roles": ["class_teacher"], "classes": ["3A"],
              "cards": ["EM:0000000001"], "pin": "4821"}],
   "blocked_cards": []}

``blocked_cards`` holds credentials, or objects ``{"card": ..., "reason": ...}``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.core.pin import hash_pin
from edge.validation import first_problem
from protocol.messages import (
    CardBinding,
    CategoryMembership,
    ConsentKind,
    ConsentRecord,
    OwnerKind,
    StaffRecord,
    StudentRecord,
)


class RosterError(ValueError):
    """A roster file that cannot be used; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RosterCategory(_Strict):
    code: str
    from_: Annotated[dt.date, Field(alias="from")]
    to: dt.date
    doc: str = ""


class RosterConsent(_Strict):
    data: bool = False
    biometric: bool = False
    notifications: bool = False


class RosterStudent(_Strict):
    id: str
    grade: Annotated[int, Field(ge=0, le=12)]
    class_: Annotated[str, Field(alias="class", min_length=1)]
    shift: Annotated[int, Field(ge=1, le=3)]
    name: str = ""
    cards: list[str] = []
    consent: RosterConsent = RosterConsent()
    categories: list[RosterCategory] = []


class RosterStaff(_Strict):
    id: str
    roles: list[str]
    classes: list[str] = []
    cards: list[str] = []
    pin: str = ""
    name: str = ""


class RosterBlock(_Strict):
    card: str
    reason: str = "blocked"


class RosterFile(_Strict):
    school: str
    students: list[RosterStudent] = []
    staff: list[RosterStaff] = []
    blocked_cards: list[str | RosterBlock] = []


class Roster(BaseModel):
    """A roster as wire records, ready for the store or the in-memory state."""

    school: str
    students: list[StudentRecord]
    staff: list[StaffRecord]
    cards: list[CardBinding]


def load_roster(path: Path, *, now: dt.datetime | None = None) -> Roster:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RosterError(f"{path}: cannot read: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise RosterError(f"{path}: not UTF-8 text (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise RosterError(f"{path}: line {err.lineno}: not valid JSON: {err.msg}") from err
    try:
        parsed = RosterFile.model_validate(raw)
        return roster_records(parsed, source=path.name, now=now)
    except ValidationError as err:
        raise RosterError(f"{path}: {first_problem(err, whole='(roster)')}") from err
    except ValueError as err:
        raise RosterError(f"{path}: {err}") from err


def roster_records(parsed: RosterFile, *, source: str, now: dt.datetime | None) -> Roster:
    at_ms = int((now or dt.datetime.now(dt.UTC)).timestamp() * 1000)
    students: list[StudentRecord] = []
    staff: list[StaffRecord] = []
    cards: dict[str, CardBinding] = {}

    def bind(credential: str, kind: OwnerKind, owner: str) -> None:
        key = credential.strip().upper()
        if key in cards:
            raise ValueError(f"card {key} is bound twice ({cards[key].owner_id} and {owner})")
        cards[key] = CardBinding(credential=key, owner_kind=kind, owner_id=owner)

    for s in parsed.students:
        given = s.consent.model_dump()
        consents = [
            ConsentRecord(
                kind=ConsentKind(k), granted=True, given_by="roster", at_ms=at_ms, document=source
            )
            for k, v in given.items()
            if v
        ]
        cats = [
            CategoryMembership(
                code=c.code,
                valid_from=c.from_.isoformat(),
                valid_to=c.to.isoformat(),
                document=c.doc,
            )
            for c in s.categories
        ]
        students.append(
            StudentRecord(
                id=s.id,
                grade=s.grade,
                class_name=s.class_,
                shift=s.shift,
                display_name=s.name,
                consents=consents,
                categories=cats,
            )
        )
        for c in s.cards:
            bind(c, OwnerKind.STUDENT, s.id)
    for t in parsed.staff:
        pin_hash = hash_pin(t.pin, os.urandom(16)) if t.pin else ""
        staff.append(
            StaffRecord(
                id=t.id, roles=t.roles, classes=t.classes, pin_hash=pin_hash, display_name=t.name
            )
        )
        for c in t.cards:
            bind(c, OwnerKind.STAFF, t.id)
    for b in parsed.blocked_cards:
        block = b if isinstance(b, RosterBlock) else RosterBlock(card=b)
        key = block.card.strip().upper()
        if key not in cards:
            raise ValueError(f"blocked card {key} is not bound to anyone")
        cards[key] = cards[key].model_copy(update={"blocked_reason": block.reason})
    ids = [s.id for s in students]
    if len(set(ids)) != len(ids):
        raise ValueError("student ids repeat")
    return Roster(school=parsed.school, students=students, staff=staff, cards=list(cards.values()))
