"""The growth table (seed 001's central result) and its statistics: pure, exact where it can be.

Scores arrive in hundredths of a percent (``score_centi``, 0-10000), so the means of the paired
students are exact fractions; ``growth`` is ``after - before`` of those means, the normalised
gain ``(after - before) / (100 - before)`` (Hake's gain, from the means; None when before is 100)
lets an 8-hour course be compared with a 48-hour one, and ``growth_ci95`` is the paired
t-interval of the students' differences. Percentages are rounded half up to one decimal, the
gain to three (``decimal.ROUND_HALF_UP``, never Python's round-half-even).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

PRE = "pre"
POST = "post"


@dataclass(frozen=True, slots=True)
class CourseResult:
    """One student's result in one direction (what the gifted-children registry shows on a
    roadmap). Scores in percent; None for a test not taken."""

    direction: str
    subject: str | None
    hours: int
    before: float | None
    after: float | None


@dataclass(frozen=True, slots=True)
class DirectionFigures:
    """What the growth table needs of a direction besides the tests."""

    direction: str
    hours: int
    volunteers: int  # distinct volunteers assigned


@dataclass(frozen=True, slots=True)
class Score:
    student: str  # a participant's code (roster ref or pseudonymous code)
    direction: str
    phase: str  # PRE | POST
    score_centi: int  # 0..10000


@dataclass(frozen=True, slots=True)
class GrowthRow:
    direction: str
    hours: int
    volunteers: int
    students: int
    paired: int
    only_pre: int
    only_post: int
    before: Decimal | None
    after: Decimal | None
    growth: Decimal | None
    normalised_gain: Decimal | None
    growth_ci95: tuple[Decimal, Decimal] | None

    def as_json(self) -> dict[str, Any]:
        def num(d: Decimal | None) -> float | None:
            return None if d is None else float(d)

        return {
            "direction": self.direction,
            "hours": self.hours,
            "volunteers": self.volunteers,
            "students": self.students,
            "paired": self.paired,
            "only_pre": self.only_pre,
            "only_post": self.only_post,
            "before": num(self.before),
            "after": num(self.after),
            "growth": num(self.growth),
            "normalised_gain": num(self.normalised_gain),
            "growth_ci95": (
                None
                if self.growth_ci95 is None
                else [float(self.growth_ci95[0]), float(self.growth_ci95[1])]
            ),
        }


# ------------------------------------------------------------------------------- rounding


def round_half_up(x: Fraction | Decimal | float | int, places: int) -> Decimal:
    """``x`` rounded half up (away from zero on a tie) to ``places`` decimals. A Fraction is
    rounded exactly; a float by its shortest decimal representation (``repr``)."""
    q = Decimal(1).scaleb(-places)
    if isinstance(x, Fraction):
        # exact: scale, round the fraction half away from zero, scale back
        scaled = x * 10**places
        sign = -1 if scaled < 0 else 1
        n = (abs(scaled) + Fraction(1, 2)).__floor__()
        return (Decimal(sign * n).scaleb(-places)).quantize(q)
    d = Decimal(repr(x)) if isinstance(x, float) else Decimal(x)
    return d.quantize(q, rounding=ROUND_HALF_UP)


# -------------------------------------------------------------------- Student's t quantile


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(ln_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom, by
    bisection on the CDF (monotone, so it cannot miss)."""
    if not 0.5 < p < 1.0 or df < 1:
        raise ValueError("t_quantile needs 0.5 < p < 1 and df >= 1")
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return (lo + hi) / 2.0


# ---------------------------------------------------------------------------- the table


def paired_ci95(diffs_centi: Sequence[int]) -> tuple[float, float] | None:
    """The 95 % paired t-interval of the mean difference, in percentage points; None for
    fewer than two pairs."""
    n = len(diffs_centi)
    if n < 2:
        return None
    mean = Fraction(sum(diffs_centi), n)
    ss = sum((Fraction(d) - mean) ** 2 for d in diffs_centi)
    sd = math.sqrt(ss / (n - 1)) / 100.0
    margin = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    centre = float(mean / 100)
    return centre - margin, centre + margin


def growth_row(figures: DirectionFigures, scores: Iterable[Score]) -> GrowthRow:
    pre: dict[str, int] = {}
    post: dict[str, int] = {}
    for s in scores:
        if s.direction != figures.direction:
            continue
        (pre if s.phase == PRE else post)[s.student] = s.score_centi
    paired = sorted(set(pre) & set(post))
    n = len(paired)
    before = after = growth = gain = None
    ci: tuple[Decimal, Decimal] | None = None
    if n:
        b = Fraction(sum(pre[k] for k in paired), 100 * n)
        a = Fraction(sum(post[k] for k in paired), 100 * n)
        before, after, growth = round_half_up(b, 1), round_half_up(a, 1), round_half_up(a - b, 1)
        gain = None if b == 100 else round_half_up((a - b) / (100 - b), 3)
        interval = paired_ci95([post[k] - pre[k] for k in paired])
        if interval is not None:
            ci = (round_half_up(interval[0], 1), round_half_up(interval[1], 1))
    return GrowthRow(
        direction=figures.direction,
        hours=figures.hours,
        volunteers=figures.volunteers,
        students=len(set(pre) | set(post)),
        paired=n,
        only_pre=len(set(pre) - set(post)),
        only_post=len(set(post) - set(pre)),
        before=before,
        after=after,
        growth=growth,
        normalised_gain=gain,
        growth_ci95=ci,
    )


def growth_table(
    directions: Sequence[DirectionFigures], scores: Sequence[Score]
) -> list[GrowthRow]:
    """One row per direction, in the given order."""
    by_direction: dict[str, list[Score]] = {}
    for s in scores:
        by_direction.setdefault(s.direction, []).append(s)
    return [growth_row(d, by_direction.get(d.direction, [])) for d in directions]
