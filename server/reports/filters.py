"""The reports' filter fields read from the query string, one way for every report page (the
per-school reports and ``/reports/schools``): a blank field is today's day or month, a bad one a
``BadInput`` that the page shows as a 400 naming the field and the reason."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import Response

from server.console.params import FIRST_DAY, LAST_DAY, parse_day
from server.console.web import render, tr
from server.reports import calc

TextQ = Annotated[str | None, Query(max_length=20)]


class BadInput(Exception):
    """A filter value that cannot be read: shown to the user as a 400 with the field and reason."""


def day_filter(value: str | None, today: dt.date) -> dt.date:
    """``day=YYYY-MM-DD`` within the console's window; blank: ``today``."""
    if not value:
        return today
    day = parse_day(value)
    if day is None:
        raise BadInput(f"day={value!r}: not a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}")
    return day


def month_filter(value: str | None, today: dt.date) -> dt.date:
    """``month=YYYY-MM`` within the console's window, as its first day; blank: ``today``'s."""
    if not value:
        return today.replace(day=1)
    try:
        month = calc.parse_month(value)
    except ValueError as err:
        raise BadInput(f"month={value!r}: not a month YYYY-MM") from err
    if not FIRST_DAY <= month <= LAST_DAY:
        raise BadInput(f"month={value!r}: not a month from {FIRST_DAY:%Y-%m} to {LAST_DAY:%Y-%m}")
    return month


def bad_filter(request: Request, err: BadInput) -> Response:
    # error.html escapes the message (it quotes what the user typed).
    message = tr(request, "The filter could not be read") + f": {err}"
    return render(request, "error.html", {"code": 400, "message": message}, 400)
