"""Importing a roster in a real browser (headless Chromium), in Kazakh: a broken file shows its
errors and offers no import; a good XLSX is previewed, imported, and its student's card shows
the recorded data consent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of
from tests.support.roster import GOOD, csv_of, xlsx_of

pytestmark = needs_chromium


def test_import_a_roster_in_the_browser(app: Any, world: World, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    no_consent = {"consent_given_by": "", "consent_document": "", "consent_date": ""}
    bad.write_bytes(csv_of([GOOD[0] | no_consent]))
    good = tmp_path / "roster.xlsx"
    good.write_bytes(xlsx_of(GOOD))
    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/login?next=/roster/import")
        page.fill("input[name=login]", "admin1")
        page.fill("input[name=password]", password_of("admin1"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/roster/import")
        assert page.locator("h1").inner_text() == "Тізімді жүктеу"
        assert page.locator("a[href='/roster/import/template.xlsx']").count() == 1

        page.set_input_files("input[type=file]", str(bad))
        page.click("form[action='/roster/import'] button[type=submit]")
        page.wait_for_selector("#errors")
        cells = page.locator("#errors tbody tr td").all_inner_texts()
        assert cells[:2] == ["2", "consent_given_by"]
        assert "келісім жоқ" in cells[2]
        assert page.locator("form[action='/roster/import/confirm']").count() == 0

        page.goto(f"{url}/roster/import")
        page.set_input_files("input[type=file]", str(good))
        page.click("form[action='/roster/import'] button[type=submit]")
        page.wait_for_selector("#rows")
        assert page.locator("#rows tbody tr").count() == 2
        page.click("form[action='/roster/import/confirm'] button")
        page.wait_for_selector("#flash")  # redirected to the school's students, said once
        assert "Тізім жүктелді" in page.locator("#flash").inner_text()
        assert "/students?school=S1" in page.url

        page.goto(f"{url}/students?school=S1&q=s1-new-1")
        page.click("a:has-text('Ахметов Айдос')")
        page.wait_for_selector("text=Өтініш №12")
        assert "берілген" in page.locator("table").nth(1).inner_text()
