"""The console's whole story in a real browser (headless Chromium), against a simulated school
(the real edge: store, pipeline, EM-Marine driver on a pty, sync over Mosquitto) and the real
server services (ingest, downlink, notifications to a local SMS gateway):

a school admin imports a roster, records the parent's consent to notifications; a card is bound
at the school's desk and its record (never the number) shows in the console; the child taps at
the turnstile, the entry appears on the
evacuation list; the parent, invited by link, sees the entry and the SMS it caused on their
page; the admin downloads the monthly free-meal statement.
"""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy.orm import Session

from protocol.messages import PolicySet
from server.settings import ServerSettings
from server.sync.changelog import append_changes
from simulators.notify_sinks import demo_notifications
from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of
from tests.support.roster import GOOD, csv_of
from tests.support.school_sim import ALL_DAY, SimSchool
from tests.support.wait import wait_until

pytestmark = [needs_chromium, pytest.mark.mosquitto]
CARD = "EM:0012345678"


def sign_in(page: Any, url: str, login: str, password: str, then: str) -> None:
    page.goto(f"{url}/login?next={then}")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{then}")


def poll_page(page: Any, address: str, text: str, timeout: float = 30.0) -> None:
    def shows() -> bool:
        page.goto(address)
        return text in page.content()

    wait_until(shows, timeout, f"{text!r} appears on {address}", interval=0.5)


def test_a_school_day_through_the_console(
    app: Any, world: World, settings: ServerSettings, db: Session, tmp_path: Path
) -> None:
    append_changes(db, "S1", [PolicySet(policy=ALL_DAY)])  # the gate is open all day
    db.commit()
    roster = tmp_path / "roster.csv"
    roster.write_bytes(csv_of([GOOD[0]]))  # Ахметов Айдос, 3A, parent Ахметова Гүлнар
    (tmp_path / "school").mkdir()
    with (
        SimSchool(settings, "S1", tmp_path / "school") as school,
        demo_notifications(settings.database_url) as (sms, _smtp),
        serve(app) as url,
        chromium() as browser,
    ):
        admin = browser.new_page()
        sign_in(admin, url, "admin1", password_of("admin1"), "/roster/import")

        # 1. the roster, with the parent's written consent to the child's data
        admin.set_input_files("input[type=file]", str(roster))
        admin.click("form[action='/roster/import'] button[type=submit]")
        admin.wait_for_selector("#rows")
        admin.click("form[action='/roster/import/confirm'] button")
        admin.wait_for_selector("#flash")
        admin.goto(f"{url}/students?school=S1&q=s1-new-1")
        admin.click("a:has-text('Ахметов Айдос')")
        admin.wait_for_url("**/students/*")
        student_pk = int(admin.url.rstrip("/").rsplit("/", 1)[1])

        # 2. the parent's consent to notifications
        admin.goto(f"{url}/students/{student_pk}/consents")
        admin.select_option("select[name=kind]", "notifications")
        admin.select_option("select[name=decision]", "given")
        admin.fill("input[name=given_by]", "Ахметова Гүлнар")
        admin.fill("input[name=document]", "Өтініш №14")
        admin.fill("input[name=signed_on]", "2026-09-01")
        admin.click(f"form[action='/students/{student_pk}/consents'] button")
        admin.wait_for_selector("#history tbody tr")
        assert "Өтініш №14" in admin.locator("#history").inner_text()

        # 3. a card, tapped and bound at the school's desk (the number stays there); its
        # record, never the number, reaches the console
        school.wait_synced()
        ref = school.desk_issue("s1-new-1", CARD)
        poll_page(admin, f"{url}/students/{student_pk}/cards", ref)
        assert CARD not in admin.content()

        # 4. the child taps at the turnstile; the entry reaches the console
        school.tap(CARD)
        poll_page(admin, f"{url}/reports/evacuation?school=S1", "Ахметов")

        # 5. the parent's SMS went out through the gateway, in Kazakh, with the first name only
        delivered = sms.wait_for(1, timeout=30)
        assert "Айдос" in delivered[0].message and "Ахметов" not in delivered[0].message

        # 6. the parent, invited by link, sees the entry and the SMS on their page
        admin.goto(f"{url}/students/{student_pk}")
        invite = admin.locator("form[action$='/invite']").first
        invite.locator("input[name=login]").fill("gulnar")
        invite.locator("button").click()
        link = admin.locator("#invite-url").inner_text()
        parent = browser.new_page()
        parent.goto(url + link[link.index("/invite/") :])  # the link names the public URL
        parent.fill("input[name=password]", "Gulnar-2026-pass")
        parent.fill("input[name=password2]", "Gulnar-2026-pass")
        parent.click("button[type=submit]")
        parent.wait_for_url(f"{url}/parent")  # a parent's home is their children's page
        parent.click("a:has-text('Айдос')")
        parent.wait_for_selector("text=Айдос")
        page_text = parent.content()
        assert "Айдос" in page_text and delivered[0].message in page_text

        # 7. the monthly free-meal statement, as a file
        month = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Almaty")).strftime("%Y-%m")
        admin.goto(f"{url}/reports/meals/statement?school=S1&month={month}")
        with admin.expect_download() as info:
            admin.click("a:has-text('XLSX')")
        data = Path(info.value.path()).read_bytes()
        book = openpyxl.load_workbook(io.BytesIO(data))
        assert book.active is not None and book.active.max_row > 1
