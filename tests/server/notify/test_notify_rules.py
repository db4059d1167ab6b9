"""The notification rules as pure functions: no database, no clock."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.notify.rules import (
    Channel,
    Kind,
    PreferenceError,
    QuietHours,
    Status,
    after_failure,
    backoff_ms,
    default_preferences,
    due_at,
    event_kinds,
    message_text,
    parse_preferences,
    pick_lang,
    scrub,
)

ALMATY = zoneinfo.ZoneInfo("Asia/Almaty")


def ms(y: int, mo: int, d: int, h: int, mi: int) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=ALMATY).timestamp() * 1000)


def test_defaults_are_entry_exit_manual_pass_by_sms_with_a_phone() -> None:
    p = default_preferences(True)
    assert p.subscriptions == {
        (Kind.ENTRY, Channel.SMS),
        (Kind.EXIT, Channel.SMS),
        (Kind.MANUAL_PASS, Channel.SMS),
    }
    assert default_preferences(False).subscriptions == frozenset()


def test_quiet_hours_across_midnight_hold_until_the_end_but_never_a_manual_pass() -> None:
    quiet = QuietHours(22 * 60, 7 * 60)
    late = ms(2026, 11, 20, 23, 30)
    assert due_at(late, [Kind.ENTRY], quiet, "Asia/Almaty") == ms(2026, 11, 21, 7, 0)
    early = ms(2026, 11, 21, 6, 0)
    assert due_at(early, [Kind.EXIT], quiet, "Asia/Almaty") == ms(2026, 11, 21, 7, 0)
    assert due_at(late, [Kind.MANUAL_PASS], quiet, "Asia/Almaty") == late
    day = ms(2026, 11, 21, 8, 1)
    assert due_at(day, [Kind.ENTRY], quiet, "Asia/Almaty") == day
    assert due_at(late, [Kind.ENTRY], None, "Asia/Almaty") == late
    # a window inside one day
    lunch = QuietHours(12 * 60, 13 * 60)
    assert due_at(ms(2026, 11, 21, 12, 30), [Kind.MEAL], lunch, "Asia/Almaty") == ms(
        2026, 11, 21, 13, 0
    )


def test_preferences_form_and_its_errors() -> None:
    p = parse_preferences(
        {"entry:sms": "on", "meal:email": "on", "quiet_start": "22:00", "quiet_end": "07:00"}
    )
    assert p.subscriptions == {(Kind.ENTRY, Channel.SMS), (Kind.MEAL, Channel.EMAIL)}
    assert p.quiet == QuietHours(1320, 420)
    with pytest.raises(PreferenceError) as e:
        parse_preferences({"quiet_start": "25:00", "quiet_end": "07:00"})
    assert e.value.field == "quiet_start"
    with pytest.raises(PreferenceError) as e:
        parse_preferences({"quiet_start": "22:00"})
    assert e.value.field == "quiet_end"
    with pytest.raises(PreferenceError):
        parse_preferences({"quiet_start": "7:00", "quiet_end": "7:00"})


def test_event_kinds() -> None:
    assert event_kinds("entry", {}, 500) == [Kind.ENTRY]
    assert event_kinds("manual_pass", {}, 500) == [Kind.MANUAL_PASS]
    assert event_kinds("meal_served", {"balance_after_tiyn": 100}, 500) == [
        Kind.LOW_BALANCE,
        Kind.MEAL,
    ]
    assert event_kinds("meal_served", {"balance_after_tiyn": 900}, 500) == [Kind.MEAL]
    assert event_kinds("denied", {}, 500) == []


def test_message_is_first_name_time_school_in_the_language() -> None:
    at = ms(2026, 11, 20, 8, 1)
    kw = {"first_name": "Айдана", "school": "School No. 1", "at_ms": at, "zone": "Asia/Almaty"}
    en = message_text([Kind.ENTRY], {}, lang="en", **kw)  # type: ignore[arg-type]
    assert en == "08:01 Айдана entered school (School No. 1)."
    kk = message_text([Kind.ENTRY], {}, lang="kk", **kw)  # type: ignore[arg-type]
    assert kk.startswith("08:01 Айдана") and "мектеп" in kk
    ru = message_text([Kind.MANUAL_PASS], {"direction": "in"}, lang="ru", **kw)  # type: ignore[arg-type]
    assert "08:01 Айдана" in ru and "без карт" in ru
    assert pick_lang(None) == "kk" and pick_lang("ru") == "ru" and pick_lang("xx") == "kk"


@given(st.integers(1, 30), st.floats(0, 0.999))
def test_backoff_is_capped_jittered_and_growing(attempt: int, jitter: float) -> None:
    d = backoff_ms(attempt, base_s=2, cap_s=300, jitter=jitter)
    nominal = min(300, 2 * 2 ** (attempt - 1)) * 1000
    assert nominal / 2 <= d <= nominal


def test_failure_status_and_scrub() -> None:
    assert after_failure(1, 3) is Status.QUEUED
    assert after_failure(3, 3) is Status.FAILED
    assert scrub("refused +77010000001 now", "+77010000001") == "refused <address> now"
