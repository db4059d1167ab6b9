"""Every word of the staff page, the shell's and every registered section's, in kk, ru and en;
sections' routes stay under their own prefix."""

from __future__ import annotations

from edge.core.reasons import Lang
from edge.staff.i18n import Strings
from edge.staff.registry import SECTIONS


def test_every_string_in_three_languages() -> None:
    strings = Strings(*(s.strings for s in SECTIONS))
    for key in strings.all_keys():
        texts = strings.table(key)
        assert all(texts.get(lang, "").strip() for lang in Lang), key
    for section in SECTIONS:
        assert section.title_key in strings.all_keys(), section.name


def test_sections_are_unique_and_prefixed() -> None:
    names = [s.name for s in SECTIONS]
    prefixes = [s.route_prefix for s in SECTIONS]
    assert len(set(names)) == len(names) and len(set(prefixes)) == len(prefixes)
    assert all(
        p.startswith("/") and p not in ("/", "/login", "/logout", "/static") for p in prefixes
    )
