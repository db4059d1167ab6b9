"""The home page answers "what is happening now": present, late, absent, meals by kind, alarms,
refused taps with their reasons, the day's manual passes — each role in its own scope, and the
same numbers as the reports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import time_machine

from server.dashboard import calc
from server.reports.calc import Ev
from tests.server.reports.test_reports import DAY, ZONE, Events, at
from tests.server.reports.test_reports import s1 as s1  # the reports' school day (a fixture)


@pytest.fixture
def day(s1: Events) -> Any:
    s1.add(
        "denied",
        at(DAY, "07:40"),
        terminal="gate-1",
        terminal_kind="turnstile",
        reason="card_blocked",
        student_id="s1-3a-1",
    )
    s1.add(
        "denied",
        at(DAY, "07:41"),
        terminal="gate-1",
        terminal_kind="turnstile",
        reason="unknown_card",
    )
    s1.add(
        "denied",
        at(DAY, "12:10"),
        terminal="canteen-1",
        terminal_kind="canteen",
        reason="pay",
        student_id="s1-7b-1",
    )  # a paying student: not a refusal
    s1.meal("s1-3a-1", DAY, "09:30", "free", "breakfast")
    s1.meal("s1-7b-1", DAY, "12:15", "paid", amount=50_000)
    s1.db.commit()
    with time_machine.travel(dt.datetime.combine(DAY, dt.time(14, 0), ZONE), tick=False):
        yield s1


def figures(html: str, block: str) -> dict[str, str]:
    part = html.split(f'id="{block}"')[1].split("</section>")[0]
    return dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", part))


def test_the_deputy_on_duty_sees_the_school_now(make_browser: Any, day: Events) -> None:
    b = make_browser("duty1")
    b.post("/lang", {"lang": "en", "next": "/"})
    page = b.get("/").text
    # 3A: -1 in at 07:50, out at 13:05; -2 late (manual pass 08:15). 7B: -1 in 13:20, -2 absent.
    assert figures(page, "presence") == {
        "In school": "2",
        "Late": "1",
        "Absent": "1",
        "Went out": "1",
    }
    refused = page.split('id="refusals"')[1].split("</section>")[0]
    assert "card blocked: 1" in refused and "unknown card: 1" in refused
    assert "to pay" not in refused  # a paying student's tap is not a refusal
    assert refused.count("<tr><td>") == 2
    assert "Teacher Aigerim" in page.split('id="manual"')[1]  # who authorised the pass
    assert 'id="meals"' not in page  # meals are the canteen's and the admin's


def test_each_role_sees_its_blocks_and_scope(make_browser: Any, day: Events) -> None:
    teacher = make_browser("teacher1")
    teacher.post("/lang", {"lang": "en", "next": "/"})
    page = teacher.get("/").text
    assert figures(page, "presence")["Absent"] == "0"  # only 3A: both came
    assert 'id="refusals"' not in page and 'id="devices"' not in page
    canteen = make_browser("canteen1")
    canteen.post("/lang", {"lang": "en", "next": "/"})
    page = canteen.get("/").text
    assert figures(page, "meals") == {"free": "1", "paid": "1", "by voucher": "0"}
    assert 'id="presence"' not in page
    parent = make_browser("parent1")
    assert parent.get("/").headers["location"] == "/parent"
    assert make_browser("admin3").get("/refused?school=S1").status_code == 404


def test_the_refusals_page_filters_by_reason_and_day(make_browser: Any, day: Events) -> None:
    b = make_browser("admin1")
    b.post("/lang", {"lang": "en", "next": "/"})
    page = b.get("/refused?school=S1").text
    assert page.count("<tr><td>") == 2
    only = b.get("/refused?school=S1&reason=unknown_card").text
    assert only.count("<tr><td>") == 1 and "card not known at the school" in only
    other_day = b.get("/refused?school=S1&day=2026-11-19").text
    assert "No refused taps on this day." in other_day


def test_presence_counts_are_pure() -> None:
    evs = [
        Ev(1, "denied", "a", payload={"reason": "passback"}),
        Ev(2, "denied", None, payload={"reason": "unknown_card"}),
        Ev(3, "denied", "b", payload={"reason": "pay"}),
        Ev(4, "meal_served", "a", payload={"meal": "voucher"}),
    ]
    assert [e.at_ms for e in calc.refusals(evs)] == [2, 1]  # newest first, no PAY
    assert calc.refusals_by_reason(evs) == {"passback": 1, "unknown_card": 1}
    assert calc.meals_by_kind(evs) == {"voucher": 1}
