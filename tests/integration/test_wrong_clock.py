"""A wrong clock at the school (README, "Wrong clock"): the real daemon, offline, its wall clock
driven back by a year (at a restart after a power cut) and forward by a day (while it runs).

What must hold: the alarm is raised (journaled, so the duty page and the readers' LEDs show it),
the events are flagged ``clock_in_doubt`` and carry the corrected time, no student gets a second
free meal in the period already served, the entrance keeps letting people in; and the centre's
time in a signed ack clears the doubt."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.clock_guard import ClockGuard
from protocol.messages import (
    AlarmCode,
    AlarmEvent,
    DeniedEvent,
    EntryEvent,
    Event,
    MealServedEvent,
    Reason,
)
from tests.support.clock import LIBFAKETIME
from tests.support.edge_harness import School
from tests.support.inproc_daemon import running
from tests.support.wait import wait_until_async

YEAR = dt.timedelta(days=365)
DAY = dt.timedelta(days=1)


class Wall:
    """The wall clock the daemon reads: the real one plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def clock_alarms(journal: list[Event]) -> list[AlarmEvent]:
    return [e for e in journal if isinstance(e, AlarmEvent) and e.code == AlarmCode.CLOCK_IN_DOUBT]


def meals(journal: list[Event]) -> collections.Counter[tuple[str, str, str]]:
    return collections.Counter(
        (e.student_id, e.local_date, e.period) for e in journal if isinstance(e, MealServedEvent)
    )


async def test_a_clock_that_jumps_serves_no_second_meal_and_refuses_no_entry(
    tmp_path: Path,
) -> None:
    school = School(tmp_path, students=6)
    school.write()
    s1, s3, s5 = school.card(1), school.card(3), school.card(5)  # free meals (grade 2)
    now = dt.datetime.now(dt.UTC)

    # 1. a trusted morning: s1 and s3 have lunch, s1 comes in
    wall = Wall()
    async with running(school, guard=ClockGuard(wall)) as d:
        assert isinstance(await d.tap_and_record("canteen-1", s1), MealServedEvent)
        assert isinstance(await d.tap_and_record("canteen-1", s3), MealServedEvent)
        entry = await d.tap_and_record("gate-1", s1)
        assert isinstance(entry, EntryEvent) and entry.clock_in_doubt is None
    assert not clock_alarms(d.journal())

    # 2. a power cut: the edge comes back with its wall clock a year behind, offline
    wall.offset = -YEAR
    guard = ClockGuard(wall)
    async with running(school, guard=guard) as d:
        await wait_until_async(lambda: clock_alarms(d.journal()), 10, "the clock alarm")
        raised = clock_alarms(d.journal())[-1]
        assert raised.active and raised.detail.startswith("behind_journal")
        assert guard.in_doubt
        again = await d.tap_and_record("canteen-2", s1)  # lunch already served today
        assert isinstance(again, DeniedEvent) and again.reason is Reason.ALREADY_SERVED
        assert again.clock_in_doubt is True
        # the corrected time: not a year ago, and not before what was journaled
        assert abs(dt.datetime.fromtimestamp(again.at_ms / 1000, dt.UTC) - now) < dt.timedelta(
            minutes=5
        )
        entry = await d.tap_and_record("gate-1", s5)
        assert isinstance(entry, EntryEvent) and entry.clock_in_doubt is True
        served = await d.tap_and_record("canteen-1", s5)  # s5 had no lunch yet: served
        assert isinstance(served, MealServedEvent) and served.local_date == str(
            _local_date(d.journal(), served)
        )

        # 3. the centre's time (a signed ack: tests/integration/sync/test_clock_from_centre.py)
        guard.centre_time(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
        await wait_until_async(
            lambda: not clock_alarms(d.journal())[-1].active, 10, "the clock alarm cleared"
        )
        entry = await d.tap_and_record("gate-1", s3)
        assert isinstance(entry, EntryEvent) and entry.clock_in_doubt is None
        # the wall clock is still a year off, and the edge keeps the centre's time
        assert abs(dt.datetime.fromtimestamp(entry.at_ms / 1000, dt.UTC) - now) < dt.timedelta(
            minutes=5
        )

    # 4. running, trusted, offline: the wall clock jumps forward by a day
    wall.offset = dt.timedelta(0)
    guard = ClockGuard(wall)
    async with running(school, guard=guard) as d:
        assert isinstance(await d.tap_and_record("gate-1", s1), EntryEvent)
        alarms_before = len(clock_alarms(d.journal()))
        wall.offset = DAY
        again = await d.tap_and_record("canteen-1", s3)  # "tomorrow" by the wall clock
        assert isinstance(again, DeniedEvent) and again.reason is Reason.ALREADY_SERVED
        assert again.clock_in_doubt is True
        entry = await d.tap_and_record("gate-1", s5)
        assert isinstance(entry, EntryEvent) and entry.clock_in_doubt is True
        await wait_until_async(
            lambda: len(clock_alarms(d.journal())) > alarms_before, 10, "the clock alarm"
        )
        raised = clock_alarms(d.journal())[-1]
        assert raised.active and raised.detail.startswith("jumped_forward")

    journal = d.journal()
    assert [e.seq for e in journal] == list(range(1, len(journal) + 1))
    served = meals(journal)
    assert all(n == 1 for n in served.values()), served  # never a second free meal
    assert len(served) == 3  # s1, s3, s5: one lunch each
    assert not [e for e in journal if isinstance(e, DeniedEvent) and e.terminal == "gate-1"]
    actuated = [(t, v) for t, _, v in school.actuation_lines() if t == "gate-1"]
    assert actuated and all(v == "open" for _, v in actuated)  # every entry let in


def _local_date(journal: list[Event], meal: MealServedEvent) -> str:
    """The local date of the school's first lunch: the day the corrected time stays on."""
    first = next(e for e in journal if isinstance(e, MealServedEvent))
    return first.local_date


def test_qaqpa_run_after_a_power_cut_with_its_clock_a_year_behind(tmp_path: Path) -> None:
    """The real ``qaqpa run`` reading a faked system clock (libfaketime), as after a power cut
    on an edge without an RTC battery: the doubt is noticed against the journal by itself."""
    if not LIBFAKETIME.exists():
        pytest.skip(f"{LIBFAKETIME} missing: apt-get install faketime")
    school = School(tmp_path, students=4)
    school.write()
    d = school.start()
    try:
        assert d.tap_and_wait("canteen-1", school.card(1))
    finally:
        assert d.stop() == 0
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": "-365d",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    with patched_env(env):
        d = school.start()
    try:
        assert d.tap_and_wait("canteen-2", school.card(1))  # lunch again: refused
        assert d.tap_and_wait("gate-1", school.card(3))  # the entrance still lets in
    finally:
        assert d.stop() == 0
    journal = school.journal()
    alarms = clock_alarms(journal)
    assert alarms and alarms[0].active and alarms[0].detail.startswith("behind_journal")
    again = [e for e in journal if e.terminal == "canteen-2"]
    assert isinstance(again[0], DeniedEvent) and again[0].reason is Reason.ALREADY_SERVED
    assert again[0].clock_in_doubt is True
    assert all(n == 1 for n in meals(journal).values())
    assert [v for t, _, v in school.actuation_lines() if t == "gate-1"] == ["open"]


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
