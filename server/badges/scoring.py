"""The console's ratings through the pure evaluator of ``server.badges.rules`` (the same
function as ``qaqpa server badges evaluate``): the journal document is built from the tables
(``service.journal_doc``), the rules decide."""

from __future__ import annotations

import datetime as dt
from typing import Any

from server.badges import rules

LEVEL_DIRECTIONS = {
    "bronze": ("sport", "talents", "volunteering", "reading", "heritage", "trip"),
    "silver": ("sport", "talents", "volunteering", "reading", "heritage", "trip"),
    "gold": ("sport", "talents", "volunteering", "reading", "heritage", "trip", "work"),
}


def evaluate(
    journal: dict[str, Any], today: dt.date, requirements: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One participant's evaluation by the rules: ``{"directions": {...}, "rating": x,
    "complete": b, ...}``; ``requirements`` an individual set (``Requirements.as_dict`` form)."""
    need = rules.requirements_from_mapping(requirements) if requirements is not None else None
    return rules.evaluate(journal, today, need)
