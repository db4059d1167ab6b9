"""The level rules of issue 17 ("The level rules, as a contract"): the four worked examples, the
rules one by one, every refusal, and properties (hypothesis)."""

from __future__ import annotations

import copy
import json
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.badges.rules import (
    Direction,
    JournalError,
    Level,
    Requirements,
    Section,
    age_on,
    evaluate,
    filled_book_slots,
    parse_journal,
    round_half_up,
    title_key,
)

START = date(2025, 9, 1)  # a Monday (ISO 2025-W36)
TODAY = date(2026, 11, 30)


def weekly(direction: str, n: int, hours: Any = 1, step: int = 1, status: str = "confirmed"):
    return [
        {
            "direction": direction,
            "date": (START + timedelta(weeks=i * step)).isoformat(),
            "hours": hours,
            "status": status,
        }
        for i in range(n)
    ]


def book(title: str, section: str, day: str = "2025-10-01", status: str = "confirmed", d="reading"):
    return {"direction": d, "date": day, "book": title, "section": section, "status": status}


def trip(days: Any, day: str = "2025-10-10", status: str = "confirmed", d: str = "trip"):
    return {"direction": d, "date": day, "days": days, "status": status}


def journal(level: str = "bronze", entries: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {"heritage": {"mode": "weeks", "months": 3}}
    if level != "bronze":
        plan["long"] = "sport"
        plan["heritage"]["months"] = 6
    j: dict[str, Any] = {
        "participant": "p-17",
        "birth_date": "2011-03-01",
        "level": level,
        "start": START.isoformat(),
        "plan": plan,
        "entries": [] if entries is None else entries,
    }
    j.update(kw)
    return j


def example_one() -> dict[str, Any]:
    entries = (
        weekly("sport", 13)
        + weekly("talents", 13)
        + weekly("volunteering", 13)
        + [book("Абай жолы", "kazakh"), book("War and Peace", "world"), book("Hamlet", "world")]
        + weekly("heritage", 13)
        + [trip(2)]
    )
    return journal(entries=entries)


def run(j: dict[str, Any], today: date = TODAY) -> dict[str, Any]:
    """Through the JSON text, as the CLI reads it."""
    return evaluate(parse_journal(json.dumps(j, ensure_ascii=False)), today)


BRONZE = ["sport", "talents", "volunteering", "reading", "heritage", "trip"]


# --- the worked examples of the issue --------------------------------------------------------


def test_example_one_everything_complete():
    report = run(example_one())
    assert report == {
        "participant": "p-17",
        "level": "bronze",
        "eligible_age": True,
        "directions": dict.fromkeys(BRONZE, 100.0),
        "rating": 100.0,
        "complete": True,
    }
    assert list(report["directions"]) == BRONZE


def test_example_two_sport_every_other_week():
    j = example_one()
    j["entries"] = [e for e in j["entries"] if e["direction"] != "sport"]
    j["entries"] += weekly("sport", 7, hours=3, step=2)
    report = run(j)
    assert report["directions"]["sport"] == 53.8
    assert report["rating"] == 92.3
    assert report["complete"] is False
    assert report["eligible_age"] is True


def test_example_three_too_young_on_the_start_date():
    report = run(example_one() | {"birth_date": "2011-09-02"})
    assert report["eligible_age"] is False
    assert report["complete"] is False
    assert report["directions"] == dict.fromkeys(BRONZE, 100.0)
    assert report["rating"] == 100.0


def test_example_four_one_world_book():
    report = run(journal(entries=[book("War and Peace", "world")]))
    assert report["directions"] == {
        "sport": 0.0,
        "talents": 0.0,
        "volunteering": 0.0,
        "reading": 33.3,
        "heritage": 0.0,
        "trip": 0.0,
    }
    assert report["rating"] == 5.6
    assert report["complete"] is False


def test_evaluate_takes_a_decoded_mapping_too():
    assert evaluate(example_one(), TODAY) == run(example_one())
    # floats from a plain json.loads are read by their shortest text
    assert evaluate(json.loads(json.dumps(example_one())), TODAY)["complete"] is True


# --- which entries count -------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "rejected"])
def test_only_confirmed_entries_count(status):
    j = example_one()
    j["entries"] = [e | {"status": status} if e["direction"] == "trip" else e for e in j["entries"]]
    assert run(j)["directions"]["trip"] == 0.0


def test_entries_outside_the_window_do_not_count():
    j = journal(
        entries=[
            trip(2, day="2025-08-31"),  # the day before start
            trip(2, day="2026-12-01"),  # the day after today
        ]
    )
    assert run(j)["directions"]["trip"] == 0.0
    j["entries"].append(trip(2, day="2025-09-01"))  # start itself
    assert run(j)["directions"]["trip"] == 100.0
    j = journal(entries=[trip(2, day=TODAY.isoformat())])  # today itself
    assert run(j)["directions"]["trip"] == 100.0


def test_a_start_after_today_counts_nothing():
    assert run(example_one(), today=date(2025, 8, 31))["rating"] == 0.0


# --- age -----------------------------------------------------------------------------------


def test_age_in_completed_years():
    assert age_on(date(2011, 9, 1), date(2025, 9, 1)) == 14
    assert age_on(date(2011, 9, 2), date(2025, 9, 1)) == 13
    # a 29 February birthday is reached on 1 March in common years
    assert age_on(date(2008, 2, 29), date(2022, 2, 28)) == 13
    assert age_on(date(2008, 2, 29), date(2022, 3, 1)) == 14
    assert age_on(date(2008, 2, 29), date(2024, 2, 29)) == 16


@pytest.mark.parametrize(
    ("level", "birth", "eligible"),
    [
        ("bronze", "2011-09-01", True),  # 14 on the start date
        ("bronze", "2011-09-02", False),  # 13
        ("silver", "2010-09-01", True),  # 15
        ("silver", "2011-09-01", False),  # 14
        ("gold", "2009-09-01", True),  # 16
        ("gold", "2010-09-02", False),  # 14
        ("gold", "1996-09-01", True),  # 29
        ("bronze", "1995-09-01", False),  # 30
        ("bronze", "1995-09-02", True),  # 29 and 364 days
        ("bronze", "2030-01-01", False),  # born after the start
    ],
)
def test_age_bounds_per_level(level, birth, eligible):
    report = run(journal(level, birth_date=birth))
    assert report["eligible_age"] is eligible


def test_leap_day_birthday_at_the_start():
    j = journal(birth_date="2008-02-29", start="2022-02-28")
    assert run(j, today=date(2022, 3, 1))["eligible_age"] is False  # 13 on 28 February 2022
    j["start"] = "2022-03-01"
    assert run(j, today=date(2022, 3, 1))["eligible_age"] is True


# --- weekly directions ---------------------------------------------------------------------


def test_a_week_counts_at_one_hour_summed_exactly():
    # 0.7 + 0.2 + 0.1 is exactly 1 in decimals (in binary floats, summed in this order,
    # it is 0.9999999999999999)
    days = ["2025-09-01", "2025-09-03", "2025-09-07"]  # Monday, Wednesday, Sunday of one week
    entries = [
        {"direction": "sport", "date": d, "hours": h, "status": "confirmed"}
        for d, h in zip(days, [0.7, 0.2, 0.1], strict=True)
    ]
    assert run(journal(entries=entries))["directions"]["sport"] == 7.7  # 1/13
    assert 0.7 + 0.2 + 0.1 < 1  # why decimals are needed
    entries[2]["hours"] = 0.09
    assert run(journal(entries=entries))["directions"]["sport"] == 0.0


def test_weeks_are_iso_weeks_monday_to_sunday():
    # Sunday 7 September and Monday 8 September are in two weeks: 0.5 h each counts nothing
    entries = [
        {"direction": "talents", "date": "2025-09-07", "hours": 0.5, "status": "confirmed"},
        {"direction": "talents", "date": "2025-09-08", "hours": 0.5, "status": "confirmed"},
    ]
    assert run(journal(entries=entries))["directions"]["talents"] == 0.0
    entries[1]["date"] = "2025-09-06"  # Saturday: the same week
    assert run(journal(entries=entries))["directions"]["talents"] == 7.7


def test_iso_week_numbering_year_across_new_year():
    # 29 December 2025 (Monday) and 1 January 2026 (Thursday) are both in ISO week 2026-W01;
    # 28 December 2025 (Sunday) is in 2025-W52
    entries = [
        {"direction": "volunteering", "date": d, "hours": 0.5, "status": "confirmed"}
        for d in ["2025-12-29", "2026-01-01"]
    ]
    assert run(journal(entries=entries))["directions"]["volunteering"] == 7.7
    entries[0]["date"] = "2025-12-28"
    assert run(journal(entries=entries))["directions"]["volunteering"] == 0.0
    # the same week number of another year is another week
    entries = [
        {"direction": "volunteering", "date": d, "hours": 1, "status": "confirmed"}
        for d in ["2025-09-10", "2026-09-09"]  # both week 37
    ]
    assert run(journal(entries=entries))["directions"]["volunteering"] == 15.4


def test_many_hours_in_one_week_count_as_one_week():
    entries = [{"direction": "sport", "date": "2025-09-02", "hours": 100, "status": "confirmed"}]
    assert run(journal(entries=entries))["directions"]["sport"] == 7.7


def test_weekly_percent_is_capped_at_100():
    assert run(journal(entries=weekly("sport", 30)))["directions"]["sport"] == 100.0


def test_silver_long_and_other_directions():
    entries = weekly("sport", 13) + weekly("talents", 13) + weekly("volunteering", 13)
    j = journal("silver", entries=entries, birth_date="2010-01-01")
    d = run(j)["directions"]
    assert (d["sport"], d["talents"], d["volunteering"]) == (50.0, 100.0, 50.0)
    j["plan"]["long"] = "talents"
    d = run(j)["directions"]
    assert (d["sport"], d["talents"]) == (100.0, 50.0)


def test_gold_numbers():
    entries = weekly("sport", 26) + weekly("talents", 26) + weekly("volunteering", 26)
    j = journal("gold", entries=entries, birth_date="2009-01-01")
    d = run(j)["directions"]
    # long sport 39, talents 26, volunteering 52
    assert (d["sport"], d["talents"], d["volunteering"]) == (66.7, 100.0, 50.0)
    assert list(d) == [*BRONZE, "work"]


# --- reading -------------------------------------------------------------------------------


def test_titles_are_compared_after_nfc_trim_and_casefold():
    decomposed = "Абаи\u0306 жолы"  # и + combining breve: NFC makes it й
    assert title_key(decomposed) == title_key("  АБАЙ ЖОЛЫ ")
    assert title_key("Straße") == title_key("STRASSE")  # casefold, not lower
    entries = [
        book("Абай жолы", "kazakh"),
        book(decomposed, "kazakh"),
        book(" АБАЙ ЖОЛЫ\t", "kazakh"),
        book("Straße", "world"),
        book("STRASSE", "world"),
    ]
    # two distinct titles of three: 66.7
    assert run(journal(entries=entries))["directions"]["reading"] == 66.7


def test_a_title_under_two_sections_takes_its_earliest_confirmed_entry():
    # the Kazakh entry is later: the title is a world book, the Kazakh slot stays empty
    entries = [
        book("Көшпенділер", "kazakh", day="2025-10-05"),
        book("Көшпенділер", "world", day="2025-10-01"),
        book("Other", "world"),
        book("Other 2", "world"),
    ]
    assert run(journal(entries=entries))["directions"]["reading"] == 66.7
    # same date: the order in the file decides
    entries[0]["date"] = "2025-10-01"
    j = journal(entries=entries)
    assert run(j)["directions"]["reading"] == 100.0  # kazakh first in file: fills the K slot
    j["entries"] = [entries[1], entries[0], *entries[2:]]
    assert run(j)["directions"]["reading"] == 66.7
    # an earlier but pending entry does not decide
    entries = [
        book("Көшпенділер", "world", day="2025-09-02", status="pending"),
        book("Көшпенділер", "kazakh", day="2025-10-01"),
        book("Other", "world"),
        book("Other 2", "world"),
    ]
    assert run(journal(entries=entries))["directions"]["reading"] == 100.0


def test_kazakh_books_fill_other_slots_beyond_their_own():
    entries = [book(f"K{i}", "kazakh") for i in range(3)]
    assert run(journal(entries=entries))["directions"]["reading"] == 100.0
    # world books cannot fill the Kazakh slot
    entries = [book(f"W{i}", "world") for i in range(5)]
    assert run(journal(entries=entries))["directions"]["reading"] == 66.7
    # silver: 6 books with 2 Kazakh
    entries = [book("K", "kazakh")] + [book(f"G{i}", "growth") for i in range(9)]
    j = journal("silver", entries=entries, birth_date="2010-01-01")
    assert run(j)["directions"]["reading"] == 83.3


@pytest.mark.parametrize(
    ("sections", "books", "k", "filled"),
    [
        ([], 3, 1, 0),
        ([Section.KAZAKH], 3, 1, 1),
        ([Section.WORLD], 3, 1, 1),
        ([Section.WORLD] * 3, 3, 1, 2),
        ([Section.KAZAKH] * 5, 3, 1, 3),
        ([Section.KAZAKH, Section.WORLD, Section.GROWTH], 3, 1, 3),
        ([Section.WORLD] * 9, 9, 3, 6),
        ([Section.KAZAKH] * 2 + [Section.WORLD] * 9, 9, 3, 8),
    ],
)
def test_filled_book_slots(sections, books, k, filled):
    assert filled_book_slots(sections, books, k) == filled


# --- heritage ------------------------------------------------------------------------------


def test_heritage_weeks_counts_heritage_hours_only():
    j = journal(entries=weekly("sport", 13))
    assert run(j)["directions"]["heritage"] == 0.0
    j = journal(entries=weekly("heritage", 13))
    assert run(j)["directions"]["heritage"] == 100.0
    j = journal("silver", entries=weekly("heritage", 13), birth_date="2010-01-01")
    assert run(j)["directions"]["heritage"] == 50.0  # 6 months = 26 weeks
    j["plan"]["heritage"]["months"] = 3
    assert run(j)["directions"]["heritage"] == 100.0
    j = journal("gold", entries=weekly("heritage", 13), birth_date="2009-01-01")
    j["plan"]["heritage"]["months"] = 9
    assert run(j)["directions"]["heritage"] == 33.3


def test_heritage_book_mode():
    j = journal(entries=[book("Қан мен тер", "kazakh", d="heritage")])
    j["plan"]["heritage"] = {"mode": "book"}
    assert run(j)["directions"]["heritage"] == 100.0
    # a world book does not do
    j["entries"] = [book("Hamlet", "world", d="heritage")]
    assert run(j)["directions"]["heritage"] == 0.0
    # a title already counted in reading does not do (compared as titles are)
    j["entries"] = [book("Қан мен тер", "kazakh"), book(" ҚАН МЕН ТЕР ", "kazakh", d="heritage")]
    d = run(j)["directions"]
    assert (d["reading"], d["heritage"]) == (33.3, 0.0)
    # pending, or outside the window, does not do
    j["entries"] = [book("Қан мен тер", "kazakh", d="heritage", status="pending")]
    assert run(j)["directions"]["heritage"] == 0.0
    j["entries"] = [book("Қан мен тер", "kazakh", d="heritage", day="2027-01-01")]
    assert run(j)["directions"]["heritage"] == 0.0
    # heritage hours do not count in book mode
    j["entries"] = weekly("heritage", 13)
    assert run(j)["directions"]["heritage"] == 0.0


def test_heritage_books_do_not_count_as_reading():
    j = journal(entries=[book("Қан мен тер", "kazakh", d="heritage")])
    assert run(j)["directions"]["reading"] == 0.0


# --- trip and work -------------------------------------------------------------------------


def test_trip_is_the_longest_single_trip():
    j = journal(entries=[trip(1), trip(1), trip(1)])
    assert run(j)["directions"]["trip"] == 50.0
    j = journal(entries=[trip(1.5)])
    assert run(j)["directions"]["trip"] == 75.0
    j = journal("silver", entries=[trip(2)], birth_date="2010-01-01")
    assert run(j)["directions"]["trip"] == 66.7
    j = journal("silver", entries=[trip(10)], birth_date="2010-01-01")
    assert run(j)["directions"]["trip"] == 100.0


def test_work_days_are_summed_at_gold():
    entries = [trip(2, d="work"), trip(2, d="work"), trip(0.5, d="work", status="rejected")]
    j = journal("gold", entries=entries, birth_date="2009-01-01")
    assert run(j)["directions"]["work"] == 80.0
    j["entries"].append(trip(1.5, d="work"))
    assert run(j)["directions"]["work"] == 100.0
    assert "work" not in run(journal())["directions"]


# --- rounding ------------------------------------------------------------------------------


def test_round_half_up():
    assert round_half_up(Fraction(1, 20)) == Decimal("0.1")  # 0.05: half up, not to even
    assert round_half_up(Fraction(25, 100)) == Decimal("0.3")
    assert round_half_up(Fraction(2, 3) * 100) == Decimal("66.7")
    assert round_half_up(Fraction(100, 3)) == Decimal("33.3")
    assert round_half_up(Fraction(0)) == Decimal("0.0")
    assert round_half_up(Fraction(100)) == Decimal("100.0")


def test_rating_is_the_mean_of_exact_percents():
    # reading 100 and heritage 1 of 13 weeks (7.6923..): exact (107.6923..) / 6 = 17.948.. -> 17.9;
    # the mean of the rounded percents would be (107.7) / 6 = 17.95 -> 18.0
    entries = [book("Абай жолы", "kazakh"), book("A", "world"), book("B", "growth")]
    entries += weekly("heritage", 1)
    report = run(journal(entries=entries))
    assert report["directions"]["heritage"] == 7.7
    assert report["directions"]["reading"] == 100.0
    assert report["rating"] == 17.9
    # bronze with 1 of 13 weeks in three directions and 1 trip day:
    # (3 × 100/13 + 50) / 6 = 12.179.. -> 12.2
    entries = weekly("sport", 1) + weekly("talents", 1) + weekly("volunteering", 1) + [trip(1)]
    assert run(journal(entries=entries))["rating"] == 12.2


def test_a_half_on_the_rating_rounds_up():
    need = Requirements(
        weeks={Direction.SPORT: 0, Direction.TALENTS: 0, Direction.VOLUNTEERING: 0},
        books=0,
        kazakh_books=0,
        heritage_weeks=0,
        trip_days=200,
        work_days=None,
    )
    # trip 0.3 of 200 days: 0.15 %, exactly; the rest 100: the mean (500.15)/6 = 83.358..
    j = journal(entries=[trip(Decimal("0.3"))])
    report = evaluate(parse_journal(_dump(j)), TODAY, need)
    assert report["directions"]["trip"] == 0.2  # 0.15 half up
    assert report["rating"] == 83.4


# --- individual requirements ---------------------------------------------------------------


def test_individual_requirements_replace_the_level_numbers():
    need = Requirements(
        weeks={Direction.SPORT: 4, Direction.TALENTS: 4, Direction.VOLUNTEERING: 4},
        books=1,
        kazakh_books=1,
        heritage_weeks=None,
        trip_days=1,
        work_days=None,
    )
    entries = (
        weekly("sport", 4)
        + weekly("talents", 4)
        + weekly("volunteering", 4)
        + [book("Абай жолы", "kazakh"), book("Менің атым Қожа", "kazakh", d="heritage"), trip(1)]
    )
    report = evaluate(journal(entries=entries), TODAY, need)
    assert report["complete"] is True
    assert report["rating"] == 100.0
    assert run(journal(entries=entries))["complete"] is False


# --- refusals ------------------------------------------------------------------------------


def refused(text: str) -> JournalError:
    with pytest.raises(JournalError) as info:
        parse_journal(text)
    return info.value


def mutate(path: list[Any], value: Any) -> str:
    j = example_one()
    j["plan"]["long"] = "sport"
    target: Any = j
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(j, ensure_ascii=False)


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (["participant"], DELETE, "participant"),
        (["birth_date"], DELETE, "birth_date"),
        (["level"], DELETE, "level"),
        (["start"], DELETE, "start"),
        (["plan"], DELETE, "plan"),
        (["entries"], DELETE, "entries"),
        (["colour"], "red", "colour"),
        (["participant"], "", "participant"),
        (["participant"], 17, "participant"),
        (["participant"], "p" * 101, "participant"),
        (["level"], "platinum", "level"),
        (["level"], "Bronze", "level"),
        (["start"], "20250901", "start"),
        (["start"], "2025-W36-1", "start"),
        (["start"], "2025-9-1", "start"),
        (["start"], "2025-09-01T00:00", "start"),
        (["start"], "2025-02-30", "start"),
        (["start"], "٢٠٢٥-٠٩-٠١", "start"),  # Arabic-Indic digits
        (["birth_date"], 20110301, "birth_date"),
        (["plan", "heritage"], DELETE, "plan.heritage"),
        (["plan", "heritage", "mode"], "video", "plan.heritage.mode"),
        (["plan", "heritage", "mode"], DELETE, "plan.heritage.mode"),
        (["plan", "heritage", "months"], 6, "plan.heritage.months"),  # bronze: 3 only
        (["plan", "heritage", "months"], DELETE, "plan.heritage.months"),
        (["plan", "heritage", "months"], "3", "plan.heritage.months"),
        (["plan", "heritage", "months"], True, "plan.heritage.months"),
        (["plan", "heritage", "extra"], 1, "plan.heritage.extra"),
        (["plan", "long"], "reading", "plan.long"),
        (["plan", "long"], "chess", "plan.long"),
        (["plan", "extra"], 1, "plan.extra"),
        (["plan"], [], "plan"),
        (["entries"], {}, "entries"),
        (["entries", 0], "sport", "entries[0]"),
        (["entries", 0, "direction"], "chess", "entries[0].direction"),
        (["entries", 0, "direction"], DELETE, "entries[0].direction"),
        (["entries", 0, "status"], "approved", "entries[0].status"),
        (["entries", 0, "status"], DELETE, "entries[0].status"),
        (["entries", 0, "date"], "2025/09/01", "entries[0].date"),
        (["entries", 0, "hours"], -1, "entries[0].hours"),
        (["entries", 0, "hours"], -0.5, "entries[0].hours"),
        (["entries", 0, "hours"], "1.5", "entries[0].hours"),
        (["entries", 0, "hours"], None, "entries[0].hours"),
        (["entries", 0, "hours"], True, "entries[0].hours"),
        (["entries", 0, "hours"], 169, "entries[0].hours"),
        (["entries", 0, "hours"], DELETE, "entries[0].hours"),
        (["entries", 0, "book"], "x", "entries[0].book"),  # a sport entry has no book
        (["entries", 39, "section"], "poetry", "entries[39].section"),
        (["entries", 39, "section"], DELETE, "entries[39].section"),
        (["entries", 39, "book"], "   ", "entries[39].book"),
        (["entries", 39, "book"], 12, "entries[39].book"),
        (["entries", 39, "book"], "x" * 301, "entries[39].book"),
        (["entries", 39, "hours"], 1, "entries[39].hours"),
        (["entries", 55, "days"], -2, "entries[55].days"),
        (["entries", 55, "days"], "2", "entries[55].days"),
        (["entries", 55, "days"], DELETE, "entries[55].days"),
        (["entries", 55, "days"], 367, "entries[55].days"),
        (["entries", 55, "hours"], 2, "entries[55].hours"),
        (["entries", 55, "direction"], "work", "entries[55].direction"),  # bronze
    ],
)
def test_bad_input_is_refused_naming_the_field(path, value, field):
    err = refused(mutate(path, value))
    assert err.field == field, str(err)
    assert str(err).startswith(field + ":")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        '{"participant": "p"',
        "[]",
        "null",
        '"a string"',
    ],
)
def test_unparsable_or_not_an_object(text):
    assert refused(text).field == "journal"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant):
    text = mutate(["entries", 0, "hours"], 0).replace('"hours": 0', f'"hours": {constant}', 1)
    assert constant in text
    assert "Infinity" in str(refused(text)) or "NaN" in str(refused(text))


def test_an_exponent_too_big_for_a_float_is_refused():
    text = mutate(["entries", 0, "hours"], 0).replace('"hours": 0', '"hours": 1e999', 1)
    assert refused(text).field == "entries[0].hours"


def test_too_many_decimal_places_are_refused():
    text = mutate(["entries", 0, "hours"], 0).replace('"hours": 0', '"hours": 1.0000001', 1)
    assert refused(text).field == "entries[0].hours"
    text = mutate(["entries", 0, "hours"], 0).replace('"hours": 0', '"hours": 1.5000000', 1)
    assert parse_journal(text).entries[0].hours == Decimal("1.5")


def test_a_repeated_key_is_refused():
    text = '{"participant": "a", "participant": "b"}'
    assert refused(text).field == "participant"


def test_plan_long_missing_at_silver_and_gold():
    for level, birth, months in [("silver", "2010-01-01", 6), ("gold", "2009-01-01", 9)]:
        j = journal(level, birth_date=birth)
        j["plan"]["heritage"]["months"] = months
        del j["plan"]["long"]
        err = refused(json.dumps(j))
        assert err.field == "plan.long"


def test_heritage_months_per_level():
    for level, allowed in [("bronze", {3}), ("silver", {3, 6}), ("gold", {6, 9})]:
        for months in [1, 3, 6, 9, 12]:
            j = journal(level, birth_date="2009-01-01")
            j["plan"]["heritage"]["months"] = months
            if months in allowed:
                parse_journal(json.dumps(j))
            else:
                assert refused(json.dumps(j)).field == "plan.heritage.months"


def test_book_mode_takes_no_months():
    j = journal()
    j["plan"]["heritage"] = {"mode": "book", "months": 3}
    assert refused(json.dumps(j)).field == "plan.heritage.months"


def test_a_work_entry_below_gold_is_refused():
    for level in ["bronze", "silver"]:
        j = journal(level, entries=[trip(1, d="work")])
        assert refused(json.dumps(j)).field == "entries[0].direction"
    parse_journal(json.dumps(journal("gold", entries=[trip(1, d="work")])))


def test_zero_hours_and_days_are_accepted():
    j = journal(entries=[*weekly("sport", 1, hours=0), trip(0)])
    assert run(j)["rating"] == 0.0


def test_size_bounds():
    j = journal(entries=weekly("sport", 1) * 20_001)
    assert refused(json.dumps(j)).field in {"entries", "journal"}
    assert refused(" " * 2_000_001).field == "journal"


def test_a_refused_journal_leaves_the_input_unchanged():
    j = example_one()
    before = copy.deepcopy(j)
    j["entries"][3]["hours"] = -1
    with pytest.raises(JournalError):
        evaluate(j, TODAY)
    j["entries"][3]["hours"] = before["entries"][3]["hours"]
    assert j == before


# --- properties ----------------------------------------------------------------------------

directions = st.sampled_from(["sport", "talents", "volunteering", "heritage"])
days_in_window = st.integers(min_value=-30, max_value=500).map(
    lambda n: (START + timedelta(days=n)).isoformat()
)
hours_values = st.decimals(min_value=0, max_value=5, places=2)
statuses = st.sampled_from(["confirmed", "pending", "rejected"])
hour_entries = st.builds(
    lambda d, day, h, s: {"direction": d, "date": day, "hours": h, "status": s},
    directions,
    days_in_window,
    hours_values,
    statuses,
)
book_entries = st.builds(
    lambda t, sec, day, s: book(t, sec, day=day, status=s),
    st.sampled_from(["Абай жолы", "абай жолы", "Hamlet", "HAMLET ", "Faust", "Alash"]),
    st.sampled_from(["kazakh", "world", "growth"]),
    days_in_window,
    statuses,
)
trip_entries = st.builds(
    lambda d, day, s: trip(d, day=day, status=s),
    st.decimals(min_value=0, max_value=5, places=1),
    days_in_window,
    statuses,
)
any_entries = st.lists(st.one_of(hour_entries, book_entries, trip_entries), max_size=60)


def _dump(o: Any) -> str:
    if isinstance(o, Decimal):
        return str(o)
    if isinstance(o, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in o.items()) + "}"
    if isinstance(o, list):
        return "[" + ",".join(_dump(v) for v in o) + "]"
    return json.dumps(o, ensure_ascii=False)


@settings(max_examples=150, deadline=None)
@given(any_entries)
def test_percents_are_bounded_and_the_rating_is_their_mean(entries):
    report = evaluate(parse_journal(_dump(journal(entries=entries))), TODAY)
    values = list(report["directions"].values())
    assert list(report["directions"]) == BRONZE
    assert all(0.0 <= v <= 100.0 for v in values)
    assert min(values) - 0.05 <= report["rating"] <= max(values) + 0.05
    assert report["complete"] == all(v == 100.0 for v in values)


@settings(max_examples=100, deadline=None)
@given(any_entries, st.randoms(use_true_random=False))
def test_the_order_of_entries_does_not_matter_without_title_ties(entries, rnd):
    # apart from the tie rule (same title, same date), the order of the entries does not matter
    keys = [(title_key(e["book"]), e["date"]) for e in entries if "book" in e]
    if len(keys) != len(set(keys)):
        return
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    a = evaluate(parse_journal(_dump(journal(entries=entries))), TODAY)
    b = evaluate(parse_journal(_dump(journal(entries=shuffled))), TODAY)
    assert a == b


@settings(max_examples=100, deadline=None)
@given(any_entries, any_entries)
def test_unconfirmed_entries_change_nothing(entries, noise):
    unconfirmed = [e | {"status": "pending"} for e in noise]
    a = evaluate(parse_journal(_dump(journal(entries=entries))), TODAY)
    b = evaluate(parse_journal(_dump(journal(entries=entries + unconfirmed))), TODAY)
    assert a == b


@settings(max_examples=100, deadline=None)
@given(any_entries, hour_entries)
def test_one_more_confirmed_hour_entry_never_lowers_a_direction(entries, extra):
    # (heritage hours count only in weeks mode, and never lower the book-mode percent)
    extra = extra | {"status": "confirmed"}
    a = evaluate(parse_journal(_dump(journal(entries=entries))), TODAY)
    b = evaluate(parse_journal(_dump(journal(entries=[*entries, extra]))), TODAY)
    for name, value in a["directions"].items():
        assert b["directions"][name] >= value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Section)), max_size=15), st.integers(1, 12), st.data())
def test_filled_slots_against_brute_force(sections, books, data):
    k = data.draw(st.integers(0, books))
    # brute force: the best assignment of books to slots, Kazakh slots taking Kazakh books only
    kazakh = sum(1 for s in sections if s is Section.KAZAKH)
    best = 0
    for into_k in range(0, min(kazakh, k) + 1):
        rest = len(sections) - into_k
        best = max(best, into_k + min(books - k, rest))
    assert filled_book_slots(sections, books, k) == best


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)), st.dates())
def test_age_agrees_with_counting_birthdays(birth, day):
    age = age_on(birth, day)

    # the birthday of year y: 29 February falls on 1 March in common years
    def birthday(y: int) -> date:
        try:
            return birth.replace(year=y)
        except ValueError:
            return date(y, 3, 1)

    if day >= birth:
        assert birthday(birth.year + age) <= day
        if birth.year + age + 1 <= 9999:
            assert day < birthday(birth.year + age + 1)
    else:
        assert age < 0


def test_level_enum_values():
    assert [lv.value for lv in Level] == ["bronze", "silver", "gold"]


# --- individual requirements as stored JSON ------------------------------------------------


def test_requirements_round_trip_and_refusals():
    from server.badges.rules import Plan, level_requirements, requirements_from_mapping

    plan = parse_journal(
        json.dumps(
            journal("gold", birth_date="2009-01-01")
            | {"plan": {"long": "talents", "heritage": {"mode": "weeks", "months": 9}}}
        )
    ).plan
    need = level_requirements(Level.GOLD, plan)
    assert isinstance(plan, Plan)
    assert requirements_from_mapping(json.loads(json.dumps(need.as_dict()))) == need
    assert need.weeks[Direction.TALENTS] == 39 and need.weeks[Direction.SPORT] == 26
    assert (need.heritage_weeks, need.work_days, need.books, need.kazakh_books) == (39, 5, 9, 3)
    good = need.as_dict()
    for change, field in [
        ({"books": -1}, "requirements.books"),
        ({"books": 1.5}, "requirements.books"),
        ({"books": True}, "requirements.books"),
        ({"kazakh_books": 10}, "requirements.kazakh_books"),
        ({"trip_days": 521}, "requirements.trip_days"),
        ({"work_days": "5"}, "requirements.work_days"),
        ({"weeks": {"sport": 1, "talents": 1}}, "requirements.weeks.volunteering"),
        (
            {"weeks": {"sport": 1, "talents": 1, "volunteering": 1, "chess": 1}},
            "requirements.weeks.chess",
        ),
        ({"extra": 1}, "requirements.extra"),
    ]:
        with pytest.raises(JournalError) as info:
            requirements_from_mapping(good | change)
        assert info.value.field == field
    # null heritage weeks: book mode; null work days: no work direction
    relaxed = requirements_from_mapping(good | {"heritage_weeks": None, "work_days": None})
    assert (
        "work"
        not in evaluate(journal("gold", birth_date="2009-01-01"), TODAY, relaxed)["directions"]
    )


# --- robustness: anything but a journal raises JournalError, never another exception --------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_refused_cleanly(value):
    # (a random value is never a whole journal: six exact keys are needed)
    with pytest.raises(JournalError):
        parse_journal(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_journal_parses_or_is_refused_cleanly(data):
    j = example_one()
    entries = j["entries"]
    target = data.draw(st.sampled_from(["top", "plan", "entry"]))
    if target == "top":
        obj = j
    elif target == "plan":
        obj = j["plan"]["heritage"]
    else:
        obj = entries[data.draw(st.integers(0, len(entries) - 1))]
    key = data.draw(st.sampled_from([*obj.keys(), "extra"]))
    if data.draw(st.booleans()) and key in obj:
        del obj[key]
    else:
        obj[key] = data.draw(json_values)
    try:
        report = evaluate(parse_journal(json.dumps(j)), TODAY)
    except JournalError as err:
        assert err.field and str(err).startswith(err.field)
    else:
        assert 0.0 <= report["rating"] <= 100.0
