"""A volunteer keeps the attendance journal of their group in a real browser (headless
Chromium, in Kazakh): signs in, opens their group, adds a session, ticks who came, saves, and
the journal shows the marks; another volunteer's group is not there."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.tutoring.models import Attendance, Lesson
from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of
from tests.support.tutoring import make_project

pytestmark = needs_chromium


def test_volunteer_marks_attendance(app: Any, db: Session, world: World) -> None:
    t = make_project(db, world)
    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/login?next=/tutoring/journal")
        page.fill("input[name=login]", "volunteer1")
        page.fill("input[name=password]", password_of("volunteer1"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/tutoring/journal")
        assert page.locator("h1").inner_text() == "Қатысу журналы"
        groups = page.locator("#my-groups li").all_inner_texts()
        assert len(groups) == 1 and groups[0].startswith("G1")

        page.click("#my-groups a:has-text('G1')")
        page.wait_for_selector("#new-session")
        page.fill("#new-session input[name=held_on]", "2026-03-09")
        page.fill("#new-session input[name=topic]", "Present Simple")
        page.click("#new-session button[type=submit]")
        page.wait_for_selector("#attendance")
        assert "2026-03-09" in page.locator("h3").nth(1).inner_text()
        rows = page.locator("#attendance tbody tr")
        assert rows.count() == 3  # G1's three students; G2's is not here
        # s1-3a-1 and s1-3a-2 came, s1-7b-1 did not
        for i in range(rows.count()):
            name = rows.nth(i).locator("td").first.inner_text()
            if "Name3AS1" in name:
                rows.nth(i).locator("input[name=present]").check()
        page.click("#attendance button[type=submit]")
        page.wait_for_selector("p.ok[role=status]")
        badges = page.locator("#attendance .badge").all_inner_texts()
        assert sorted(badges) == ["жоқ", "келді", "келді"]

    lesson = db.execute(
        select(Lesson).where(Lesson.group_pk == t.group1, Lesson.topic == "Present Simple")
    ).scalar_one()
    marks = dict(
        db.execute(
            select(Attendance.participant_pk, Attendance.present).where(
                Attendance.session_pk == lesson.pk
            )
        ).all()
    )
    assert marks == {
        t.participants["s1-3a-1"]: True,
        t.participants["s1-3a-2"]: True,
        t.participants["s1-7b-1"]: False,
    }
