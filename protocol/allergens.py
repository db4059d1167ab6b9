"""The allergens a dish may hold and a parent may block, with their names in kk, ru and en.

The codes are those of the 14 allergens that food labels name (TR CU 022/2011 follows the same
list), plus honey, common in Kazakh school kitchens. A menu may still carry a code of its own
(``[a-z0-9_-]``): it is shown as typed, since someone at the school wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable

ALLERGENS: dict[str, dict[str, str]] = {
    "milk": {"kk": "сүт", "ru": "молоко", "en": "milk"},
    "eggs": {"kk": "жұмыртқа", "ru": "яйца", "en": "eggs"},
    "gluten": {"kk": "глютен", "ru": "глютен", "en": "gluten"},
    "nuts": {"kk": "жаңғақ", "ru": "орехи", "en": "nuts"},
    "peanuts": {"kk": "жержаңғақ", "ru": "арахис", "en": "peanuts"},
    "fish": {"kk": "балық", "ru": "рыба", "en": "fish"},
    "crustaceans": {"kk": "шаян тәрізділер", "ru": "ракообразные", "en": "crustaceans"},
    "molluscs": {"kk": "ұлулар", "ru": "моллюски", "en": "molluscs"},
    "soy": {"kk": "соя", "ru": "соя", "en": "soy"},
    "sesame": {"kk": "күнжіт", "ru": "кунжут", "en": "sesame"},
    "celery": {"kk": "балдыркөк", "ru": "сельдерей", "en": "celery"},
    "mustard": {"kk": "қыша", "ru": "горчица", "en": "mustard"},
    "lupin": {"kk": "люпин", "ru": "люпин", "en": "lupin"},
    "sulphites": {"kk": "сульфиттер", "ru": "сульфиты", "en": "sulphites"},
    "honey": {"kk": "бал", "ru": "мёд", "en": "honey"},
}


def allergen_name(code: str, lang: str) -> str:
    """The allergen's name in ``lang``; an unknown code as it was typed."""
    names = ALLERGENS.get(code)
    if names is None:
        return code
    return names.get(lang, names["en"])


def allergen_names(codes: Iterable[str], lang: str) -> list[str]:
    return [allergen_name(c, lang) for c in codes]
