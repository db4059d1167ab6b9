"""The console as people see it: a sample of pages per role, kk/ru/en, on a 1,280 px desktop and
a phone. On the desktop no table is wider than the window; on the phone the page itself never
scrolls sideways (a wide table scrolls inside its own frame) and the menu is folded. Screenshots
are kept as test artefacts (``QAQPA_ARTIFACTS``, default ``/tmp/qaqpa-artifacts/layout``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of

pytestmark = needs_chromium

ARTIFACTS = Path(os.environ.get("QAQPA_ARTIFACTS", "/tmp/qaqpa-artifacts")) / "layout"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SAMPLE = {
    "admin1": [
        "/",
        "/students",
        "/cards",
        "/consents",
        "/reports/attendance",
        "/canteen",
        "/policy",
    ],
    "duty1": ["/", "/refused", "/status", "/reports/evacuation"],
    "teacher1": ["/", "/students", "/reports/attendance"],
    "canteen1": ["/", "/canteen", "/reports/meals"],
    "parent1": ["/parent", "/canteen/parent"],
    "operator": ["/", "/users", "/audit", "/notifications"],
}
LANG = {"admin1": "kk", "duty1": "kk", "teacher1": "ru", "canteen1": "ru", "parent1": "kk"}

OVERFLOW = """() => {
  const w = window.innerWidth;
  const tables = [...document.querySelectorAll('table')]
    .filter((t) => t.getBoundingClientRect().width > w + 1)
    .map((t) => (t.id || t.className || 'table') + ' ' + Math.round(t.getBoundingClientRect().width));
  return {page: document.documentElement.scrollWidth - w, tables};
}"""


def sign_in(page: Any, url: str, login: str, lang: str) -> None:
    page.goto(f"{url}/login")
    page.select_option("select[name=lang]", lang)
    page.wait_for_load_state()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password_of(login))
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.parametrize("login", sorted(SAMPLE))
def test_pages_fit_a_desktop_and_a_phone(app: Any, world: World, login: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with serve(app) as url, chromium() as browser:
        for name, size in (("desktop", DESKTOP), ("phone", PHONE)):
            context = browser.new_context(viewport=size)
            page = context.new_page()
            sign_in(page, url, login, LANG.get(login, "en"))
            for path in SAMPLE[login]:
                page.goto(url + path)
                page.wait_for_load_state()
                shot = ARTIFACTS / f"{login}-{name}{path.replace('/', '_') or '_'}.png"
                page.screenshot(path=str(shot), full_page=True)
                found = page.evaluate(OVERFLOW)
                if found["page"] > 1:
                    problems.append(
                        f"{name} {path}: the page scrolls sideways by {found['page']} px"
                    )
                if name == "desktop" and found["tables"]:
                    problems.append(f"{name} {path}: tables wider than 1280 px: {found['tables']}")
                if name == "phone":
                    menu = page.locator("details.menu-all")
                    if menu.count() and menu.get_attribute("open") is not None:
                        problems.append(f"{name} {path}: the menu is not folded")
            context.close()
    assert not problems, "\n".join(problems)
