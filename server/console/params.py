"""Bounded types for route parameters: a number or a date out of range is a 422 with the
field's name, never a 500 from the database (``99999999999999999999`` overflows a BIGINT, a
year 9999 overflows a day's end)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import annotated_types as at

# A record's key: the tables' keys are INTEGER or BIGINT; no record has a bigger key.
MAX_ID = 2**31 - 1
Id = Annotated[int, at.Ge(1), at.Le(MAX_ID)]

# A school's or a region's id (the tables' VARCHAR(64)).
SchoolId = Annotated[str, at.MinLen(1), at.MaxLen(64)]

# A day the console may ask about: school records start long after 1990, and nothing is
# planned past 2100 (so a day's end, a month's end and a year's span stay representable).
FIRST_DAY = dt.date(1990, 1, 1)
LAST_DAY = dt.date(2100, 12, 31)
Day = Annotated[dt.date, at.Ge(FIRST_DAY), at.Le(LAST_DAY)]


def parse_id(text: str | None) -> int | None:
    """A key from free text (a form or a query field that may be blank): None if not a key."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None


def parse_day(text: str | None) -> dt.date | None:
    """A ``YYYY-MM-DD`` day within the console's window, or None."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None
