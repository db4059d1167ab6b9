"""The console's ratings through the pure evaluator of ``server.badges.rules`` (the same
function as ``qaqpa server badges evaluate``): the journal document is built here from the
tables, the rules decide.

The evaluator is looked up at call time, so the module works while the rules are being built
beside it; ``fallback_evaluate`` (confirmed entries only, a crude count) answers until then.
"""

from __future__ import annotations

import datetime as dt
import importlib
from decimal import Decimal
from typing import Any

LEVEL_DIRECTIONS = {
    "bronze": ("sport", "talents", "volunteering", "reading", "heritage", "trip"),
    "silver": ("sport", "talents", "volunteering", "reading", "heritage", "trip"),
    "gold": ("sport", "talents", "volunteering", "reading", "heritage", "trip", "work"),
}


def evaluate(journal: dict[str, Any], today: dt.date) -> dict[str, Any]:
    """One participant's evaluation: ``{"directions": {...}, "rating": x, "complete": b, ...}``."""
    try:
        rules = importlib.import_module("server.badges.rules")
    except ModuleNotFoundError:
        return fallback_evaluate(journal, today)
    fn = getattr(rules, "evaluate", None)
    if fn is None:
        return fallback_evaluate(journal, today)
    parse = getattr(rules, "journal_from_mapping", None)
    try:
        result = fn(parse(journal) if parse is not None else journal, today)
    except TypeError:
        result = fn(journal, today)
    out = result if isinstance(result, dict) else getattr(result, "as_dict", lambda: {})()
    if not isinstance(out, dict):
        return fallback_evaluate(journal, today)
    return out


def fallback_evaluate(journal: dict[str, Any], today: dt.date) -> dict[str, Any]:
    """A stand-in for the rules (no age check, no title normalisation): weeks with at least
    one confirmed hour, books, the longest trip and work days against the level's numbers."""
    start = dt.date.fromisoformat(journal["start"])
    level = journal["level"]
    plan = journal["plan"]
    long_ = plan.get("long", "sport")
    other = "talents" if long_ == "sport" else "sport"
    weeks_need = {
        "bronze": {"sport": 13, "talents": 13, "volunteering": 13},
        "silver": {long_: 26, other: 13, "volunteering": 26},
        "gold": {long_: 39, other: 26, "volunteering": 52},
    }[level]
    heritage = plan["heritage"]
    if heritage["mode"] == "weeks":
        weeks_need["heritage"] = 13 * int(heritage["months"]) // 3
    hours: dict[str, dict[tuple[int, int], Decimal]] = {d: {} for d in weeks_need}
    books: set[str] = set()
    trip = 0
    work = 0
    for e in journal["entries"]:
        day = dt.date.fromisoformat(e["date"])
        if e["status"] != "confirmed" or not start <= day <= today:
            continue
        d = e["direction"]
        if "book" in e:
            books.add(str(e["book"]).strip().casefold())
        elif d == "trip":
            trip = max(trip, int(e["days"]))
        elif d == "work":
            work += int(e["days"])
        elif d in hours:
            wk = day.isocalendar()[:2]
            hours[d][wk] = hours[d].get(wk, Decimal(0)) + Decimal(str(e["hours"]))
    pct: dict[str, Decimal] = {}
    for d, need in weeks_need.items():
        met = sum(1 for h in hours[d].values() if h >= 1)
        pct[d] = min(Decimal(100), Decimal(100) * met / need)
    need_books = {"bronze": 3, "silver": 6, "gold": 9}[level]
    pct["reading"] = min(Decimal(100), Decimal(100) * len(books) / need_books)
    if heritage["mode"] == "book":
        pct["heritage"] = Decimal(0)
    pct["trip"] = min(Decimal(100), Decimal(100) * trip / (2 if level == "bronze" else 3))
    if level == "gold":
        pct["work"] = min(Decimal(100), Decimal(100) * work / 5)
    dirs = LEVEL_DIRECTIONS[level]
    rating: Decimal = sum((pct[d] for d in dirs), Decimal(0)) / len(dirs)
    return {
        "participant": journal["participant"],
        "level": level,
        "eligible_age": True,
        "directions": {d: float(round(pct[d], 1)) for d in dirs},
        "rating": float(round(rating, 1)),
        "complete": all(pct[d] == 100 for d in dirs),
    }
