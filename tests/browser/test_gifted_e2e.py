"""The gifted-children registry in a real browser (headless Chromium): the coordinator enters a
consented, nominated child, plans an olympiad on the roadmap, records its prize and sees plan
versus fact, in Kazakh. ``QAQPA_SHOTS=/dir`` saves screenshots of the pages."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from sqlalchemy.orm import Session

from server.clock import now_ms
from server.gifted.models import Nomination
from server.people.models import Consent
from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of

pytestmark = needs_chromium


def _shot(page: Any, name: str) -> None:
    where = os.environ.get("QAQPA_SHOTS")
    if where:
        page.screenshot(path=os.path.join(where, f"{name}.png"), full_page=True)


def test_coordinator_keeps_a_roadmap(app: Any, world: World, db: Session) -> None:
    pk = world.students["s1-3a-1"]
    today = dt.date.today()
    for kind in ("data", "gifted"):
        db.add(
            Consent(
                student_pk=pk,
                kind=kind,
                granted=True,
                given_by="Parent One",
                document=f"Application {kind}",
                signed_on=today,
                recorded_at_ms=now_ms(),
            )
        )
    db.add(
        Nomination(
            student_pk=pk,
            school_id="S1",
            basis="olympiad",
            subject="Математика",
            detail="Аудандық олимпиада",
            place=1,
            nominated_on=today,
            recorded_at_ms=now_ms(),
        )
    )
    db.commit()
    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/login")
        page.fill("input[name=login]", "gifted1")
        page.fill("input[name=password]", password_of("gifted1"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/gifted/student/{pk}")
        assert page.locator("h1").inner_text() == "Жеке жол картасы"
        page.click("button:has-text('Тізілімге енгізу')")
        page.wait_for_selector("#entered")
        form = page.locator("form[action$='/activities']")
        form.locator("select[name=kind]").select_option("olympiad")
        form.locator("input[name=title]").fill("Облыстық олимпиада")
        form.locator("input[name=planned_from]").fill(today.isoformat())
        form.locator("button").click()
        page.wait_for_selector("#activities td:has-text('Облыстық олимпиада')")
        row = page.locator("#activities tbody tr").first
        row.locator("select[name=status]").select_option("done")
        row.locator("input[name=done_on]").fill(today.isoformat())
        row.locator("input[name=place]").fill("1")
        row.locator("button").click()
        page.wait_for_selector("#activities td:has-text('өткізілді')")
        plan = page.locator("#plan").inner_text()
        assert "Жүлделі орындар\t1" in plan or "Жүлделі орындар 1" in plan.replace("\t", " ")
        _shot(page, "roadmap")
        page.goto(f"{url}/gifted")
        assert "Name3AS1" in page.locator("#registry").inner_text()
        _shot(page, "registry")
        page.goto(f"{url}/gifted/statistics")
        assert "Region One" in page.locator("#sheet1").inner_text()
        _shot(page, "statistics")
