"""Meal helpers both the pass decision and the canteen's money decision read: which meal period
serves a shift at a time, and whether a student eats free on a day. Pure."""

from __future__ import annotations

import datetime as dt

from edge.core.model import MealPeriod, Policy, Student


def meal_period_at(policy: Policy, shift: int, t: dt.time) -> MealPeriod | None:
    """The meal period serving ``shift`` at local time ``t`` (policies forbid overlaps)."""
    for period in policy.meal_periods:
        if shift in period.shifts and period.covers(t):
            return period
    return None


def free_meal_eligible(policy: Policy, student: Student, day: dt.date) -> bool:
    if student.grade in policy.free_meal_grades:
        return True
    return any(
        c.code in policy.free_meal_categories and c.valid_on(day) for c in student.categories
    )
