"""Every page, every role, every language: a crawler signs in as each role and follows the
console's links in kk, ru and en, failing on a server error, a raw message id, or English words
left on a Kazakh or Russian page.

Allowed in Latin script on a kk/ru page: what users typed (every string stored in the database:
names, logins, ids), codes and units (CSV, SHA-256, ₸...), and whatever sits in ``<code>``,
``<kbd>``, ``<pre>``, ``<script>``, ``<style>`` or an element marked ``translate="no"``.
"""

from __future__ import annotations

import re
from collections import deque
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import String, Text, select
from sqlalchemy.orm import Session

from server.models import Base
from tests.support.console import World

ROLES = [
    "operator",
    "regional",
    "admin1",
    "duty1",
    "teacher1",
    "social1",
    "canteen1",
    "parent1",
    "gifted1",
    "giftedr",
    "librarian1",
    "approver1",
    "coord1",
    "volunteer1",
    "council1",
    "counsel1",
]
LANGS = ["kk", "ru", "en"]
PER_ROLE = 120  # pages per role and language: every page of the console, with room to grow
PER_PATH = 2  # the same page with other query strings (another day, another class)

# Not pages to read: downloads, sign-out, the API.
SKIP = re.compile(
    r"^/(?:logout|static/|api/|openapi\.json|docs)|\.(?:csv|xlsx|pdf|png|svg)(?:$|\?)|/export"
    r"|/download|/template"
)
# Words and codes that are the same in every language.
CODES = {
    "qaqpa",
    "csv",
    "xlsx",
    "pdf",
    "sha",
    "sms",
    "qr",
    "id",
    "url",
    "mqtt",
    "osdp",
    "pin",
    "utf",
    "bom",
    "kz",
    "kzt",
    "iin",
    "api",
    "json",
    "push",
    "e-mail",
    "email",
    "www",
    "http",
    "https",
    "ok",
    "min",
    "max",
    "am",
    "pm",
    "tls",
    "html",
    "ms",
    "gb",
    "mb",
    "kb",
    "windows",
    "excel",
    "libreoffice",
    "android",
    "ios",
}
# a word in Latin letters; one with a digit or an underscore is a code (student_ref, KZ-1048)
LATIN_WORD = re.compile(r"(?<![\w-])[A-Za-z][A-Za-z'-]*[A-Za-z](?![\w-])")
RAW_ID = re.compile(r"\b[a-z]+(?:[-_][a-z]+)*:[a-z_]+[a-z]\b")
SKIP_TAGS = {"code", "kbd", "pre", "script", "style", "textarea", "samp"}
VOID = {"input", "img", "br", "hr", "meta", "link", "source", "wbr", "area", "col"}


class Page(HTMLParser):
    """The text a person reads on the page, and its links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []
        self._skip: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        quiet = tag in SKIP_TAGS or a.get("translate") == "no"
        if quiet and tag not in VOID:
            self._skip.append(tag)
        if quiet or self._skip:
            return
        for name in ("title", "placeholder", "aria-label", "alt"):
            if a.get(name):
                self.text.append(str(a[name]))
        if tag in ("input", "button") and a.get("type") in ("submit", "button") and a.get("value"):
            self.text.append(str(a["value"]))

    def handle_endtag(self, tag: str) -> None:
        if self._skip and self._skip[-1] == tag:
            self._skip.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(data)


def typed_words(db: Session) -> set[str]:
    """Every Latin word stored in the database: what users typed is shown as typed."""
    words: set[str] = set()
    for table in Base.metadata.sorted_tables:
        cols = [c for c in table.columns if isinstance(c.type, (String, Text))]
        if not cols:
            continue
        for row in db.execute(select(*cols)).all():
            for value in row:
                if isinstance(value, str):
                    words |= {w.casefold() for w in LATIN_WORD.findall(value)}
    return words


def key(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = sorted(parse_qsl(parts.query))
    return parts.path, urlencode(query)


def crawl(browser: Any) -> dict[str, tuple[int, str]]:
    seen: dict[str, tuple[int, str]] = {}
    per_path: dict[str, int] = {}
    queue: deque[str] = deque(["/"])
    while queue and len(seen) < PER_ROLE:
        url = queue.popleft()
        path, query = key(url)
        full = path + ("?" + query if query else "")
        if full in seen or per_path.get(path, 0) >= PER_PATH:
            continue
        per_path[path] = per_path.get(path, 0) + 1
        r = browser.get(full)
        body = r.text if "text/html" in r.headers.get("content-type", "") else ""
        seen[full] = (r.status_code, body)
        location = r.headers.get("location", "")
        if r.status_code in (302, 303, 307) and location.startswith("/"):
            queue.append(location)  # a page that sends the reader on (a parent's home)
        if r.status_code != 200 or not body:
            continue
        page = Page()
        page.feed(body)
        for href in page.links:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or not parts.path.startswith("/"):
                continue
            if SKIP.search(href):
                continue
            queue.append(href.split("#")[0])
    return seen


def problems(lang: str, html: str, allowed: set[str]) -> list[str]:
    page = Page()
    page.feed(html)
    found = []
    for text in page.text:
        for raw in RAW_ID.findall(text):
            found.append(f"raw message id {raw!r} in {text.strip()[:80]!r}")
        if lang == "en":
            continue
        for word in LATIN_WORD.findall(text):
            if word.casefold() not in allowed and word.casefold() not in CODES:
                found.append(f"English {word!r} in {text.strip()[:80]!r}")
    return found


@pytest.mark.parametrize("login", ROLES)
def test_every_page_in_every_language(
    login: str, make_browser: Any, world: World, db: Session
) -> None:
    allowed = typed_words(db)
    browser = make_browser(login)
    report: list[str] = []
    for lang in LANGS:
        browser.post("/lang", {"lang": lang, "next": "/"})
        pages = crawl(browser)
        assert len(pages) >= 2, f"{login} reached only {list(pages)}"  # home and their pages
        for url, (status, html) in pages.items():
            if status >= 500:
                report.append(f"{lang} {url}: HTTP {status}")
            for p in sorted(set(problems(lang, html, allowed))):
                report.append(f"{lang} {url}: {p}")
    assert not report, f"{login}: {len(report)} problems\n" + "\n".join(report)
