"""The allergen names the kiosk and the parent's page show instead of codes."""

from __future__ import annotations

import re

from protocol.allergens import ALLERGENS, allergen_name, allergen_names


def test_every_allergen_has_a_name_in_each_language_and_a_valid_code() -> None:
    for code, names in ALLERGENS.items():
        assert re.fullmatch(r"[a-z0-9_-]{1,32}", code), code  # what a menu may carry
        assert set(names) == {"kk", "ru", "en"}, code
        assert all(n.strip() for n in names.values()), code
    kk = [names["kk"] for names in ALLERGENS.values()]
    assert len(set(kk)) == len(kk)  # two allergens never read the same


def test_names_follow_the_language_and_unknown_codes_stay_as_typed() -> None:
    assert allergen_names(["milk", "gluten"], "kk") == ["сүт", "глютен"]
    assert allergen_name("milk", "ru") == "молоко"
    assert allergen_name("kurt", "kk") == "kurt"  # the school's own code, shown as typed
