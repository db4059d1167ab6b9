"""The server's one clock: now in the protocol's unit (integer ms since the epoch), and a
school's local date and zone.

A school's day starts at its local midnight, not at UTC's and not at the server's: "today" is
always ``school_today(school)``. The zone is the school's ``timezone`` setting; a school without
one (or with a name this machine does not know) uses ``ServerSettings.default_timezone``.

Routes take the clock as a dependency (``clock: ClockDep``) so that tests can stop it at any
instant with ``app.dependency_overrides[get_clock]``; services take ``now`` or ``today`` as
arguments. ``now_ms()`` is the wall clock for code that runs outside a request.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Protocol

from fastapi import Depends, Request

from server.settings import ServerSettings

# The zone of a school that names none; configured by ServerSettings.default_timezone.
DEFAULT_ZONE: str = ServerSettings.model_fields["default_timezone"].default


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class HasZone(Protocol):
    """A school, or anything else that carries a zone name."""

    @property
    def timezone(self) -> str: ...


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def zone(name: str | None, default: str = DEFAULT_ZONE) -> zoneinfo.ZoneInfo:
    """The zone called ``name``; the default zone for no name or an unknown one."""
    found = _zone(name) if name else None
    if found is not None:
        return found
    fallback = _zone(default)
    return fallback if fallback is not None else zoneinfo.ZoneInfo("UTC")


def local_date(at_ms: int, tz: zoneinfo.ZoneInfo) -> dt.date:
    """The local date of an instant in a zone."""
    return dt.datetime.fromtimestamp(at_ms / 1000, tz).date()


@dataclass(frozen=True, slots=True)
class Clock:
    """Now, and a school's today. Provided by the app (``get_clock``), replaced in tests."""

    default_zone: str = DEFAULT_ZONE
    wall: Callable[[], int] = field(default=now_ms)

    def now_ms(self) -> int:
        return self.wall()

    def zone(self, name: str | None) -> zoneinfo.ZoneInfo:
        return zone(name, self.default_zone)

    def school_zone(self, school: HasZone | None) -> zoneinfo.ZoneInfo:
        return self.zone(school.timezone if school is not None else None)

    def zone_name(self, school: HasZone | None) -> str:
        """The school's zone name as templates format with it."""
        return self.school_zone(school).key

    def school_today(self, school: HasZone | None) -> dt.date:
        """The school's date now (its day starts at its local midnight)."""
        return local_date(self.now_ms(), self.school_zone(school))

    def today_in(self, zone_name: str | None) -> dt.date:
        return local_date(self.now_ms(), self.zone(zone_name))


def clock_for(settings: ServerSettings) -> Clock:
    return Clock(default_zone=settings.default_timezone)


def get_clock(request: Request) -> Clock:
    """The app's clock (``app.state.clock``, set by ``create_app``)."""
    found = getattr(request.app.state, "clock", None)
    if isinstance(found, Clock):
        return found
    settings = getattr(request.app.state, "settings", None)
    return clock_for(settings) if isinstance(settings, ServerSettings) else Clock()


ClockDep = Annotated[Clock, Depends(get_clock)]
