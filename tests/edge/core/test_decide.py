"""The decision core: every rule of ``decide(policy, state, tap)``, and properties of it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.core.decide import Decision, decide
from edge.core.meals import free_meal_eligible, meal_period_at
from edge.core.model import (
    Card,
    Category,
    MealKey,
    Policy,
    Presence,
    SchoolState,
    ServedMeal,
    Staff,
    Student,
    Tap,
)
from edge.core.pin import hash_pin, verify_pin
from edge.core.reasons import MESSAGES, Lang, message
from protocol.messages import (
    AntiPassback,
    ConsentKind,
    Direction,
    MealKind,
    MealPeriodDoc,
    OwnerKind,
    Reason,
    TerminalKind,
)
from tests.support.policy import POLICY, policy

ALMATY = ZoneInfo("Asia/Almaty")  # UTC+5 since 2024-03-01
DAY = dt.date(2025, 10, 6)  # a Monday
TURNSTILE, CANTEEN, LIBRARY = TerminalKind.TURNSTILE, TerminalKind.CANTEEN, TerminalKind.LIBRARY
IN, OUT = Direction.IN, Direction.OUT
DATA = frozenset({ConsentKind.DATA})


SALT = b"0123456789abcdef"
PINS = {"t1": "4821", "d1": "1111", "x1": "2222", "t2": "3333", "t7": "7777"}
PIN_HASHES = {who: hash_pin(pin, SALT) for who, pin in PINS.items()}  # hashed once: ~3 ms each


def school() -> SchoolState:
    """A small school: a fresh, mutable state per test."""
    large_family = Category("large_family", dt.date(2025, 9, 1), dt.date(2025, 10, 6), "board-12")
    students = [
        Student("s1", 3, "3A", 1, DATA),
        Student("s2", 7, "7B", 1, DATA, (large_family,)),
        Student("s3", 8, "8A", 2, DATA),
        Student("s4", 2, "3A", 1, frozenset()),  # no data consent
        Student("s5", 9, "9A", 1, DATA, (Category("sports", DAY, DAY, "x"),)),  # not a policy one
        Student("s6", 1, "1A", 3, DATA),  # shift 3 is not in the policy
        Student("s7", 4, "4B", 2, DATA),
        Student("s8", 5, "5A", 1, frozenset({ConsentKind.BIOMETRIC})),  # biometric only
    ]
    staff = [
        Staff("t1", frozenset({"class_teacher"}), frozenset({"3A"}), PIN_HASHES["t1"]),
        Staff("d1", frozenset({"deputy_director_on_duty"}), frozenset(), PIN_HASHES["d1"]),
        Staff("x1", frozenset({"cook"}), frozenset({"3A"}), PIN_HASHES["x1"]),
        Staff("t2", frozenset({"class_teacher"}), frozenset({"7B"}), PIN_HASHES["t2"]),
        Staff("t7", frozenset({"class_teacher"}), frozenset({"7B"}), PIN_HASHES["t7"]),
        Staff("nopin", frozenset({"deputy_director_on_duty"}), frozenset(), ""),
    ]
    cards = [Card(f"EM:000{s.id[1:]}", OwnerKind.STUDENT, s.id) for s in students]
    cards += [
        Card("EM:T1", OwnerKind.STAFF, "t1"),
        Card("EM:D1", OwnerKind.STAFF, "d1"),
        Card("EM:X1", OwnerKind.STAFF, "x1"),
        Card("EM:T2", OwnerKind.STAFF, "t2", blocked_reason="lost"),
        Card("EM:T7", OwnerKind.STAFF, "t7"),
        Card("EM:NOPIN", OwnerKind.STAFF, "nopin"),
        Card("EM:LOST1", OwnerKind.STUDENT, "s1", blocked_reason="lost"),
        Card("EM:GHOSTSTAFF", OwnerKind.STAFF, "gone"),
        Card("EM:GHOSTSTUDENT", OwnerKind.STUDENT, "gone"),
    ]
    return SchoolState(
        students={s.id: s for s in students},
        staff_by_id={s.id: s for s in staff},
        cards={c.credential: c for c in cards},
    )


def at(hh: int, mm: int, ss: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm, ss), ALMATY)


def tap(
    credential: str | None,
    when: dt.datetime,
    kind: TerminalKind = TURNSTILE,
    direction: Direction | None = IN,
    terminal: str = "t-1",
) -> Tap:
    if kind is not TURNSTILE:
        direction = None
    return Tap(at=when, terminal=terminal, kind=kind, direction=direction, credential=credential)


def manual(
    student: str,
    staff_credential: str,
    pin: str | None,
    when: dt.datetime | None = None,
    kind: TerminalKind = TURNSTILE,
    direction: Direction = IN,
) -> Tap:
    return Tap(
        at=when or at(10, 7),
        terminal="gate-1",
        kind=kind,
        direction=direction,
        manual_student=student,
        staff_credential=staff_credential,
        pin=pin,
    )


def record(state: SchoolState, t: Tap, d: Decision) -> None:
    """Fold a decision into the state exactly as ``edge/replay.py`` does."""
    if d.granted and d.presence_after is not None and d.person_id is not None:
        state.presence_by_person[d.person_id] = (d.local_date, d.presence_after)
    if d.granted and d.meal_period is not None and d.student_id is not None:
        state.meals[MealKey(d.student_id, d.local_date, d.meal_period)] = ServedMeal(
            t.at, t.terminal
        )


def run(state: SchoolState, t: Tap, pol: Policy = POLICY) -> Decision:
    d = decide(pol, state, t)
    record(state, t, d)
    return d


def card(n: int) -> str:
    return f"EM:000{n}"


# --------------------------------------------------------------------------------- turnstile


def test_known_card_enters() -> None:
    d = decide(POLICY, school(), tap(card(1), at(7, 55)))
    assert d == Decision(True, Reason.OK, DAY, student_id="s1", presence_after=Presence.INSIDE)


def test_credentials_compare_case_insensitively() -> None:
    assert decide(POLICY, school(), tap("em:0001", at(7, 55))).granted


def test_unknown_card() -> None:
    d = decide(POLICY, school(), tap("EM:9999", at(7, 55)))
    assert d == Decision(False, Reason.UNKNOWN_CARD, DAY)
    assert d.student_id is None and d.person_id is None  # nobody to name


@pytest.mark.parametrize("credential", ["EM:GHOSTSTAFF", "EM:GHOSTSTUDENT", ""])
def test_card_of_a_person_not_on_the_roster_is_unknown(credential: str) -> None:
    for kind in TerminalKind:
        assert decide(POLICY, school(), tap(credential, at(7, 55), kind)).reason is (
            Reason.UNKNOWN_CARD
        )


def test_tap_without_a_credential_is_an_unknown_card() -> None:
    assert decide(POLICY, school(), tap(None, at(7, 55))).reason is Reason.UNKNOWN_CARD


@pytest.mark.parametrize("kind", list(TerminalKind))
def test_blocked_card_everywhere(kind: TerminalKind) -> None:
    d = decide(POLICY, school(), tap("em:lost1", at(9, 45), kind))
    assert (d.granted, d.reason, d.student_id) == (False, Reason.CARD_BLOCKED, "s1")
    d = decide(POLICY, school(), tap("EM:T2", at(9, 45), kind))
    assert (d.granted, d.reason, d.staff_id) == (False, Reason.CARD_BLOCKED, "t2")


@pytest.mark.parametrize("kind", list(TerminalKind))
@pytest.mark.parametrize("student", [4, 8])  # no consent at all; biometric consent only
def test_data_consent_is_required_everywhere(kind: TerminalKind, student: int) -> None:
    d = decide(POLICY, school(), tap(card(student), at(9, 45), kind))
    assert (d.granted, d.reason, d.student_id) == (False, Reason.NO_CONSENT, f"s{student}")


@pytest.mark.parametrize(
    ("student", "when", "granted"),
    [
        (1, at(7, 0, 0), True),  # shift 1: 07:00-13:00, bounds inclusive
        (1, at(6, 59, 59), False),
        (1, at(13, 0, 0), True),
        (1, at(13, 1, 0), False),
        (1, at(0, 0), False),
        (3, at(12, 29, 59), False),  # shift 2: 12:30-18:30
        (3, at(12, 30, 0), True),
        (3, at(18, 30, 0), True),
        (3, at(18, 31, 0), False),
        (3, at(7, 55), False),  # the other shift's window does not count
        (6, at(10, 0), False),  # a student of a shift the policy does not have
    ],
)
def test_entry_window_of_the_students_shift(student: int, when: dt.datetime, granted: bool) -> None:
    d = decide(POLICY, school(), tap(card(student), when))
    assert d.granted is granted
    assert d.reason is (Reason.OK if granted else Reason.OUTSIDE_HOURS)


def test_entry_window_is_checked_in_the_policy_timezone() -> None:
    utc = dt.datetime(2025, 10, 6, 2, 0, tzinfo=dt.UTC)  # 07:00 in Almaty
    assert decide(POLICY, school(), tap(card(1), utc)).granted
    assert not decide(POLICY, school(), tap(card(1), utc - dt.timedelta(seconds=1))).granted
    # The same instant written with another offset decides the same.
    plus6 = utc.astimezone(dt.timezone(dt.timedelta(hours=6)))
    assert decide(POLICY, school(), tap(card(1), plus6)) == decide(
        POLICY, school(), tap(card(1), utc)
    )


def test_a_clock_in_doubt_lets_people_in_whatever_the_hours_but_keeps_passback() -> None:
    """The corrected time of a clock in doubt may be hours off: the entrance never refuses a
    school for it (README, "Wrong clock"); anti-passback still applies on its day."""
    state = school()
    late = dataclasses.replace(tap(card(1), at(0, 0)), clock_in_doubt=True)
    assert not decide(POLICY, state, tap(card(1), at(0, 0))).granted  # trusted: outside hours
    d = run(state, late)
    assert d.granted and d.presence_after is Presence.INSIDE
    hard = dataclasses.replace(POLICY, anti_passback=AntiPassback.HARD)
    assert decide(hard, state, late).reason is Reason.PASSBACK


def test_leaving_is_not_limited_by_the_entry_window() -> None:
    d = decide(POLICY, school(), tap(card(1), at(21, 0), direction=OUT))
    assert d == Decision(True, Reason.OK, DAY, student_id="s1", presence_after=Presence.OUTSIDE)


def test_turnstile_without_direction_counts_as_entering() -> None:
    d = decide(POLICY, school(), tap(card(1), at(21, 0), direction=None))
    assert d.reason is Reason.OUTSIDE_HOURS
    d = decide(POLICY, school(), tap(card(1), at(8, 0), direction=None))
    assert d.presence_after is Presence.INSIDE


@pytest.mark.parametrize("mode", list(AntiPassback))
@pytest.mark.parametrize("direction", [IN, OUT])
def test_anti_passback_repeated_pass(mode: AntiPassback, direction: Direction) -> None:
    pol = policy(anti_passback=mode)
    state = school()
    first = run(state, tap(card(1), at(8, 0), direction=direction), pol)
    assert first.granted and not first.passback_violation
    second = run(state, tap(card(1), at(8, 1), direction=direction), pol)
    if mode is AntiPassback.HARD:
        assert (second.granted, second.reason, second.student_id) == (
            False,
            Reason.PASSBACK,
            "s1",
        )
    else:
        assert second.granted and second.reason is Reason.OK
        assert second.passback_violation is (mode is AntiPassback.SOFT)


@pytest.mark.parametrize("mode", list(AntiPassback))
def test_alternating_passes_never_violate(mode: AntiPassback) -> None:
    pol, state = policy(anti_passback=mode), school()
    for i, direction in enumerate([IN, OUT, IN, OUT, IN]):
        d = run(state, tap(card(1), at(8, i), direction=direction), pol)
        assert d.granted and not d.passback_violation


def test_first_exit_of_the_day_is_not_a_violation() -> None:
    d = decide(POLICY, school(), tap(card(1), at(8, 0), direction=OUT))
    assert d.granted and not d.passback_violation


def test_presence_from_another_day_does_not_count() -> None:
    state = school()
    state.presence_by_person["s1"] = (DAY - dt.timedelta(days=1), Presence.INSIDE)
    assert decide(POLICY, state, tap(card(1), at(7, 30))).granted


def test_denied_pass_does_not_change_presence() -> None:
    state = school()
    run(state, tap(card(1), at(6, 0)))  # outside hours: still outside
    assert state.presence("s1", DAY) is None
    assert run(state, tap(card(1), at(7, 30))).granted


@pytest.mark.parametrize("mode", list(AntiPassback))
def test_staff_cards_pass_turnstiles_at_any_hour_without_passback(mode: AntiPassback) -> None:
    pol, state = policy(anti_passback=mode), school()
    for direction, presence in [
        (IN, Presence.INSIDE),
        (IN, Presence.INSIDE),
        (OUT, Presence.OUTSIDE),
    ]:
        d = run(state, tap("em:t1", at(5, 0), direction=direction), pol)
        assert d == Decision(True, Reason.OK, DAY, staff_id="t1", presence_after=presence)
        assert d.person_id == "staff:t1" and d.student_id is None  # own id space


@pytest.mark.parametrize("kind", [CANTEEN, LIBRARY])
def test_staff_cards_are_not_valid_at_canteen_or_library(kind: TerminalKind) -> None:
    d = decide(POLICY, school(), tap("EM:T1", at(12, 10), kind))
    assert (d.granted, d.reason, d.staff_id, d.meal) == (False, Reason.NOT_ALLOWED_HERE, "t1", None)


# ----------------------------------------------------------------------------------- library


@pytest.mark.parametrize("when", [at(10, 0), at(22, 0), at(3, 0)])
def test_library_visit(when: dt.datetime) -> None:
    for student in (1, 3, 6):  # any shift, any grade, any hour
        d = decide(POLICY, school(), tap(card(student), when, LIBRARY))
        assert d == Decision(True, Reason.OK, DAY, student_id=f"s{student}")


# ----------------------------------------------------------------------------------- canteen


def canteen(student: int, when: dt.datetime, terminal: str = "canteen-1") -> Tap:
    return tap(card(student), when, CANTEEN, terminal=terminal)


def test_free_meal_by_grade() -> None:
    d = decide(POLICY, school(), canteen(1, at(9, 45)))
    assert d == Decision(
        True, Reason.OK, DAY, student_id="s1", meal=MealKind.FREE, meal_period="breakfast"
    )


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (at(9, 30, 0), Reason.OK),  # from is inclusive
        (at(9, 29, 59), Reason.OUTSIDE_MEAL_PERIOD),
        (at(10, 29, 59), Reason.OK),
        (at(10, 30, 0), Reason.OUTSIDE_MEAL_PERIOD),  # to is exclusive
        (at(11, 0), Reason.OUTSIDE_MEAL_PERIOD),
        (at(13, 29, 59), Reason.OK),
        (at(13, 30, 0), Reason.OUTSIDE_MEAL_PERIOD),
    ],
)
def test_meal_period_bounds(when: dt.datetime, reason: Reason) -> None:
    d = decide(POLICY, school(), canteen(1, when))
    assert d.reason is reason
    assert (d.meal is MealKind.FREE) is (reason is Reason.OK)


@pytest.mark.parametrize(
    ("day", "eligible"),
    [
        (dt.date(2025, 8, 31), False),
        (dt.date(2025, 9, 1), True),  # valid_from inclusive
        (dt.date(2025, 9, 20), True),
        (dt.date(2025, 10, 6), True),  # valid_to inclusive
        (dt.date(2025, 10, 7), False),
    ],
)
def test_free_meal_by_category_valid_on_the_local_date(day: dt.date, eligible: bool) -> None:
    d = decide(POLICY, school(), canteen(2, at(9, 45, day=day)))
    assert d.reason is (Reason.OK if eligible else Reason.NOT_ELIGIBLE)
    assert d.meal is (MealKind.FREE if eligible else None)
    assert d.meal_period == "breakfast" and d.local_date == day


def test_category_not_named_by_the_policy_is_not_eligible() -> None:
    d = decide(POLICY, school(), canteen(5, at(9, 45)))
    assert (d.granted, d.reason, d.meal, d.student_id) == (False, Reason.NOT_ELIGIBLE, None, "s5")
    pol = policy(free_meal_categories=["sports"])
    assert decide(pol, school(), canteen(5, at(9, 45))).meal is MealKind.FREE


def test_category_date_is_the_local_date_not_the_utc_date() -> None:
    """00:30 on 7 October in Almaty is still 6 October in UTC: the local date decides."""
    pol = policy(meal_periods=[MealPeriodDoc(name="night", shifts=[1], from_="00:00", to="01:00")])
    state = school()
    s2 = state.students["s2"]
    when_utc = dt.datetime(2025, 10, 6, 19, 30, tzinfo=dt.UTC)
    assert when_utc.astimezone(ALMATY).date() == dt.date(2025, 10, 7)

    # Valid until 6 October (the UTC date): not valid on the local date.
    d = decide(pol, state, canteen(2, when_utc))
    assert (d.reason, d.local_date) == (Reason.NOT_ELIGIBLE, dt.date(2025, 10, 7))

    # Valid from 7 October (the local date): eligible although UTC still says the 6th.
    later = Category("orphan", dt.date(2025, 10, 7), dt.date(2025, 10, 31), "d")
    state.students["s2"] = dataclasses.replace(s2, categories=(later,))
    d = decide(pol, state, canteen(2, when_utc))
    assert (d.reason, d.meal, d.local_date) == (Reason.OK, MealKind.FREE, dt.date(2025, 10, 7))
    assert free_meal_eligible(pol, state.students["s2"], dt.date(2025, 10, 7))
    assert not free_meal_eligible(pol, state.students["s2"], dt.date(2025, 10, 6))


def test_meal_ledger_uses_the_local_date() -> None:
    """A meal served at 00:30 local on the 7th does not block the 6th, and vice versa."""
    pol = policy(meal_periods=[MealPeriodDoc(name="night", shifts=[1], from_="00:00", to="01:00")])
    state = school()
    first = run(state, canteen(1, dt.datetime(2025, 10, 6, 19, 30, tzinfo=dt.UTC)), pol)
    assert first.granted and first.local_date == dt.date(2025, 10, 7)
    again = run(state, canteen(1, at(0, 45, day=dt.date(2025, 10, 7))), pol)
    assert again.reason is Reason.ALREADY_SERVED
    assert run(state, canteen(1, at(0, 45, day=DAY)), pol).granted


def test_one_meal_per_period_per_local_day_across_terminals() -> None:
    state = school()
    first = run(state, canteen(1, at(9, 40), "canteen-1"))
    assert first.granted
    second = run(state, canteen(1, at(9, 41), "canteen-2"))
    assert (second.granted, second.reason, second.meal, second.meal_period) == (
        False,
        Reason.ALREADY_SERVED,
        None,
        "breakfast",
    )
    assert second.served_before == ServedMeal(at(9, 40), "canteen-1")
    assert run(state, canteen(1, at(12, 5), "canteen-2")).granted  # lunch is another period
    assert run(state, canteen(1, at(12, 6), "canteen-1")).reason is Reason.ALREADY_SERVED
    tomorrow = DAY + dt.timedelta(days=1)
    assert run(state, canteen(1, at(9, 40, day=tomorrow))).granted
    assert run(state, canteen(1, at(9, 41, day=tomorrow), "canteen-3")).reason is (
        Reason.ALREADY_SERVED
    )


def test_other_students_are_served_independently() -> None:
    state = school()
    assert run(state, canteen(1, at(9, 40))).granted
    assert run(state, canteen(2, at(9, 40))).granted


def test_meal_period_must_serve_the_students_shift() -> None:
    # s7: grade 4, shift 2. Breakfast serves shift 1 only; lunch serves both.
    d = decide(POLICY, school(), canteen(7, at(9, 45)))
    assert (d.reason, d.meal_period, d.student_id) == (Reason.OUTSIDE_MEAL_PERIOD, None, "s7")
    assert decide(POLICY, school(), canteen(7, at(12, 10))).meal is MealKind.FREE
    assert decide(POLICY, school(), canteen(6, at(12, 10))).reason is Reason.OUTSIDE_MEAL_PERIOD
    assert meal_period_at(POLICY, 2, dt.time(9, 45)) is None
    period = meal_period_at(POLICY, 2, dt.time(12, 10))
    assert period is not None and period.name == "lunch"


def test_not_eligible() -> None:
    d = decide(POLICY, school(), canteen(3, at(12, 10)))  # grade 8, no category
    assert (d.granted, d.reason, d.meal, d.meal_period) == (
        False,
        Reason.NOT_ELIGIBLE,
        None,
        "lunch",
    )
    assert decide(policy(free_meal_grades=[]), school(), canteen(1, at(9, 45))).reason is (
        Reason.NOT_ELIGIBLE
    )


def test_not_eligible_tap_does_not_use_up_the_period() -> None:
    state = school()
    assert run(state, canteen(3, at(12, 10))).reason is Reason.NOT_ELIGIBLE
    assert not state.meals
    assert run(state, canteen(3, at(12, 11)), policy(free_meal_grades=[8])).granted


# ------------------------------------------------------------------------------ manual pass


def test_class_teacher_lets_a_student_of_their_class_through() -> None:
    d = decide(POLICY, school(), manual("s1", "EM:T1", "4821"))
    assert d == Decision(
        True, Reason.OK, DAY, student_id="s1", authorised_by="t1", presence_after=Presence.INSIDE
    )
    out = decide(POLICY, school(), manual("s1", "em:t1", "4821", direction=OUT))
    assert out.granted and out.presence_after is Presence.OUTSIDE


def test_class_teacher_of_another_class_is_not_authorised() -> None:
    d = decide(POLICY, school(), manual("s2", "EM:T1", "4821"))
    assert (d.granted, d.reason, d.student_id, d.authorised_by) == (
        False,
        Reason.NOT_AUTHORISED,
        "s2",
        "t1",
    )


def test_other_allowed_roles_may_pass_any_class() -> None:
    for student in ("s1", "s2", "s3", "s6"):
        d = decide(POLICY, school(), manual(student, "EM:D1", "1111"))
        assert (d.granted, d.authorised_by, d.student_id) == (True, "d1", student)


def test_roles_not_in_the_policy_are_not_authorised() -> None:
    d = decide(POLICY, school(), manual("s1", "EM:X1", "2222"))  # a cook, even of class 3A
    assert (d.reason, d.authorised_by) == (Reason.NOT_AUTHORISED, "x1")
    pol = policy(manual_pass_roles=["deputy_director_on_duty"])
    assert decide(pol, school(), manual("s1", "EM:T1", "4821")).reason is Reason.NOT_AUTHORISED
    assert decide(
        policy(manual_pass_roles=["cook"]), school(), manual("s1", "EM:X1", "2222")
    ).granted


@pytest.mark.parametrize("pin", ["0000", "", None, "48210", "4821 ", "1111"])
def test_wrong_pin(pin: str | None) -> None:
    d = decide(POLICY, school(), manual("s1", "EM:T1", pin))
    assert d == Decision(False, Reason.NOT_AUTHORISED, DAY)  # names nobody


def test_staff_without_a_pin_cannot_authorise() -> None:
    for pin in ("", "0000"):
        assert decide(POLICY, school(), manual("s1", "EM:NOPIN", pin)).reason is (
            Reason.NOT_AUTHORISED
        )


@pytest.mark.parametrize("credential", ["EM:T2", "EM:0001", "EM:9999", "EM:GHOSTSTAFF", ""])
def test_blocked_unknown_or_student_staff_card_is_not_authorised(credential: str) -> None:
    pin = "3333" if credential == "EM:T2" else "4821"
    d = decide(POLICY, school(), manual("s2", credential, pin))
    assert d == Decision(False, Reason.NOT_AUTHORISED, DAY)


def test_unknown_student() -> None:
    d = decide(POLICY, school(), manual("s99", "EM:D1", "1111"))
    assert d == Decision(False, Reason.UNKNOWN_STUDENT, DAY, authorised_by="d1")


@pytest.mark.parametrize("kind", [CANTEEN, LIBRARY])
def test_manual_pass_only_at_a_turnstile(kind: TerminalKind) -> None:
    d = decide(POLICY, school(), manual("s1", "EM:T1", "4821", kind=kind))
    assert d == Decision(False, Reason.NOT_ALLOWED_HERE, DAY, authorised_by="t1")
    assert d.meal is None


def test_manual_pass_needs_data_consent() -> None:
    d = decide(POLICY, school(), manual("s4", "EM:T1", "4821"))  # 3A, no consent
    assert (d.reason, d.student_id, d.authorised_by) == (Reason.NO_CONSENT, "s4", "t1")


def test_manual_pass_is_the_teachers_call_not_the_entry_windows() -> None:
    """Current rule: a manual pass is not held to the shift window or anti-passback."""
    state = school()
    assert run(state, manual("s1", "EM:T1", "4821", when=at(21, 0))).granted
    assert run(state, manual("s1", "EM:T1", "4821", when=at(21, 1))).granted
    assert state.presence("s1", DAY) is Presence.INSIDE


# ----------------------------------------------------------------------------------- reasons


def test_every_reason_has_kk_ru_en_messages() -> None:
    assert set(MESSAGES) == set(Reason)
    for reason in Reason:
        texts = MESSAGES[reason]
        assert set(texts) == set(Lang), reason
        assert all(t.strip() for t in texts.values()), reason
        assert len(set(texts.values())) == 3, f"{reason}: a language is a copy of another"
        assert message(reason) == texts[Lang.KK]
        for lang in Lang:
            assert message(reason, lang) == texts[lang]
    assert len({MESSAGES[r][Lang.EN] for r in Reason}) == len(Reason)  # reasons are told apart


def test_pin_hashes() -> None:
    stored = hash_pin("4821", SALT)
    assert stored.startswith("pbkdf2-sha256$10000$") and "4821" not in stored
    assert verify_pin("4821", stored) and not verify_pin("4822", stored)
    for bad in ["", "x", "md5$1$00$00", "pbkdf2-sha256$x$00$00", "pbkdf2-sha256$1$zz$00"]:
        assert not verify_pin("4821", bad)


# ---------------------------------------------------------------------------------- properties

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = [ALMATY, dt.UTC, ZoneInfo("Asia/Aqtobe"), dt.timezone(dt.timedelta(hours=-3))]
STATE = school()
KNOWN = [*sorted(STATE.cards), "EM:9999", ""]
credential_s = st.sampled_from(KNOWN) | st.sampled_from(KNOWN).map(str.lower) | st.text(max_size=12)
times = st.datetimes(
    min_value=dt.datetime(2025, 10, 5),
    max_value=dt.datetime(2025, 10, 8),
    timezones=st.sampled_from(ZONES),
)
policies = st.builds(
    policy,
    anti_passback=st.sampled_from(AntiPassback),
    free_meal_grades=st.lists(st.integers(0, 12), max_size=4),
    manual_pass_roles=st.lists(
        st.sampled_from(["class_teacher", "deputy_director_on_duty", "cook"])
    ),
)


@st.composite
def taps(draw: st.DrawFn) -> Tap:
    kind = draw(st.sampled_from(TerminalKind))
    common = {
        "at": draw(times),
        "terminal": draw(st.sampled_from(["gate-1", "canteen-1", "canteen-2", "lib-1"])),
        "kind": kind,
        "direction": draw(st.none() | st.sampled_from(Direction)),
    }
    if draw(st.integers(0, 9)) == 0:
        return Tap(
            **common,
            manual_student=draw(st.sampled_from([*STATE.students, "s99", ""])),
            staff_credential=draw(st.none() | credential_s),
            pin=draw(st.none() | st.sampled_from([*PINS.values(), "", "0"])),
        )
    return Tap(**common, credential=draw(st.none() | credential_s))


@PROPS
@given(policies, st.lists(taps(), max_size=25))
def test_decide_is_deterministic_and_total(pol: Policy, history: list[Tap]) -> None:
    state = school()
    for t in history:
        first = decide(pol, state, t)  # never raises, whatever the tap
        assert decide(pol, state, t) == first
        assert first.local_date == t.at.astimezone(ALMATY).date()
        record(state, t, first)


@PROPS
@given(policies, st.lists(taps(), max_size=30))
def test_decisions_are_consistent(pol: Policy, history: list[Tap]) -> None:
    state = school()
    for t in history:
        d = run(state, t, pol)
        assert d.granted is (d.reason is Reason.OK)
        if not d.granted:
            assert d.meal is None, "a denied decision never carries a meal"
            assert d.presence_after is None
        if d.meal is not None:
            assert d.granted and t.kind is CANTEEN and d.meal_period is not None
            assert d.student_id is not None and d.staff_id is None
        if d.staff_id is not None:
            assert d.student_id is None
        if d.student_id is not None:
            assert d.student_id in state.students or d.reason is Reason.UNKNOWN_STUDENT


@PROPS
@given(
    policies,
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 5, 7]), times, st.sampled_from(["c1", "c2", "c3"])),
        max_size=60,
    ),
)
def test_at_most_one_free_meal_per_student_local_date_and_period(
    pol: Policy, canteen_taps: list[tuple[int, dt.datetime, str]]
) -> None:
    state = school()
    served: Counter[tuple[str, dt.date, str]] = Counter()
    for student, when, terminal in canteen_taps:
        d = run(state, tap(card(student), when, CANTEEN, terminal=terminal), pol)
        if d.meal is not None:
            assert d.student_id is not None and d.meal_period is not None
            served[(d.student_id, d.local_date, d.meal_period)] += 1
            local = when.astimezone(ALMATY)
            period = meal_period_at(pol, state.students[d.student_id].shift, local.time())
            assert period is not None and period.name == d.meal_period
    assert all(n == 1 for n in served.values()), served
    assert len(served) == len(state.meals)
