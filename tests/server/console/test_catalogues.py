"""Every message the console shows has a Kazakh and a Russian translation (English is the
source text). Messages are found in templates (``_('...')``) and in Python (``tr(request, "...")``,
``nav_item(...)`` labels, error pages' ``"message"``, and ``N_("...")`` marks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.console import i18n

ROOT = Path(__file__).resolve().parents[3] / "server"
TEMPLATE_RE = re.compile(r"""\b_\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*[,)]""")
PY_RES = [
    re.compile(r"""\btr\(\s*\w+,\s*"((?:[^"\\]|\\.)*)"\s*\)"""),
    re.compile(r"""\bnav_item\(\s*"[^"]*",\s*"[^"]*",\s*"((?:[^"\\]|\\.)*)\""""),
    re.compile(r""""message":\s*"((?:[^"\\]|\\.)*)\""""),
    re.compile(r"""\bN_\(\s*"((?:[^"\\]|\\.)*)"\s*\)"""),
]


def used_messages() -> set[str]:
    found: set[str] = set()
    for html in ROOT.rglob("*.html"):
        for m in TEMPLATE_RE.finditer(html.read_text()):
            found.add(m.group(1) if m.group(1) is not None else m.group(2))
    for py in ROOT.rglob("*.py"):
        text = py.read_text()
        for rx in PY_RES:
            found |= set(rx.findall(text))
    return {m for m in found if m}


def test_messages_are_found() -> None:
    assert {"Sign in", "Users", "Wrong login or password."} <= used_messages()


@pytest.mark.parametrize("lang", ["kk", "ru"])
def test_every_message_is_translated(lang: str) -> None:
    i18n.catalogue.cache_clear()
    missing = sorted(m for m in used_messages() if m not in i18n.catalogue(lang))
    assert not missing, f"{len(missing)} messages without a {lang} translation: {missing[:20]}"


KEYED = re.compile(r"[a-z][a-z_-]*:[A-Za-z0-9_.-]+")  # "consent:data", "edge-role:admin"


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_a_keyed_message_has_text_in_every_language(lang: str) -> None:
    """A key such as ``consent:data`` is not English source text: every catalogue, the English
    one too, must say what it means, or the page shows the raw key."""
    i18n.catalogue.cache_clear()
    ids: set[str] = set()
    for po in (i18n.LOCALE_DIR / lang).glob("*.po"):
        ids |= {m for m in re.findall(r'^msgid "([^"]+)"$', po.read_text(), re.M)}
    bare = sorted(m for m in ids if KEYED.fullmatch(m) and m not in i18n.catalogue(lang))
    assert not bare, f"{len(bare)} keys without {lang} text: {bare[:20]}"


def test_kazakh_puts_the_date_before_its_postposition() -> None:
    """ "бастап 2026-10-08" read wrong: Kazakh says "2026-10-08 бастап" (and "... дейін")."""
    from server.console.web import env

    i18n.catalogue.cache_clear()
    page = env.from_string("{{ _('since %(date)s', date=d) }} / {{ _('until %(date)s', date=d) }}")
    said = {}
    for lang in ("kk", "ru", "en"):
        token = i18n.current_lang.set(lang)
        try:
            said[lang] = page.render(d="2026-10-08")
        finally:
            i18n.current_lang.reset(token)
    assert said == {
        "kk": "2026-10-08 бастап / 2026-10-08 дейін",
        "ru": "с 2026-10-08 / до 2026-10-08",
        "en": "since 2026-10-08 / until 2026-10-08",
    }


def audit_terms() -> set[str]:
    """The actions and subjects the server's ``audit(...)`` calls write (constants only; a
    subject such as ``f"student:{pk}"`` counts as ``student``)."""
    import ast

    terms: set[str] = set()
    for py in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if not isinstance(node, ast.Call) or len(node.args) < 4:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name not in ("audit", "_audit"):
                continue
            for arg in node.args[2:4]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    terms.add(arg.value)
                elif isinstance(arg, ast.JoinedStr) and isinstance(arg.values[0], ast.Constant):
                    terms.add(str(arg.values[0].value).rstrip(":"))
    return terms


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_the_audit_log_speaks_every_language(lang: str) -> None:
    i18n.catalogue.cache_clear()
    terms = audit_terms()
    assert {"view", "student", "reports.attendance"} <= terms
    missing = sorted(t for t in terms if f"audit:{t}" not in i18n.catalogue(lang))
    assert not missing, f"audit words without {lang} text (audit.po): {missing}"


@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_every_consent_kind_has_a_name(lang: str) -> None:
    from protocol.messages import ConsentKind

    i18n.catalogue.cache_clear()
    missing = [k.value for k in ConsentKind if f"consent:{k.value}" not in i18n.catalogue(lang)]
    assert not missing, f"consent kinds without {lang} text: {missing}"
