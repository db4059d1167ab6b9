"""Read what the board of trustees' report needs, and keep the concerns log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.audit.service import audit
from server.cards.models import Card, CardStatus
from server.clock import zone
from server.duty.models import DutyAlert
from server.models import School, StoredEvent
from server.people.models import Consent, StaffMember, Student
from server.trustees import calc
from server.trustees.models import ParentConcern


@dataclass(slots=True)
class BoardReport:
    school: School
    start: dt.date
    end: dt.date
    students: int
    coverage: list[calc.Coverage]
    biometrics: calc.Biometrics
    manual_passes: list[tuple[str, int]]  # who authorised (name or staff id), count
    alarms: list[tuple[str, int]]  # alarm code, times raised
    alerts: list[tuple[str, int]]  # routed_to, alerts
    denied: list[tuple[str, int]]  # refusal reason at the gates, count
    concerns: calc.Concerns


def _bounds(school: School, start: dt.date, end: dt.date) -> tuple[int, int]:
    tz = zone(school.timezone)
    lo = int(dt.datetime.combine(start, dt.time(), tz).timestamp() * 1000)
    hi = int(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).timestamp() * 1000)
    return lo, hi


def board_report(session: Session, school: School, start: dt.date, end: dt.date) -> BoardReport:
    pks = list(
        session.scalars(
            select(Student.pk).where(Student.school_id == school.id, Student.active.is_(True))
        )
    )
    decisions: dict[int, dict[str, bool]] = {pk: {} for pk in pks}
    for pk, kind, granted in session.execute(
        select(Consent.student_pk, Consent.kind, Consent.granted)
        .join(Student, Student.pk == Consent.student_pk)
        .where(Student.school_id == school.id, Student.active.is_(True))
        .order_by(Consent.pk)
    ):
        decisions[pk][kind] = granted  # the newest decision wins
    carded: set[int] = set(
        pk
        for pk in session.scalars(
            select(Card.student_pk).where(
                Card.school_id == school.id,
                Card.status == CardStatus.ACTIVE.value,
                Card.student_pk.is_not(None),
            )
        )
        if pk is not None
    )
    lo, hi = _bounds(school, start, end)

    def events(kind: str) -> list[StoredEvent]:
        return list(
            session.scalars(
                select(StoredEvent).where(
                    StoredEvent.school_id == school.id,
                    StoredEvent.kind == kind,
                    StoredEvent.at_ms >= lo,
                    StoredEvent.at_ms < hi,
                )
            )
        )

    names: dict[str, str] = {
        ref: name
        for ref, name in session.execute(
            select(StaffMember.ref, StaffMember.full_name).where(StaffMember.school_id == school.id)
        )
    }
    manual = calc.by_count(
        names.get(str(e.payload.get("authorised_by", "")), str(e.payload.get("authorised_by", "")))
        for e in events("manual_pass")
    )
    alarms = calc.by_count(
        str(e.payload.get("code", "")) for e in events("alarm") if e.payload.get("active")
    )
    denied = calc.by_count(str(e.payload.get("reason", "")) for e in events("denied"))
    alerts = calc.by_count(
        session.scalars(
            select(DutyAlert.routed_to).where(
                DutyAlert.school_id == school.id,
                DutyAlert.created_at_ms >= lo,
                DutyAlert.created_at_ms < hi,
            )
        )
    )
    concerns = calc.Concerns(
        [
            calc.ConcernRow(c.raised_on, c.topic, c.text, c.answer, c.answered_on)
            for c in concern_rows(session, school.id, start, end)
        ]
    )
    return BoardReport(
        school,
        start,
        end,
        len(pks),
        calc.coverage(pks, decisions),
        calc.biometrics(pks, decisions, carded),
        manual,
        alarms,
        alerts,
        denied,
        concerns,
    )


def concern_rows(
    session: Session, school_id: str, start: dt.date, end: dt.date
) -> list[ParentConcern]:
    return list(
        session.scalars(
            select(ParentConcern)
            .where(
                ParentConcern.school_id == school_id,
                ParentConcern.raised_on >= start,
                ParentConcern.raised_on <= end,
            )
            .order_by(ParentConcern.raised_on, ParentConcern.pk)
        )
    )


def add_concern(
    session: Session,
    who: Principal,
    school_id: str,
    topic: str,
    text: str,
    raised_on: dt.date,
    today: dt.date,
    now: int,
) -> ParentConcern:
    topic, body = calc.check_concern(topic, text, raised_on, today)
    row = ParentConcern(
        school_id=school_id,
        raised_on=raised_on,
        topic=topic,
        text=body,
        recorded_by=who.user_pk,
        recorded_at_ms=now,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        who,
        "change",
        "concern",
        school_id=school_id,
        summary=f"concern #{row.pk} recorded ({topic})",
    )
    return row


def answer_concern(
    session: Session, who: Principal, row: ParentConcern, text: str, today: dt.date
) -> None:
    row.answer = calc.check_answer(text)
    row.answered_on = today
    row.answered_by = who.user_pk
    audit(
        session,
        who,
        "change",
        "concern",
        school_id=row.school_id,
        summary=f"concern #{row.pk} answered",
    )
    session.flush()
