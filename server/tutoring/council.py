"""The expert council's arithmetic and the awards ranking: pure.

Selection: each member scores each application on the published criteria, independently; a
member's result for an application is the weighted share of the maximum, in percent
(sum(weight * score) / sum(weight * max_score) * 100). An application's score is the mean over
the members who scored it on every criterion and have declared no conflict of interest with it
(a conflicted member's scores, if any, are left out and the member is named in the protocol).
Ranked by that mean (then by code); the first ``places`` are selected. An application nobody
could score is ranked last and not selected.

Awards: volunteers ranked on published criteria (hours taught, attendance, students' growth),
each normalised to the best volunteer's value (0..1) and weighted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from .calc import round_half_up


class CouncilError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CriterionDef:
    code: str
    weight: int
    max_score: int


@dataclass(frozen=True, slots=True)
class MemberScore:
    application: str
    member: str
    criterion: str
    score: int


@dataclass(frozen=True, slots=True)
class Ranked:
    application: str
    rank: int
    score: Decimal | None  # percent, two decimals; None: nobody could score it
    members: tuple[str, ...]  # whose scores count
    excluded: tuple[str, ...]  # members with a declared conflict of interest
    selected: bool


def check_score(c: CriterionDef, score: int) -> None:
    if not 0 <= score <= c.max_score:
        raise CouncilError(f"a score on {c.code} is 0-{c.max_score}")


def rank_applications(
    applications: Iterable[str],
    criteria: Sequence[CriterionDef],
    scores: Iterable[MemberScore],
    conflicts: Iterable[tuple[str, str]],  # (application, member)
    places: int,
) -> list[Ranked]:
    if not criteria:
        raise CouncilError("no published criteria")
    by_code = {c.code: c for c in criteria}
    conflicted: dict[str, set[str]] = defaultdict(set)
    for app, member in conflicts:
        conflicted[app].add(member)
    given: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for s in scores:
        c = by_code.get(s.criterion)
        if c is None:
            raise CouncilError(f"unknown criterion {s.criterion}")
        check_score(c, s.score)
        given[(s.application, s.member)][s.criterion] = s.score
    full = sum(c.weight * c.max_score for c in criteria)
    results: list[tuple[str, Fraction | None, tuple[str, ...]]] = []
    for app in sorted(set(applications)):
        members: list[str] = []
        shares: list[Fraction] = []
        for (a, member), marks in sorted(given.items()):
            if a != app or member in conflicted[app] or set(marks) != set(by_code):
                continue
            members.append(member)
            shares.append(
                Fraction(sum(by_code[k].weight * v for k, v in marks.items()) * 100, full)
            )
        mean = sum(shares, Fraction(0)) / len(shares) if shares else None
        results.append((app, mean, tuple(members)))
    results.sort(key=lambda r: (r[1] is None, -(r[1] or 0), r[0]))
    out = []
    for i, (app, mean, counted) in enumerate(results, start=1):
        out.append(
            Ranked(
                application=app,
                rank=i,
                score=None if mean is None else round_half_up(mean, 2),
                members=counted,
                excluded=tuple(sorted(conflicted[app])),
                selected=mean is not None and i <= places,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class VolunteerMetrics:
    volunteer: str
    hours: int  # hours of sessions held
    attendance: Fraction  # present / marked, 0..1
    growth: Fraction  # mean growth of their students (percentage points)


AWARD_CRITERIA = {"hours": 1, "attendance": 1, "growth": 1}


@dataclass(frozen=True, slots=True)
class AwardRank:
    volunteer: str
    rank: int
    score: Decimal  # 0..1 weighted, three decimals
    awarded: bool


def rank_awards(
    metrics: Sequence[VolunteerMetrics], weights: Mapping[str, int], places: int
) -> list[AwardRank]:
    if not metrics:
        return []
    best_hours = max(m.hours for m in metrics) or 1
    best_att = max(m.attendance for m in metrics) or Fraction(1)
    best_growth = max(m.growth for m in metrics)
    best_growth = best_growth if best_growth > 0 else Fraction(1)
    total = sum(weights.values()) or 1

    def score(m: VolunteerMetrics) -> Fraction:
        parts = {
            "hours": Fraction(m.hours) / best_hours,
            "attendance": m.attendance / best_att,
            "growth": max(m.growth, Fraction(0)) / best_growth,
        }
        return sum((parts[k] * w for k, w in weights.items()), Fraction(0)) / total

    ranked = sorted(metrics, key=lambda m: (-score(m), m.volunteer))
    # a volunteer with nothing to show (no hours, no attendance, no growth) is not awarded
    return [
        AwardRank(m.volunteer, i, round_half_up(score(m), 3), i <= places and score(m) > 0)
        for i, m in enumerate(ranked, start=1)
    ]
