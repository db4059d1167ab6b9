"""Working days of the Kazakh calendar, for the award's deadlines: an application is decided
within 14 working days, a programme centre signs its agreement within 10 working days of its
approval (issue 17).

A working day is a Monday to Friday that is not a public holiday of Kazakhstan, plus the
Saturdays and Sundays the government makes working days when it transfers a day off. Holidays
and transfers come from the pinned ``holidays`` package (country KZ): its ``observed`` days
(a holiday on a weekend moves to the next Monday) and its substituted days off are days off,
its ``weekend_workdays`` are working days. Pure: no clock, no I/O (the package's tables are
data); islamic holidays of future years are the package's estimates.
"""

from __future__ import annotations

import functools
from datetime import date, timedelta

import holidays

APPLICATION_DECISION_DAYS = 14
CENTRE_AGREEMENT_DAYS = 10

# The calendar the package knows (Kazakhstan's holidays from its independence), and a bound on
# every span asked for.
FIRST_YEAR = 1992
LAST_YEAR = 2100
MAX_WORKING_DAYS = 10_000


class CalendarError(ValueError):
    """A date or a count outside what this calendar answers for."""


@functools.lru_cache(maxsize=256)
def _year(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """(days off that fall on weekdays or weekends, weekend days made working) of one year."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarError(f"year {year} is outside {FIRST_YEAR}..{LAST_YEAR}")
    kz = holidays.country_holidays("KZ", years=year)
    days_off = frozenset(d for d in kz if d.year == year)
    workdays = frozenset(d for d in kz.weekend_workdays if d.year == year)
    return days_off, workdays


def holiday_name(day: date) -> str | None:
    """The package's (English) name of the public holiday on ``day``, if any."""
    kz = holidays.country_holidays("KZ", years=day.year)
    name = kz.get(day)
    return None if name is None else str(name)


def is_working_day(day: date) -> bool:
    days_off, workdays = _year(day.year)
    if day in workdays:
        return True
    return day.weekday() < 5 and day not in days_off


def add_working_days(start: date, n: int) -> date:
    """The day on which ``n`` working days after ``start`` are over: the n-th working day after
    ``start`` (``start`` itself is not counted; ``n == 0`` gives ``start``)."""
    if not 0 <= n <= MAX_WORKING_DAYS:
        raise CalendarError(f"n must be within 0..{MAX_WORKING_DAYS}, not {n}")
    day = start
    left = n
    while left:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def working_days_between(a: date, b: date) -> int:
    """Working days d with ``a < d <= b`` (negative when ``b`` is before ``a``), so that
    ``working_days_between(a, add_working_days(a, n)) == n``."""
    if b < a:
        return -working_days_between(b, a)
    if (b - a).days > MAX_WORKING_DAYS * 2:
        raise CalendarError(f"span {a}..{b} is too long")
    count = 0
    day = a
    while day < b:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


def is_overdue(since: date, today: date, working_days: int) -> bool:
    """Whether a decision due ``working_days`` working days after ``since`` is late on ``today``
    (it is due by the end of the last of those days)."""
    return today > add_working_days(since, working_days)
