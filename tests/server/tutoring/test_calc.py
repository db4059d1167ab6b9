"""The growth table against values computed by hand, and the rounding and t quantile it uses."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from server.tutoring.calc import (
    POST,
    PRE,
    DirectionFigures,
    Score,
    growth_table,
    round_half_up,
    t_quantile,
)


def scores(direction: str, pairs: list[tuple[float | None, float | None]]) -> list[Score]:
    out = []
    for i, (pre, post) in enumerate(pairs):
        if pre is not None:
            out.append(Score(f"s{i}", direction, PRE, round(pre * 100)))
        if post is not None:
            out.append(Score(f"s{i}", direction, POST, round(post * 100)))
    return out


def test_hand_computed_row() -> None:
    # pre 40, 50, 60; post 70, 75, 95: differences 30, 25, 35 -> mean 30, sd 5, se 5/sqrt(3);
    # t(0.975, 2) = 4.302653 -> margin 12.42 -> [17.6, 42.4]; gain 30 / (100 - 50) = 0.600.
    # s3 took only the pre-test, s4 only the post-test: they count in students, not in means.
    data = scores("English", [(40, 70), (50, 75), (60, 95), (10, None), (None, 99)])
    [row] = growth_table([DirectionFigures("English", 48, 2)], data)
    assert row.as_json() == {
        "direction": "English",
        "hours": 48,
        "volunteers": 2,
        "students": 5,
        "paired": 3,
        "only_pre": 1,
        "only_post": 1,
        "before": 50.0,
        "after": 80.0,
        "growth": 30.0,
        "normalised_gain": 0.6,
        "growth_ci95": [17.6, 42.4],
    }


def test_rounding_is_half_up_not_half_even() -> None:
    # before: (46.0 + 46.5) / 2 = 46.25 -> 46.3 (half-even would give 46.2);
    # after: (60.0 + 60.5) / 2 = 60.25 -> 60.3; growth exactly 14.0, identical differences
    # (sd 0) so the interval is [14.0, 14.0].
    [row] = growth_table(
        [DirectionFigures("Law", 8, 1)], scores("Law", [(46.0, 60.0), (46.5, 60.5)])
    )
    assert (row.before, row.after, row.growth) == (
        Decimal("46.3"),
        Decimal("60.3"),
        Decimal("14.0"),
    )
    assert row.growth_ci95 == (Decimal("14.0"), Decimal("14.0"))
    # gain 0.5 / 40 = 0.0125 -> 0.013 (half-even: 0.012)
    [row] = growth_table([DirectionFigures("IT", 8, 1)], scores("IT", [(60, 60.5)]))
    assert row.normalised_gain == Decimal("0.013")
    assert row.growth_ci95 is None  # one pair: no interval
    assert round_half_up(Fraction(-1, 4), 1) == Decimal("-0.3")
    assert round_half_up(2.675, 2) == Decimal("2.68")  # repr 2.675, not the binary 2.67499...


def test_gain_is_null_when_before_is_100_and_empty_direction() -> None:
    table = growth_table(
        [DirectionFigures("A", 8, 0), DirectionFigures("B", 48, 3)],
        scores("A", [(100, 100), (100, 90)]),
    )
    a, b = table
    assert a.before == Decimal("100.0") and a.normalised_gain is None
    assert a.growth == Decimal("-5.0")
    assert b.as_json()["students"] == 0 and b.as_json()["before"] is None
    assert b.as_json()["growth_ci95"] is None


@pytest.mark.parametrize(
    ("df", "expected"),
    # Student's t 0.975 quantiles from printed tables
    [(1, 12.7062), (2, 4.3027), (5, 2.5706), (10, 2.2281), (30, 2.0423), (120, 1.9799)],
)
def test_t_quantile_matches_the_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-5)


def test_t_quantile_matches_scipy_when_present() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 7, 50, 377, 5000):
        for p in (0.9, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(float(stats.t.ppf(p, df)), rel=1e-9)
