"""The decision: a pure function of (policy, state, tap). ``tap.at`` is "now".

While the edge's clock is in doubt (``tap.clock_in_doubt``), ``tap.at`` is the corrected time
from the last trusted moment: entry is not refused for the hours, and meals stay keyed to that
time's day and period, so a jump of the wall clock never reopens a period already served."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edge.core.meals import free_meal_eligible, meal_period_at
from edge.core.model import MealKey, Policy, Presence, ServedMeal, StateView, Student, Tap
from edge.core.money import offer, pay_reason
from edge.core.pin import verify_pin
from protocol.messages import (
    AntiPassback,
    ConsentKind,
    Direction,
    MealKind,
    OwnerKind,
    Reason,
    TerminalKind,
)

CLASS_TEACHER = "class_teacher"


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: Reason
    local_date: dt.date
    student_id: str | None = None
    staff_id: str | None = None  # the card's owner when a staff member taps
    authorised_by: str | None = None  # the staff member who authorised a manual pass
    meal: MealKind | None = None
    meal_period: str | None = None
    presence_after: Presence | None = None  # recorded once the person has actually passed
    passback_violation: bool = False
    served_before: ServedMeal | None = None  # for ALREADY_SERVED: when and where
    balance_tiyn: int | None = None  # canteen, paying student: the balance at the school

    @property
    def person_id(self) -> str | None:
        """Key of the anti-passback state: students and staff have separate id spaces."""
        if self.student_id is not None:
            return self.student_id
        return f"staff:{self.staff_id}" if self.staff_id is not None else None


def decide(policy: Policy, state: StateView, tap: Tap) -> Decision:
    local = tap.at.astimezone(policy.timezone)
    day = local.date()
    if tap.is_manual:
        return _manual_pass(policy, state, tap, day)

    def deny(reason: Reason, **kw: object) -> Decision:
        return Decision(False, reason, day, **kw)  # type: ignore[arg-type]

    if tap.is_face_only:
        return _face_only(policy, state, tap, local)

    card = state.card(tap.credential or "")
    if card is None:
        return deny(Reason.UNKNOWN_CARD)
    if card.blocked_reason is not None:
        return deny(Reason.CARD_BLOCKED, **_owner(card.owner_kind, card.owner_id))
    if card.owner_kind is OwnerKind.STAFF:
        if state.staff(card.owner_id) is None:
            return deny(Reason.UNKNOWN_CARD)
        if tap.kind is not TerminalKind.TURNSTILE:
            return deny(Reason.NOT_ALLOWED_HERE, staff_id=card.owner_id)
        presence = Presence.INSIDE if tap.direction is Direction.IN else Presence.OUTSIDE
        return Decision(True, Reason.OK, day, staff_id=card.owner_id, presence_after=presence)

    student = state.student(card.owner_id)
    if student is None:
        return deny(Reason.UNKNOWN_CARD)
    if ConsentKind.DATA not in student.consents:
        return deny(Reason.NO_CONSENT, student_id=student.id)
    # Card + face: a face that is not the card owner's refuses the card (card sharing). A face
    # result is used only for a student with biometric consent: a child whose parents refused
    # biometrics passes with the card alone, with the same access (consent gates everything).
    if tap.face_verified is False and ConsentKind.BIOMETRIC in student.consents:
        return deny(Reason.FACE_MISMATCH, student_id=student.id)
    return _student_at(policy, state, tap, student, local)


def _student_at(
    policy: Policy, state: StateView, tap: Tap, student: Student, local: dt.datetime
) -> Decision:
    """The decision for an identified student with data consent, by terminal kind."""
    if tap.kind is TerminalKind.TURNSTILE:
        return _turnstile(policy, state, tap, student, local)
    if tap.kind is TerminalKind.CANTEEN:
        return _canteen(policy, state, tap, student, local)
    return Decision(True, Reason.OK, local.date(), student_id=student.id)  # library: a visit


def _face_only(policy: Policy, state: StateView, tap: Tap, local: dt.datetime) -> Decision:
    """A face-only terminal identified ``tap.face_student``: it needs data AND biometric consent."""
    day = local.date()
    student = state.student(tap.face_student or "")
    if student is None:
        return Decision(False, Reason.UNKNOWN_STUDENT, day)
    if ConsentKind.DATA not in student.consents:
        return Decision(False, Reason.NO_CONSENT, day, student_id=student.id)
    if ConsentKind.BIOMETRIC not in student.consents:
        return Decision(False, Reason.NO_BIOMETRIC_CONSENT, day, student_id=student.id)
    return _student_at(policy, state, tap, student, local)


def _owner(kind: OwnerKind, owner_id: str) -> dict[str, str]:
    return {"student_id": owner_id} if kind is OwnerKind.STUDENT else {"staff_id": owner_id}


def _turnstile(
    policy: Policy, state: StateView, tap: Tap, student: Student, local: dt.datetime
) -> Decision:
    day = local.date()
    entering = tap.direction is not Direction.OUT
    if entering and not tap.clock_in_doubt:  # in doubt: the hours cannot be told, let in
        shift = policy.shifts.get(student.shift)
        if shift is None or not (shift.entry_from <= local.time() <= shift.entry_to):
            return Decision(False, Reason.OUTSIDE_HOURS, day, student_id=student.id)
    target = Presence.INSIDE if entering else Presence.OUTSIDE
    violation = state.presence(student.id, day) is target
    if violation and policy.anti_passback is AntiPassback.HARD:
        return Decision(False, Reason.PASSBACK, day, student_id=student.id)
    return Decision(
        True,
        Reason.OK,
        day,
        student_id=student.id,
        presence_after=target,
        passback_violation=violation and policy.anti_passback is AntiPassback.SOFT,
    )


def _canteen(
    policy: Policy, state: StateView, tap: Tap, student: Student, local: dt.datetime
) -> Decision:
    day = local.date()
    period = meal_period_at(policy, student.shift, local.time())
    if period is None:
        return Decision(False, Reason.OUTSIDE_MEAL_PERIOD, day, student_id=student.id)
    if not free_meal_eligible(policy, student, day):
        if not state.menu(day):  # nothing on sale today: as before the canteen sold anything
            return Decision(
                False, Reason.NOT_ELIGIBLE, day, student_id=student.id, meal_period=period.name
            )
        o = offer(policy, state, student.id, day, period.name)
        return Decision(
            False,
            pay_reason(o),
            day,
            student_id=student.id,
            meal_period=period.name,
            balance_tiyn=o.balance_tiyn,
        )
    before = state.served(MealKey(student.id, day, period.name))
    if before is not None:
        return Decision(
            False,
            Reason.ALREADY_SERVED,
            day,
            student_id=student.id,
            meal_period=period.name,
            served_before=before,
        )
    return Decision(
        True, Reason.OK, day, student_id=student.id, meal=MealKind.FREE, meal_period=period.name
    )


def _manual_pass(policy: Policy, state: StateView, tap: Tap, day: dt.date) -> Decision:
    if tap.signed_in_staff is not None:  # signed in at the staff page with card + PIN
        staff = state.staff(tap.signed_in_staff)
    else:  # a card and a PIN keyed in with the pass (replay, a local roster's PIN hash)
        card = state.card(tap.staff_credential or "")
        staff = (
            state.staff(card.owner_id)
            if card is not None
            and card.owner_kind is OwnerKind.STAFF
            and card.blocked_reason is None
            else None
        )
        if staff is not None and not verify_pin(tap.pin or "", staff.pin_hash):
            staff = None
    if staff is None:
        return Decision(False, Reason.NOT_AUTHORISED, day)
    if tap.kind is not TerminalKind.TURNSTILE:
        return Decision(False, Reason.NOT_ALLOWED_HERE, day, authorised_by=staff.id)
    student = state.student(tap.manual_student or "")
    if student is None:
        return Decision(False, Reason.UNKNOWN_STUDENT, day, authorised_by=staff.id)
    roles = staff.roles & policy.manual_pass_roles
    may = any(r != CLASS_TEACHER or student.class_name in staff.classes for r in roles)
    if not may:
        return Decision(
            False, Reason.NOT_AUTHORISED, day, student_id=student.id, authorised_by=staff.id
        )
    if ConsentKind.DATA not in student.consents:
        return Decision(
            False, Reason.NO_CONSENT, day, student_id=student.id, authorised_by=staff.id
        )
    presence = Presence.OUTSIDE if tap.direction is Direction.OUT else Presence.INSIDE
    return Decision(
        True, Reason.OK, day, student_id=student.id, authorised_by=staff.id, presence_after=presence
    )
