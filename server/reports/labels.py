"""Texts of the reports outside templates (export headers, chart titles, category names).

``N_`` marks an English msgid for the catalogue test; ``t`` translates it for one language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from server.console import i18n
from server.reports import calc

Translate = Callable[[str], str]


def N_(message: str) -> str:  # the gettext convention: mark now, translate later
    return message


def translator(lang: str) -> Translate:
    return lambda message: i18n.gettext(message, lang)


# The usual social categories (server.consents' CategoryCode values, DOMAIN.md section 1);
# an unknown code is shown as it is.
CATEGORY_NAMES = {
    "targeted_assistance": N_("Targeted social assistance"),
    "below_subsistence": N_("Below the subsistence minimum"),
    "orphan": N_("Orphans and children without parental care"),
    "large_family": N_("Large families"),
    "emergency": N_("Families in emergency situations"),
    "board_decision": N_("Board of trustees decision"),
}


def grades_label(t: Translate, grades: Sequence[int]) -> str:
    if not grades:
        return t(N_("Free grades"))
    lo, hi = min(grades), max(grades)
    span = f"{lo}–{hi}" if hi > lo else f"{lo}"
    word = t(N_("Grades"))
    return f"{word} {span}"


def category_label(t: Translate, code: str, grades: Sequence[int]) -> str:
    if code == calc.GRADES:
        return grades_label(t, grades)
    if code == calc.OTHER:
        return t(N_("Other (eligibility changed since)"))
    name = CATEGORY_NAMES.get(code)
    return t(name) if name else code


def meal_kind_label(t: Translate, kind: str | None) -> str:
    return {
        "free": t(N_("free")),
        "paid": t(N_("paid")),
        "voucher": t(N_("voucher")),
    }.get(kind or "", kind or "")


def direction_label(t: Translate, direction: str | None) -> str:
    return {"in": t(N_("in")), "out": t(N_("out"))}.get(direction or "", direction or "")
