"""Message catalogues: Babel ``.po`` files read at start (no compiled ``.mo`` in the repository).

Each server module keeps its own catalogue, ``server/console/locale/<lang>/<module>.po``; all of a
language's files are merged. Kazakh is the default; English msgids are the source text, so the
English catalogue may leave entries empty.
"""

from __future__ import annotations

import contextvars
import gettext as gettext_module
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGS = ("kk", "ru", "en")
DEFAULT_LANG = "kk"
LANG_NAMES = {"kk": "Қазақша", "ru": "Русский", "en": "English"}

current_lang: contextvars.ContextVar[str] = contextvars.ContextVar("lang", default=DEFAULT_LANG)


@cache
def _plural(lang: str) -> Callable[[int], int]:
    expr = Catalog(locale=lang).plural_expr
    fn: Callable[[int], int] = gettext_module.c2py(expr)
    return fn


@cache
def catalogue(lang: str) -> dict[str, str | tuple[str, ...]]:
    out: dict[str, str | tuple[str, ...]] = {}
    for po in sorted((LOCALE_DIR / lang).glob("*.po")):
        with po.open("rb") as f:
            cat = read_po(f, locale=lang)
        for msg in cat:
            if not msg.id or msg.fuzzy:
                continue
            key = str(msg.id[0] if isinstance(msg.id, (tuple, list)) else msg.id)
            if isinstance(msg.string, (tuple, list)):
                if any(msg.string):
                    out[key] = tuple(str(x) for x in msg.string)
            elif msg.string:
                out[key] = str(msg.string)
    return out


def gettext(message: str, lang: str | None = None) -> str:
    found = catalogue(lang or current_lang.get()).get(message)
    return found if isinstance(found, str) else message


def ngettext(singular: str, plural: str, n: int, lang: str | None = None) -> str:
    lang = lang or current_lang.get()
    found = catalogue(lang).get(singular)
    if isinstance(found, tuple):
        return found[min(_plural(lang)(n), len(found) - 1)]
    return singular if n == 1 else plural


def pick_lang(*candidates: str | None) -> str:
    for c in candidates:
        if c and c[:2] in LANGS:
            return c[:2]
    return DEFAULT_LANG


_ = gettext
