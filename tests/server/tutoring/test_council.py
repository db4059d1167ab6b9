"""The council's scoring with a conflict of interest, and the awards ranking, by hand."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from server.tutoring.council import (
    CouncilError,
    CriterionDef,
    MemberScore,
    VolunteerMetrics,
    rank_applications,
    rank_awards,
)

CRITERIA = [CriterionDef("motivation", 2, 10), CriterionDef("experience", 1, 10)]


def marks(app: str, member: str, motivation: int, experience: int) -> list[MemberScore]:
    return [
        MemberScore(app, member, "motivation", motivation),
        MemberScore(app, member, "experience", experience),
    ]


def test_conflict_of_interest_is_excluded_from_the_mean() -> None:
    # full = 2*10 + 1*10 = 30. A: M1 (2*9+8)/30 = 26/30 = 86.67 %, M2 (2*6+6)/30 = 60 %,
    # M3 declared a conflict with A and scored 10/10 anyway: left out -> mean (86.67+60)/2 = 73.33
    # B: M1 (2*7+7)/30 = 70 %, M2 (2*8+5)/30 = 70 %, M3 (2*7+10)/30 = 80 % -> 73.33... = 220/3
    # exactly equal to A's 220/3: the tie goes to the code (A first).
    # C: only M1 scored one criterion -> nobody scored it fully: last, not selected.
    scores = [
        *marks("A", "M1", 9, 8),
        *marks("A", "M2", 6, 6),
        *marks("A", "M3", 10, 10),
        *marks("B", "M1", 7, 7),
        *marks("B", "M2", 8, 5),
        *marks("B", "M3", 7, 10),
        MemberScore("C", "M1", "motivation", 10),
    ]
    ranked = rank_applications(["A", "B", "C"], CRITERIA, scores, [("A", "M3")], places=1)
    assert [
        (r.application, r.rank, r.score, r.members, r.excluded, r.selected) for r in ranked
    ] == [
        ("A", 1, Decimal("73.33"), ("M1", "M2"), ("M3",), True),
        ("B", 2, Decimal("73.33"), ("M1", "M2", "M3"), (), False),
        ("C", 3, None, (), (), False),
    ]
    # without the conflict, M3's 100 % would have lifted A to (86.67+60+100)/3 = 82.22
    ranked = rank_applications(["A"], CRITERIA, scores, [], places=1)
    assert ranked[0].score == Decimal("82.22")


def test_scores_out_of_range_are_refused() -> None:
    with pytest.raises(CouncilError):
        rank_applications(["A"], CRITERIA, marks("A", "M1", 11, 0), [], 1)
    with pytest.raises(CouncilError):
        rank_applications(["A"], CRITERIA, [MemberScore("A", "M1", "looks", 1)], [], 1)


def test_awards_ranked_on_published_criteria() -> None:
    # best hours 48, best attendance 0.9, best growth 30
    # V1: 48/48, 0.9/0.9, 15/30 -> (1 + 1 + 0.5) / 3 = 0.833
    # V2: 24/48, 0.45/0.9, 30/30 -> (0.5 + 0.5 + 1) / 3 = 0.667
    # V3: 48/48, 0.9/0.9, -5 -> growth counts 0 -> 2/3 = 0.667; tie with V2, code decides
    metrics = [
        VolunteerMetrics("V1", 48, Fraction(9, 10), Fraction(15)),
        VolunteerMetrics("V2", 24, Fraction(45, 100), Fraction(30)),
        VolunteerMetrics("V3", 48, Fraction(9, 10), Fraction(-5)),
    ]
    ranked = rank_awards(metrics, {"hours": 1, "attendance": 1, "growth": 1}, places=2)
    assert [(r.volunteer, r.rank, r.score, r.awarded) for r in ranked] == [
        ("V1", 1, Decimal("0.833"), True),
        ("V2", 2, Decimal("0.667"), True),
        ("V3", 3, Decimal("0.667"), False),
    ]
