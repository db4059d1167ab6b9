"""The edge's school policy the decision tests and the face tests share."""

from __future__ import annotations

from typing import Any

from edge.core.model import Policy
from protocol.messages import (
    AntiPassback,
    MealPeriodDoc,
    PolicyDoc,
    ShiftDoc,
)


def policy_doc(**over: Any) -> PolicyDoc:
    fields: dict[str, Any] = {
        "timezone": "Asia/Almaty",
        "free_meal_grades": [1, 2, 3, 4],
        "free_meal_categories": ["large_family", "orphan"],
        "anti_passback": AntiPassback.HARD,
        "manual_pass_roles": ["class_teacher", "deputy_director_on_duty"],
        "shifts": [
            ShiftDoc(number=1, entry_from="07:00", entry_to="13:00"),
            ShiftDoc(number=2, entry_from="12:30", entry_to="18:30"),
        ],
        "meal_periods": [
            MealPeriodDoc(name="breakfast", shifts=[1], from_="09:30", to="10:30"),
            MealPeriodDoc(name="lunch", shifts=[1, 2], from_="12:00", to="13:30"),
        ],
    }
    fields.update(over)
    return PolicyDoc(**fields)


def policy(**over: Any) -> Policy:
    return Policy.from_doc(policy_doc(**over))


POLICY = policy()
