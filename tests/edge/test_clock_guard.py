"""The clock guard's rules with both clocks in the test's hand, the centre's time taken only
from a fresh signed ack, and the decision core's answer while the clock is in doubt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from edge.clock_guard import ClockGuard, ClockState
from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from protocol import topics
from protocol.centre import DownlinkRefused, sign_for_device
from protocol.codec import encode
from protocol.messages import AlarmCode, EventAck
from protocol.signing import generate_key
from tests.support.centre import CENTRE_KEY, CENTRE_PUBLIC_B64

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


class Clocks:
    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def tick(self, seconds: float) -> None:
        self.wall += dt.timedelta(seconds=seconds)
        self.mono += seconds


def guard(c: Clocks) -> tuple[ClockGuard, list[tuple[ClockState, str]]]:
    g = ClockGuard(lambda: c.wall, lambda: c.mono, tolerance_s=120)
    seen: list[tuple[ClockState, str]] = []
    g.on_change = lambda state, detail: seen.append((state, detail))
    return g, seen


def test_a_trusted_clock_is_followed_and_a_jump_is_not() -> None:
    c = Clocks()
    g, seen = guard(c)
    g.start(int((T0 - dt.timedelta(hours=1)).timestamp() * 1000))
    assert g.now() == T0 and not g.in_doubt
    c.tick(30)
    c.wall += dt.timedelta(seconds=20)  # NTP stepping a little: followed
    assert g.now() == T0 + dt.timedelta(seconds=50) and not g.in_doubt
    c.tick(10)
    c.wall += dt.timedelta(days=1)  # forward by a day
    assert g.now() == T0 + dt.timedelta(seconds=60)  # the monotonic time since the last look
    assert g.in_doubt and seen[-1][0].reason == "jumped_forward"
    c.tick(5)
    c.wall -= dt.timedelta(days=400)  # and back again: still counted from the trusted point
    assert g.now() == T0 + dt.timedelta(seconds=65)
    assert len(seen) == 1  # one alarm for the doubt, not one per look


def test_a_clock_behind_the_journal_at_start_counts_from_the_journal() -> None:
    c = Clocks()
    last = T0
    c.wall = T0 - dt.timedelta(days=365)
    g, seen = guard(c)
    g.start(int(last.timestamp() * 1000))
    assert g.in_doubt and seen[-1][0].reason == "behind_journal"
    c.tick(90)
    assert g.now() == last + dt.timedelta(seconds=90)
    # the centre's time clears the doubt; the wall clock's error is known from then on
    g.centre_time(int((last + dt.timedelta(hours=2)).timestamp() * 1000))
    assert not g.in_doubt and seen[-1][0].in_doubt is False
    c.tick(60)
    assert g.now() == last + dt.timedelta(hours=2, seconds=60)
    assert not g.in_doubt  # the wall clock is still a year off, but steadily: not a jump
    assert abs(g.state().wall_offset_s + 365 * 86400 + 7200 - 90) < 1


def test_a_clock_ahead_at_start_is_trusted_until_the_centre_says_otherwise() -> None:
    """A day without power and a clock a day fast look alike at the school: the edge keeps
    the wall clock (never refuses for it) and the first signed ack corrects it."""
    c = Clocks()
    g, _ = guard(c)
    g.start(int((T0 - dt.timedelta(days=1)).timestamp() * 1000))
    assert not g.in_doubt and g.now() == T0
    g.centre_time(int((T0 - dt.timedelta(days=1)).timestamp() * 1000))
    assert g.now() == T0 - dt.timedelta(days=1)


async def test_centre_time_from_a_signed_ack_of_events_sent(tmp_path: Path) -> None:
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school="S1", device="d1")
    try:
        for _ in range(3):
            await store.journal_alarm("gate-1", AlarmCode.GATE_FAULT, True, "")
        settings = SyncSettings(
            mqtt_port=18301, centre_key=CENTRE_PUBLIC_B64, downlink_signatures="require"
        )
        sync = EdgeSync(store, settings, generate_key())
        told: list[int] = []
        sync.on_centre_time = told.append
        sync._window.sent_high = 3
        topic = topics.ack("S1", "d1", settings.topic_prefix)
        at = int(T0.timestamp() * 1000)

        def signed(through: int, issued: int) -> bytes:
            ack = EventAck(school="S1", device="d1", committed_through=through)
            return sign_for_device(ack, CENTRE_KEY, school="S1", device="d1", issued_at_ms=issued)

        await sync._receive(topic, signed(2, at))
        assert told == [at]
        await sync._receive(topic, signed(2, at + 5000))  # acknowledges nothing new: a replay?
        assert told == [at]
        with pytest.raises(DownlinkRefused):  # unsigned: refused, and no time from it
            await sync._receive(
                topic, encode(EventAck(school="S1", device="d1", committed_through=3))
            )
        assert told == [at]
        await sync._receive(topic, signed(3, at + 9000))
        assert told == [at, at + 9000]
    finally:
        await store.close()
