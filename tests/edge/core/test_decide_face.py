"""Face decisions of the core: face only (1:N by the shell) and card + face (second factor)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from edge.core.decide import decide
from edge.core.model import Card, Presence, SchoolState, Staff, Student, Tap
from edge.core.reasons import MESSAGES, Lang, message
from protocol.messages import ConsentKind, Direction, MealKind, OwnerKind, Reason, TerminalKind
from tests.support.policy import POLICY

ALMATY = ZoneInfo("Asia/Almaty")
MORNING = dt.datetime(2025, 10, 6, 8, 0, tzinfo=ALMATY)  # shift 1 entry hours
BREAKFAST = dt.datetime(2025, 10, 6, 10, 0, tzinfo=ALMATY)
TURNSTILE, CANTEEN, LIBRARY = TerminalKind.TURNSTILE, TerminalKind.CANTEEN, TerminalKind.LIBRARY
DATA = frozenset({ConsentKind.DATA})
BIO = frozenset({ConsentKind.DATA, ConsentKind.BIOMETRIC})


def school() -> SchoolState:
    s = SchoolState()
    for st in (
        Student("bio", 3, "3A", 1, BIO),  # face enrolled with consent
        Student("card", 3, "3A", 1, DATA),  # parents refused biometrics: card only
        Student("bio-only", 3, "3A", 1, frozenset({ConsentKind.BIOMETRIC})),  # no data consent
    ):
        s.students[st.id] = st
    s.staff_by_id["t1"] = Staff("t1", frozenset({"class_teacher"}))
    for cred, kind, owner in (
        ("EM:BIO", OwnerKind.STUDENT, "bio"),
        ("EM:CARD", OwnerKind.STUDENT, "card"),
        ("EM:T1", OwnerKind.STAFF, "t1"),
    ):
        s.cards[cred] = Card(cred, kind, owner)
    return s


def face(student: str, kind: TerminalKind = TURNSTILE, at: dt.datetime = MORNING) -> Tap:
    d = Direction.IN if kind is TURNSTILE else None
    return Tap(at=at, terminal="cam-1", kind=kind, direction=d, face_student=student)


def card(cred: str, verified: bool | None, kind: TerminalKind = TURNSTILE) -> Tap:
    d = Direction.IN if kind is TURNSTILE else None
    return Tap(
        at=MORNING,
        terminal="gate-1",
        kind=kind,
        direction=d,
        credential=cred,
        face_verified=verified,
    )


def test_face_only_identifies_a_consented_student_like_a_card() -> None:
    d = decide(POLICY, school(), face("bio"))
    assert d.granted and d.reason is Reason.OK and d.student_id == "bio"
    assert d.presence_after is Presence.INSIDE
    meal = decide(POLICY, school(), face("bio", CANTEEN, BREAKFAST))
    assert meal.granted and meal.meal is MealKind.FREE and meal.meal_period == "breakfast"
    assert decide(POLICY, school(), face("bio", LIBRARY)).granted


def test_face_only_needs_biometric_and_data_consent() -> None:
    no_bio = decide(POLICY, school(), face("card"))
    assert not no_bio.granted and no_bio.reason is Reason.NO_BIOMETRIC_CONSENT
    assert no_bio.student_id == "card"
    no_data = decide(POLICY, school(), face("bio-only"))
    assert not no_data.granted and no_data.reason is Reason.NO_CONSENT


def test_face_only_of_an_unknown_student_is_denied() -> None:
    d = decide(POLICY, school(), face("nobody"))
    assert not d.granted and d.reason is Reason.UNKNOWN_STUDENT and d.student_id is None


def test_face_only_follows_the_same_rules_as_a_card() -> None:
    s = school()
    s.presence_by_person["bio"] = (MORNING.date(), Presence.INSIDE)
    assert decide(POLICY, s, face("bio")).reason is Reason.PASSBACK  # hard anti-passback
    late = face("bio", at=dt.datetime(2025, 10, 6, 20, 0, tzinfo=ALMATY))
    assert decide(POLICY, s, late).reason is Reason.OUTSIDE_HOURS


def test_card_and_face_mismatch_is_denied() -> None:
    d = decide(POLICY, school(), card("EM:BIO", False))
    assert not d.granted and d.reason is Reason.FACE_MISMATCH and d.student_id == "bio"
    assert decide(POLICY, school(), card("EM:BIO", False, CANTEEN)).reason is Reason.FACE_MISMATCH


@pytest.mark.parametrize("verified", [True, None])
def test_card_and_matching_face_or_no_face_check_is_a_card_tap(verified: bool | None) -> None:
    d = decide(POLICY, school(), card("EM:BIO", verified))
    assert d.granted and d.student_id == "bio"
    assert d == decide(POLICY, school(), card("EM:BIO", None))


def test_card_only_child_is_not_refused_for_a_face_it_has_no_template_for() -> None:
    """Parents refused biometrics: the card alone gives the same access (seed 002)."""
    d = decide(POLICY, school(), card("EM:CARD", False))
    assert d.granted and d.student_id == "card"


def test_card_checks_come_before_the_face() -> None:
    assert decide(POLICY, school(), card("EM:NONE", False)).reason is Reason.UNKNOWN_CARD
    staff = decide(POLICY, school(), card("EM:T1", False))
    assert staff.granted and staff.staff_id == "t1"


def test_a_card_wins_over_a_face_result_on_the_same_tap() -> None:
    tap = Tap(
        at=MORNING,
        terminal="gate-1",
        kind=TURNSTILE,
        direction=Direction.IN,
        credential="EM:CARD",
        face_student="bio",
    )
    d = decide(POLICY, school(), tap)
    assert d.granted and d.student_id == "card"


def test_new_reasons_have_messages_kazakh_first() -> None:
    for r in (Reason.FACE_MISMATCH, Reason.NO_BIOMETRIC_CONSENT):
        assert set(MESSAGES[r]) == set(Lang)
        assert message(r) == MESSAGES[r][Lang.KK]
    assert Reason.FACE_MISMATCH.value == "face_mismatch"
    assert Reason.NO_BIOMETRIC_CONSENT.value == "no_biometric_consent"
