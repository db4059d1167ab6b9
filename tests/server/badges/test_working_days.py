"""Working days of the Kazakh calendar (``holidays`` 0.109, country KZ)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.badges.working_days import (
    APPLICATION_DECISION_DAYS,
    CalendarError,
    add_working_days,
    holiday_name,
    is_overdue,
    is_working_day,
    working_days_between,
)


def test_an_ordinary_week():
    assert is_working_day(date(2026, 2, 2))  # Monday
    assert not is_working_day(date(2026, 2, 7))  # Saturday
    assert not is_working_day(date(2026, 2, 8))  # Sunday
    assert add_working_days(date(2026, 2, 2), 5) == date(2026, 2, 9)
    assert add_working_days(date(2026, 2, 6), 1) == date(2026, 2, 9)  # Friday -> Monday
    assert add_working_days(date(2026, 2, 7), 0) == date(2026, 2, 7)


def test_nauryz_21_to_23_march_and_its_observed_days():
    # 2026: 21-22 March fall on the weekend; the days off move to 24 and 25 March
    for d in range(21, 26):
        assert not is_working_day(date(2026, 3, d)), d
    assert "Nowruz" in (holiday_name(date(2026, 3, 23)) or "")
    assert add_working_days(date(2026, 3, 20), 1) == date(2026, 3, 26)
    # 2025: Friday 21 March off, then Monday 24 and Tuesday 25 observed
    assert not is_working_day(date(2025, 3, 21))
    assert not is_working_day(date(2025, 3, 24))
    assert add_working_days(date(2025, 3, 20), 1) == date(2025, 3, 26)


def test_independence_day():
    # 16 and 17 December until 2021, 16 December only since 2022
    assert not is_working_day(date(2021, 12, 16))
    assert not is_working_day(date(2021, 12, 17))
    assert add_working_days(date(2021, 12, 15), 1) == date(2021, 12, 20)
    assert not is_working_day(date(2025, 12, 16))
    assert is_working_day(date(2025, 12, 17))
    assert add_working_days(date(2025, 12, 15), 1) == date(2025, 12, 17)


def test_transfers_of_days_off():
    # 2025: Friday 3 January was a day off in exchange for Sunday 5 January, a working day
    assert not is_working_day(date(2025, 1, 3))
    assert is_working_day(date(2025, 1, 5))
    assert not is_working_day(date(2025, 1, 4))
    assert add_working_days(date(2024, 12, 31), 1) == date(2025, 1, 5)
    assert add_working_days(date(2024, 12, 31), 2) == date(2025, 1, 6)
    # 2023: Saturday 1 July worked, Friday 7 July off
    assert is_working_day(date(2023, 7, 1))
    assert not is_working_day(date(2023, 7, 7))


def test_a_fourteen_day_decision_across_nauryz():
    # applied on Monday 16 March 2026: 17-20 (4), 26-27 (6), 30 March - 3 April (11), 6-8 April (14)
    due = add_working_days(date(2026, 3, 16), APPLICATION_DECISION_DAYS)
    assert due == date(2026, 4, 8)
    assert not is_overdue(date(2026, 3, 16), date(2026, 4, 8), APPLICATION_DECISION_DAYS)
    assert is_overdue(date(2026, 3, 16), date(2026, 4, 9), APPLICATION_DECISION_DAYS)
    assert working_days_between(date(2026, 3, 16), date(2026, 4, 8)) == 14


def test_between_is_signed_and_excludes_the_first_day():
    a, b = date(2026, 2, 2), date(2026, 2, 9)
    assert working_days_between(a, b) == 5
    assert working_days_between(b, a) == -5
    assert working_days_between(a, a) == 0
    assert working_days_between(date(2026, 2, 7), date(2026, 2, 8)) == 0


def test_bounds():
    with pytest.raises(CalendarError):
        add_working_days(date(2026, 1, 1), -1)
    with pytest.raises(CalendarError):
        add_working_days(date(2026, 1, 1), 10_001)
    with pytest.raises(CalendarError):
        is_working_day(date(2200, 1, 1))
    with pytest.raises(CalendarError):
        working_days_between(date(1995, 1, 1), date(2099, 1, 1))


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 1, 1)), st.integers(0, 300))
def test_add_and_between_agree(start, n):
    end = add_working_days(start, n)
    assert working_days_between(start, end) == n
    if n:
        assert is_working_day(end)
        assert working_days_between(start, end - timedelta(days=1)) == n - 1


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 1, 1)))
def test_a_year_has_about_250_working_days(day):
    first = date(day.year, 1, 1)
    count = working_days_between(first - timedelta(days=1), date(day.year, 12, 31))
    assert 235 <= count <= 262
