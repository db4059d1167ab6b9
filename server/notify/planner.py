"""The planner: stored uplink events -> outbox rows, exactly once.

Per device, a cursor says which events were planned. One transaction locks the cursor
(``FOR UPDATE SKIP LOCKED``: several planners share the devices), reads the next events up to
what ingest says is complete (``ingest_progress.committed_through``), inserts the outbox rows
(``ON CONFLICT DO NOTHING`` on (device, seq, guardian, channel)) and advances the cursor. A crash
before the commit leaves nothing; a rerun (or a cursor set back by hand) adds nothing twice.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from protocol.messages import ConsentKind
from server.accounts.models import User
from server.clock import DEFAULT_ZONE, now_ms
from server.models import IngestProgress, School, StoredEvent
from server.notify.models import NotifyCursor, NotifyPreference, OutboxMessage
from server.notify.rules import (
    Channel,
    Preferences,
    Status,
    default_preferences,
    due_at,
    event_kinds,
    message_text,
    pick_lang,
    preferences_from_row,
)
from server.notify.settings import NotifySettings
from server.people.models import Consent, Guardian, Student, StudentGuardian

log = logging.getLogger(__name__)

EVENT_KINDS = ("entry", "exit", "manual_pass", "meal_served")
NO_CONSENT = "notifications consent withdrawn"
NO_DATA = "data consent withdrawn"


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def consented(session: Session, student_pks: Sequence[int]) -> set[int]:
    """Students whose current notifications consent is granted (``people.service.has_consent``
    for many students in one query: the newest row per student decides)."""
    if not student_pks:
        return set()
    newest = (
        select(func.max(Consent.pk))
        .where(Consent.student_pk.in_(student_pks), Consent.kind == ConsentKind.NOTIFICATIONS.value)
        .group_by(Consent.student_pk)
    )
    return set(
        session.execute(
            select(Consent.student_pk).where(Consent.pk.in_(newest), Consent.granted.is_(True))
        ).scalars()
    )


def preferences_of(
    session: Session, pairs: Sequence[tuple[int, int]], phones: dict[int, str]
) -> dict[tuple[int, int], Preferences]:
    """(guardian pk, student pk) -> preferences (the defaults where none were saved)."""
    if not pairs:
        return {}
    students = {s for _g, s in pairs}
    saved = {
        (p.guardian_pk, p.student_pk): preferences_from_row(
            p.subscriptions, p.quiet_start_min, p.quiet_end_min
        )
        for p in session.execute(
            select(NotifyPreference).where(NotifyPreference.student_pk.in_(students))
        ).scalars()
    }
    return {
        pair: saved.get(pair) or default_preferences(bool(phones.get(pair[0], "").strip()))
        for pair in pairs
    }


def address_of(guardian: Guardian, channel: Channel) -> str:
    """Where a channel reaches the guardian ("" : it does not)."""
    if channel is Channel.SMS:
        return guardian.phone.strip()
    if channel is Channel.EMAIL:
        return guardian.email.strip()
    return str(guardian.user_pk) if guardian.user_pk is not None else ""


@dataclass(slots=True)
class _Ctx:
    students: dict[str, Student]
    consent: set[int]
    guardians: dict[int, list[Guardian]]
    langs: dict[int, str]
    prefs: dict[tuple[int, int], Preferences]
    schools: dict[str, School]


def _context(session: Session, events: Sequence[StoredEvent]) -> _Ctx:
    refs = {e.student_id for e in events if e.student_id}
    students = (
        {
            s.ref: s
            for s in session.execute(
                select(Student).where(Student.ref.in_(refs), Student.active.is_(True))
            ).scalars()
        }
        if refs
        else {}
    )
    pks = [s.pk for s in students.values()]
    guardians: dict[int, list[Guardian]] = {}
    if pks:
        for link, g in session.execute(
            select(StudentGuardian, Guardian)
            .join(Guardian, Guardian.pk == StudentGuardian.guardian_pk)
            .where(StudentGuardian.student_pk.in_(pks))
            .order_by(Guardian.pk)
        ).all():
            guardians.setdefault(link.student_pk, []).append(g)
    user_pks = {g.user_pk for gs in guardians.values() for g in gs if g.user_pk is not None}
    langs = (
        {
            pk: lang
            for pk, lang in session.execute(select(User.pk, User.lang).where(User.pk.in_(user_pks)))
        }
        if user_pks
        else {}
    )
    pairs = [(g.pk, s) for s, gs in guardians.items() for g in gs]
    phones = {g.pk: g.phone for gs in guardians.values() for g in gs}
    school_ids = {e.school_id for e in events}
    schools = {
        s.id: s for s in session.execute(select(School).where(School.id.in_(school_ids))).scalars()
    }
    return _Ctx(
        students,
        consented(session, pks),
        guardians,
        langs,
        preferences_of(session, pairs, phones),
        schools,
    )


def plan_events(
    session: Session, events: Sequence[StoredEvent], settings: NotifySettings, now: int
) -> list[dict[str, Any]]:
    """The outbox rows for these events (pure apart from the lookups)."""
    wanted = [
        (e, kinds)
        for e in events
        if e.student_id
        and now - e.at_ms <= settings.max_event_age_s * 1000
        and (kinds := event_kinds(e.kind, e.payload, settings.low_balance_tiyn))
    ]
    if not wanted:
        return []
    ctx = _context(session, [e for e, _k in wanted])
    channels = settings.channels()
    rows: list[dict[str, Any]] = []
    # Two guardians sharing a phone (or an e-mail) get one message, not two.
    reached: set[tuple[int, int, Channel, str]] = set()
    for e, kinds in wanted:
        st = ctx.students.get(e.student_id or "")
        if st is None or st.school_id != e.school_id or st.pk not in ctx.consent:
            continue  # unknown, another school's, or no consent: nobody hears of it
        school = ctx.schools.get(e.school_id)
        zone = school.timezone if school is not None else DEFAULT_ZONE
        school_name = (school.name or school.id) if school is not None else e.school_id
        for g in ctx.guardians.get(st.pk, []):
            prefs = ctx.prefs[(g.pk, st.pk)]
            lang = pick_lang(ctx.langs.get(g.user_pk) if g.user_pk is not None else None)
            for channel, ch_kinds in prefs.channels_for(kinds).items():
                address = address_of(g, channel)
                if channel not in channels or not address:
                    continue
                if (e.device_pk, e.seq, channel, address) in reached:
                    continue
                reached.add((e.device_pk, e.seq, channel, address))
                rows.append(
                    {
                        "device_pk": e.device_pk,
                        "seq": e.seq,
                        "guardian_pk": g.pk,
                        "channel": channel.value,
                        "student_pk": st.pk,
                        "school_id": e.school_id,
                        "kind": ch_kinds[0].value,
                        "lang": lang,
                        "body": message_text(
                            ch_kinds,
                            e.payload,
                            lang=lang,
                            first_name=st.given_name,
                            school=school_name,
                            at_ms=e.at_ms,
                            zone=zone,
                        ),
                        "event_at_ms": e.at_ms,
                        "created_at_ms": now,
                        "due_at_ms": due_at(now, ch_kinds, prefs.quiet, zone),
                        "status": Status.QUEUED.value,
                        "attempts": 0,
                        "last_error": "",
                    }
                )
    return rows


class Planner:
    """Plans every device's new events; ``run_once`` returns the outbox rows it added."""

    def __init__(self, engine: Engine, settings: NotifySettings) -> None:
        self.engine = engine
        self.settings = settings
        self._commits = 0

    def pending_devices(self, session: Session) -> list[int]:
        q = (
            select(IngestProgress.device_pk)
            .outerjoin(NotifyCursor, NotifyCursor.device_pk == IngestProgress.device_pk)
            .where(
                IngestProgress.committed_through > func.coalesce(NotifyCursor.planned_through, 0)
            )
            .order_by(IngestProgress.device_pk)
        )
        return list(session.execute(q).scalars())

    def run_once(self, now: int | None = None) -> int:
        added = 0
        with Session(self.engine) as session:
            devices = self.pending_devices(session)
        for device_pk in devices:
            while True:
                n, more = self.plan_device(device_pk, now)
                added += n
                if not more:
                    break
        return added

    def plan_device(self, device_pk: int, now: int | None = None) -> tuple[int, bool]:
        """One transaction for one device: (rows added, more events waiting)."""
        with Session(self.engine) as session:
            session.execute(
                _insert(session)(NotifyCursor)
                .values(device_pk=device_pk, planned_through=0, updated_at_ms=0)
                .on_conflict_do_nothing(index_elements=["device_pk"])
            )
            cursor = session.execute(
                select(NotifyCursor)
                .where(NotifyCursor.device_pk == device_pk)
                .with_for_update(skip_locked=True)
            ).scalar_one_or_none()
            if cursor is None:
                return 0, False  # another planner has it
            committed = (
                session.execute(
                    select(IngestProgress.committed_through).where(
                        IngestProgress.device_pk == device_pk
                    )
                ).scalar_one_or_none()
                or 0
            )
            upto = min(committed, cursor.planned_through + self.settings.plan_batch)
            if upto <= cursor.planned_through:
                session.rollback()
                return 0, False
            events = list(
                session.execute(
                    select(StoredEvent)
                    .where(
                        StoredEvent.device_pk == device_pk,
                        StoredEvent.seq > cursor.planned_through,
                        StoredEvent.seq <= upto,
                        StoredEvent.kind.in_(EVENT_KINDS),
                    )
                    .order_by(StoredEvent.seq)
                ).scalars()
            )
            t = now if now is not None else now_ms()
            rows = plan_events(session, events, self.settings, t)
            added = 0
            if rows:
                result = session.execute(
                    _insert(session)(OutboxMessage)
                    .values(rows)
                    .on_conflict_do_nothing(
                        index_elements=["device_pk", "seq", "guardian_pk", "channel"]
                    )
                    .returning(OutboxMessage.id)
                )
                added = len(result.all())
            cursor.planned_through = upto
            cursor.updated_at_ms = t
            session.flush()
            self._fault_hook()
            session.commit()
            return added, upto < committed

    def _fault_hook(self) -> None:
        self._commits += 1
        if self._commits == self.settings.fault_kill_planner_before_commit:
            os.kill(os.getpid(), signal.SIGKILL)


def cancel_without_consent(session: Session, student_pk: int | None = None) -> int:
    """Queued messages of students whose notifications consent is no longer granted are
    cancelled with the reason (the consents module may call this in its withdrawal transaction;
    the planner sweeps anyway)."""
    newer = aliased(Consent)
    granted = (
        select(Consent.pk)
        .where(
            Consent.student_pk == OutboxMessage.student_pk,
            Consent.kind == ConsentKind.NOTIFICATIONS.value,
            Consent.granted.is_(True),
            ~exists().where(
                newer.student_pk == Consent.student_pk,
                newer.kind == Consent.kind,
                newer.pk > Consent.pk,
            ),
        )
        .exists()
    )
    q = update(OutboxMessage).where(OutboxMessage.status == Status.QUEUED.value, ~granted)
    if student_pk is not None:
        q = q.where(OutboxMessage.student_pk == student_pk)
    result = session.execute(
        q.values(status=Status.CANCELLED.value, last_error=NO_CONSENT).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel_student(session: Session, student_pk: int, reason: str = NO_DATA) -> int:
    """Every queued message about this student is cancelled with ``reason`` (the student's
    data consent was withdrawn: nothing more is said about them). Call inside the withdrawal's
    transaction."""
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == Status.QUEUED.value, OutboxMessage.student_pk == student_pk)
        .values(status=Status.CANCELLED.value, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
