"""Matching students to volunteers: a pure function (no database, no clock).

A student can go to a volunteer who teaches the student's direction (and subject: a volunteer
with no subjects listed teaches every subject of the direction), speaks the student's language of
instruction and shares at least one time slot, while the volunteer has capacity left. Among the
volunteers who can take a student, one from the student's own district comes first, then the one
with the most capacity left, then the code (deterministic). Students with the fewest possible
volunteers are placed first, so the scarce volunteers go to those who need them.

The result is maximal: a student left unmatched had no possible volunteer with capacity left.
It does not depend on the order of the input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tutor:
    code: str
    direction: str
    subjects: frozenset[str]  # empty: every subject of the direction
    district: str
    languages: frozenset[str]
    slots: frozenset[str]
    capacity: int


@dataclass(frozen=True, slots=True)
class Learner:
    code: str
    direction: str
    subject: str | None
    district: str
    language: str
    slots: frozenset[str]


@dataclass(frozen=True, slots=True)
class Match:
    learner: str
    tutor: str
    slot: str  # the earliest common slot (by name)
    same_district: bool


@dataclass(frozen=True, slots=True)
class Matching:
    matches: tuple[Match, ...]
    unmatched: tuple[str, ...]  # learner codes


def can_teach(t: Tutor, s: Learner) -> bool:
    return (
        t.capacity > 0
        and t.direction == s.direction
        and (not t.subjects or s.subject is None or s.subject in t.subjects)
        and s.language in t.languages
        and bool(t.slots & s.slots)
    )


def match_students(learners: Iterable[Learner], tutors: Iterable[Tutor]) -> Matching:
    tutor_list = sorted({t.code: t for t in tutors}.values(), key=lambda t: t.code)
    learner_list = sorted({s.code: s for s in learners}.values(), key=lambda s: s.code)
    options = {s.code: [t for t in tutor_list if can_teach(t, s)] for s in learner_list}
    left = {t.code: t.capacity for t in tutor_list}
    order = sorted(learner_list, key=lambda s: (len(options[s.code]), s.code))
    matches: list[Match] = []
    unmatched: list[str] = []
    for s in order:
        free = [t for t in options[s.code] if left[t.code] > 0]
        if not free:
            unmatched.append(s.code)
            continue
        best = min(free, key=lambda t: (t.district != s.district, -left[t.code], t.code))
        left[best.code] -= 1
        matches.append(
            Match(s.code, best.code, min(best.slots & s.slots), best.district == s.district)
        )
    matches.sort(key=lambda m: m.learner)
    return Matching(tuple(matches), tuple(sorted(unmatched)))
