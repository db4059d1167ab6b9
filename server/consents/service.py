"""Record a consent decision and carry out what it means, in the caller's transaction.

Giving data consent puts the student on the school's edges; withdrawing a consent removes what
it covered (DESIGN invariant 6, DOMAIN "no data without consent"):

- data: every card of the student is unbound, the student is removed from the edges and
  deactivated here;
- biometric: consent_set granted=False reaches the edge, which deletes the face templates and
  journals face_templates_deleted (stored by ingest; shown on the consent page);
- notifications: recorded; the notification module checks ``has_consent`` before each send.

Every effect gets its own audit entry, so the audit log shows the withdrawal and what went.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.messages import (
    CENTRE_ONLY_CONSENTS,
    CategoriesSet,
    Change,
    ConsentKind,
    ConsentRecord,
    ConsentSet,
    StudentRemove,
    StudentUpsert,
)
from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import Card, CardStatus
from server.cards.service import unbind_change
from server.clock import now_ms
from server.consents.categories import published_memberships
from server.models import School, StoredEvent
from server.notify.planner import cancel_student, cancel_without_consent
from server.people.models import Consent, Student
from server.people.service import current_consent, has_consent, student_record
from server.policy.service import school_today
from server.retention.service import CONSENT_WITHDRAWN, erase_students, is_erased
from server.sync.changelog import append_changes, load_state
from server.sync.state import SchoolState
from server.tutoring.service import withdraw_tutoring

N_ = str  # marks a message for the catalogue test; translated where shown


class ConsentError(ValueError):
    """A consent form that cannot be recorded: ``field`` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# What the withdrawal of a module's own consent kind removes: the module registers a function
# (session, who, student) -> effects (English msgids) when it is imported, so that this module
# does not import it back (server.gifted registers ConsentKind.GIFTED).
WithdrawalHook = Callable[[Session, Principal, Student], list[str]]
WITHDRAWAL_HOOKS: dict[ConsentKind, WithdrawalHook] = {}


def on_withdrawal(kind: ConsentKind, hook: WithdrawalHook) -> None:
    WITHDRAWAL_HOOKS[kind] = hook


@dataclass(frozen=True, slots=True)
class ConsentInput:
    kind: ConsentKind
    granted: bool
    given_by: str
    document: str
    signed_on: dt.date


def parse_consent_form(
    kind: str, decision: str, given_by: str, document: str, signed_on: str, today: dt.date
) -> ConsentInput:
    """Check a consent form; a bad field raises ConsentError naming it. Pure."""
    try:
        k = ConsentKind(kind)
    except ValueError as err:
        raise ConsentError("kind", N_("Unknown consent kind.")) from err
    if decision not in ("given", "withdrawn"):
        raise ConsentError("decision", N_("Choose: given or withdrawn."))
    who = " ".join(given_by.split())
    if not who:
        raise ConsentError("given_by", N_("Write who signed: the parent or legal representative."))
    if len(who) > 200:
        raise ConsentError("given_by", N_("At most 200 characters."))
    doc = " ".join(document.split())
    if not doc:
        raise ConsentError("document", N_("Write the document (number and date or title)."))
    if len(doc) > 200:
        raise ConsentError("document", N_("At most 200 characters."))
    try:
        day = dt.date.fromisoformat(signed_on.strip())
    except ValueError as err:
        raise ConsentError("signed_on", N_("A date as YYYY-MM-DD.")) from err
    if day > today:
        raise ConsentError("signed_on", N_("The signing date cannot be in the future."))
    if day < dt.date(2000, 1, 1):
        raise ConsentError("signed_on", N_("The signing date is too far in the past."))
    return ConsentInput(k, decision == "given", who, doc, day)


def edge_presence(session: Session, student: Student, state: SchoolState) -> list[Change]:
    """The changes that put an active, consented student on the edges if they are not there yet
    (a card bound to someone not on the roster is refused by the change log)."""
    if student.ref in state.students or not student.active:
        return []
    if not has_consent(session, student.pk, ConsentKind.DATA):
        return []
    changes: list[Change] = [StudentUpsert(student=student_record(session, student))]
    memberships = published_memberships(
        session, student.pk, school_today(session.get_one(School, student.school_id))
    )
    if memberships:
        changes.append(CategoriesSet(student_id=student.ref, categories=memberships))
    return changes


def _record(c: Consent) -> ConsentRecord:
    return ConsentRecord.model_validate(
        {
            "kind": c.kind,
            "granted": c.granted,
            "given_by": c.given_by[:500],
            "at_ms": c.recorded_at_ms,
            "document": c.document[:500],
        },
        strict=False,
    )


def record_consent(
    session: Session, who: Principal, student: Student, form: ConsentInput
) -> list[str]:
    """Record the decision and its effects; returns the effects (English msgids). Caller commits."""
    if is_erased(session, student.pk):
        raise ConsentError(
            "decision",
            N_("This student's personal data was erased: register the student again."),
        )
    if not form.granted and not has_consent(session, student.pk, form.kind):
        raise ConsentError("decision", N_("There is no given consent of this kind to withdraw."))
    previous = current_consent(session, student.pk, form.kind)
    now = now_ms()
    row = Consent(
        student_pk=student.pk,
        kind=form.kind.value,
        granted=form.granted,
        given_by=form.given_by,
        document=form.document,
        signed_on=form.signed_on,
        recorded_by=who.user_pk,
        recorded_at_ms=now,
    )
    session.add(row)
    session.flush()
    state = load_state(session, student.school_id)
    changes: list[Change] = []
    effects: list[str] = []

    def effect(action: str, subject: str, summary: str, shown: str) -> None:
        audit(
            session,
            who,
            action,
            subject,
            student_pk=student.pk,
            school_id=student.school_id,
            summary=summary,
        )
        effects.append(shown)

    verb = "given" if form.granted else "withdrawn"
    audit(
        session,
        who,
        "change",
        "consent",
        student_pk=student.pk,
        school_id=student.school_id,
        # Names of the fields recorded, never their values (a document may name the family).
        summary=f"{form.kind.value} consent {verb}; given_by, document, signed_on recorded",
    )
    if form.kind in (ConsentKind.GIFTED, ConsentKind.EQUIPMENT_SURVEY):
        # A module's own consent stays on the server (no edge needs it); its withdrawal removes
        # what it covered (the registry's entry, roadmap and nominations; the survey answers).
        if not form.granted:
            hook = WITHDRAWAL_HOOKS.get(form.kind)
            if hook is None:  # never record a withdrawal whose effects nobody carries out
                raise RuntimeError(f"no withdrawal hook for {form.kind.value}: module not loaded")
            effects.extend(hook(session, who, student))
        return effects
    if form.granted:
        # Reactivate only a student this module deactivated (data withdrawn); one who left the
        # school (the roster's switch) stays inactive.
        if (
            form.kind is ConsentKind.DATA
            and not student.active
            and previous is not None
            and not previous.granted
        ):
            student.active = True
            student.updated_at_ms = now
            effect(
                "change",
                "student",
                "student reactivated: data consent given",
                N_("The student is active again."),
            )
        presence = edge_presence(session, student, state)
        if presence:
            changes.extend(presence)
            effect(
                "change",
                "student",
                "student sent to the school's edges (student_upsert)",
                N_("The student is now on the school's terminals."),
            )
        elif form.kind not in CENTRE_ONLY_CONSENTS:
            changes.append(ConsentSet(student_id=student.ref, consent=_record(row)))
    else:
        if form.kind not in CENTRE_ONLY_CONSENTS:
            changes.append(ConsentSet(student_id=student.ref, consent=_record(row)))
        if form.kind is ConsentKind.TUTORING:
            removed = withdraw_tutoring(session, student.pk)
            effect(
                "change",
                "tutoring",
                f"tutoring participation removed: {removed} records (tutoring consent withdrawn)",
                N_("The student's tutoring records were removed."),
            )
        elif form.kind is ConsentKind.DATA:
            cards = (
                session.execute(
                    select(Card).where(
                        Card.student_pk == student.pk, Card.status != CardStatus.UNBOUND.value
                    )
                )
                .scalars()
                .all()
            )
            for card in cards:
                card.status = CardStatus.UNBOUND.value
                card.unbound_at_ms = now
                unbind = unbind_change(session, card)
                changes.append(unbind)
                effect(
                    "change",
                    "card",
                    f"card #{card.pk} unbound ({unbind.op}): data consent withdrawn",
                    N_("A card was unbound."),
                )
            changes.append(StudentRemove(student_id=student.ref))
            effect(
                "change",
                "student",
                "student removed from the school's edges (student_remove)",
                N_("The student was removed from the school's terminals."),
            )
            student.active = False
            student.updated_at_ms = now
            effect(
                "change",
                "student",
                "student deactivated: data consent withdrawn",
                N_("The student was deactivated."),
            )
            # Removal from the edges deletes any face templates there (reason student_removed),
            # and nothing is sent for an inactive student.
            if has_consent(session, student.pk, ConsentKind.BIOMETRIC):
                effect(
                    "change",
                    "biometric",
                    "face templates to be deleted at the school (student_remove)",
                    N_("The school's terminals delete the face templates."),
                )
            cancelled = cancel_student(session, student.pk)
            if has_consent(session, student.pk, ConsentKind.NOTIFICATIONS) or cancelled:
                effect(
                    "change",
                    "notifications",
                    f"parent notifications stopped (student inactive; {cancelled} queued cancelled)",
                    N_("Notifications to the parents stopped."),
                )
        elif form.kind is ConsentKind.BIOMETRIC:
            effect(
                "change",
                "biometric",
                "face templates to be deleted at the school (consent_set granted=false)",
                N_("The school's terminals delete the face templates."),
            )
        else:
            cancelled = cancel_without_consent(session, student.pk)
            effect(
                "change",
                "notifications",
                f"parent notifications stopped ({cancelled} queued cancelled)",
                N_("Notifications to the parents stopped."),
            )
    append_changes(session, student.school_id, changes)
    if not form.granted and form.kind is ConsentKind.DATA:
        # Without data consent nothing of the child stays in the modules either: the registry,
        # the survey answers and the tutoring records go with it.
        for hook in WITHDRAWAL_HOOKS.values():
            effects.extend(hook(session, who, student))
        if withdraw_tutoring(session, student.pk):
            effects.append(N_("The student's tutoring records were removed."))
        # Retention (README): withdrawn data consent erases the personal data at the centre;
        # the meals the budget pays for stay, under a random token.
        erase_students(session, who, student.school_id, [student], CONSENT_WITHDRAWN, now)
        effects.append(N_("The student's personal data was erased at the centre."))
    return effects


def consent_history(session: Session, student_pk: int) -> list[Consent]:
    return list(
        session.execute(
            select(Consent).where(Consent.student_pk == student_pk).order_by(Consent.pk.desc())
        ).scalars()
    )


def current_consents(session: Session, student_pk: int) -> dict[str, Consent | None]:
    return {k.value: current_consent(session, student_pk, k) for k in ConsentKind}


# Edge clocks may run a little behind the server's: an edge's confirmation counts from this long
# before the withdrawal was recorded.
CLOCK_SLACK_MS = 5 * 60 * 1000


def templates_deleted_event(
    session: Session, student: Student, since_ms: int = 0
) -> StoredEvent | None:
    """The school's latest confirmation (since ``since_ms``) that it deleted this student's face
    templates: the face_templates_deleted event its edge journaled."""
    return session.execute(
        select(StoredEvent)
        .where(
            StoredEvent.school_id == student.school_id,
            StoredEvent.student_id == student.ref,
            StoredEvent.kind == "face_templates_deleted",
            StoredEvent.at_ms >= since_ms - CLOCK_SLACK_MS,
        )
        .order_by(StoredEvent.at_ms.desc())
        .limit(1)
    ).scalar_one_or_none()


def consent_states(
    session: Session, school_id: str, class_pks: Sequence[int]
) -> tuple[list[Student], dict[int, dict[str, bool]]]:
    """The students of these classes (by name) and each one's current decision per kind."""
    students = list(
        session.scalars(
            select(Student)
            .where(Student.school_id == school_id, Student.class_pk.in_(list(class_pks)))
            .order_by(Student.surname, Student.given_name)
        )
    )
    state: dict[int, dict[str, bool]] = {s.pk: {} for s in students}
    rows = session.execute(
        select(Consent.student_pk, Consent.kind, Consent.granted)
        .where(Consent.student_pk.in_(list(state)))
        .order_by(Consent.pk)
    ).all()
    for student_pk, kind, granted in rows:
        state[student_pk][kind] = granted  # the newest row wins
    return students, state
