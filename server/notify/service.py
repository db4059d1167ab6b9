"""``qaqpa server notify``: the planner and N delivery workers as threads of one process (run
several processes for more: they share the work through the database), and the preference
functions the console pages use."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from server.accounts.access import Principal
from server.audit.service import audit
from server.clock import now_ms
from server.db import make_engine
from server.notify.delivery import DeliveryWorker, Sender, recover_interrupted
from server.notify.models import NotifyPreference, OutboxMessage
from server.notify.planner import Planner, cancel_without_consent, preferences_of
from server.notify.rules import Preferences
from server.notify.settings import NotifySettings
from server.people.models import Guardian, Student
from server.service import DatabasePacing, ThreadedService

log = logging.getLogger(__name__)
SWEEP_EVERY_S = 5.0  # consent sweep and crash recovery; workers check consent at sending anyway


class NotifyService(ThreadedService):
    def __init__(
        self, database_url: str, settings: NotifySettings, engine: Engine | None = None
    ) -> None:
        self.settings = settings
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(database_url)
        self.planner = Planner(self.engine, settings)
        sender = Sender(settings)
        self.workers = [
            DeliveryWorker(self.engine, settings, sender) for _ in range(settings.workers)
        ]
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._plan_loop, name="notify-planner", daemon=True)
        ]
        self._threads += [
            threading.Thread(
                target=self._work_loop, args=(w,), name=f"notify-worker-{i}", daemon=True
            )
            for i, w in enumerate(self.workers)
        ]
        for t in self._threads:
            t.start()
        log.info("notify: planner and %d workers started", len(self.workers))
        if not self.settings.channels():
            log.warning(
                "notify: no channel configured (QAQPA_NOTIFY_SMS_URL, _EMAIL_URL, "
                "_PUSH_URL): events are planned but nobody is notified"
            )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for w in self.workers:
            w.stopping.set()  # a worker waiting for the database to record a send gives up
        for t in self._threads:
            t.join(self.settings.send_timeout_s + 5)
        if self._own_engine:
            self.engine.dispose()
        log.info("notify: stopped")

    def _plan_loop(self) -> None:
        last_sweep = 0.0
        pacing = DatabasePacing("notify planner", log)
        while not self._stop.is_set():
            try:
                if self.planner.run_once():
                    self._wake.set()
                if time.monotonic() - last_sweep >= SWEEP_EVERY_S:
                    last_sweep = time.monotonic()
                    with Session(self.engine) as session:
                        cancelled = cancel_without_consent(session)
                        session.commit()
                    if cancelled:
                        log.info(
                            "notify: %d queued messages cancelled (consent withdrawn)", cancelled
                        )
                    if recover_interrupted(self.engine, self.settings):
                        self._wake.set()
            except Exception as err:  # the loop outlives any round (the database gone, a bug)
                self._stop.wait(pacing.failed(err))
                continue
            pacing.succeeded()
            self._stop.wait(self.settings.planner_poll_s)

    def _work_loop(self, worker: DeliveryWorker) -> None:
        pacing = DatabasePacing(f"notify worker {threading.current_thread().name}", log)
        while not self._stop.is_set():
            try:
                claimed = worker.run_once()
            except Exception as err:  # the loop outlives any round (the database gone, a bug)
                self._stop.wait(pacing.failed(err))
                continue
            pacing.succeeded()
            if not claimed:
                self._wake.wait(self.settings.worker_poll_s)
                self._wake.clear()


# ---------------------------------------------------------------------------- preferences


def guardians_of(session: Session, student_pk: int, user_pk: int | None = None) -> list[Guardian]:
    """The child's guardians (only the ones of this console account when ``user_pk`` is set)."""
    from server.people.models import StudentGuardian

    q = (
        select(Guardian)
        .join(StudentGuardian, StudentGuardian.guardian_pk == Guardian.pk)
        .where(StudentGuardian.student_pk == student_pk)
        .order_by(Guardian.pk)
    )
    if user_pk is not None:
        q = q.where(Guardian.user_pk == user_pk)
    return list(session.execute(q).scalars())


def current_preferences(session: Session, guardian: Guardian, student_pk: int) -> Preferences:
    return preferences_of(session, [(guardian.pk, student_pk)], {guardian.pk: guardian.phone})[
        (guardian.pk, student_pk)
    ]


def save_preferences(
    session: Session,
    who: Principal,
    guardian: Guardian,
    student_pk: int,
    school_id: str,
    prefs: Preferences,
) -> None:
    """Replace the guardian's preferences for the child (audited in the same transaction)."""
    row = session.get(NotifyPreference, (guardian.pk, student_pk))
    if row is None:
        row = NotifyPreference(guardian_pk=guardian.pk, student_pk=student_pk, updated_at_ms=0)
        session.add(row)
    row.subscriptions = prefs.to_rows()
    row.quiet_start_min = prefs.quiet.start_min if prefs.quiet else None
    row.quiet_end_min = prefs.quiet.end_min if prefs.quiet else None
    row.updated_at_ms = now_ms()
    row.updated_by = who.user_pk
    audit(
        session,
        who,
        "change",
        "notify.preferences",
        student_pk=student_pk,
        school_id=school_id,
        summary=f"guardian {guardian.pk}: {len(prefs.subscriptions)} subscriptions, "
        f"quiet hours {'set' if prefs.quiet else 'none'}",
    )


# ------------------------------------------------------------------------- the outbox page


def outbox_page_rows(
    db: Session, allowed: set[str] | None, school: str, status: str, limit: int
) -> list[Any]:
    """The newest outbox messages with their student's id, within ``allowed`` schools (None:
    all), optionally of one school and one status."""
    q = select(OutboxMessage, Student.ref).join(Student, Student.pk == OutboxMessage.student_pk)
    if allowed is not None:
        q = q.where(OutboxMessage.school_id.in_(sorted(allowed)))
    if school:
        q = q.where(OutboxMessage.school_id == school)
    if status:
        q = q.where(OutboxMessage.status == status)
    return list(db.execute(q.order_by(OutboxMessage.id.desc()).limit(limit)).all())


def outbox_counts(
    db: Session, allowed: set[str] | None, school: str
) -> list[tuple[str, dict[str, int]]]:
    """Messages per school and status, by school id."""
    q = select(OutboxMessage.school_id, OutboxMessage.status, func.count()).group_by(
        OutboxMessage.school_id, OutboxMessage.status
    )
    if allowed is not None:
        q = q.where(OutboxMessage.school_id.in_(sorted(allowed)))
    if school:
        q = q.where(OutboxMessage.school_id == school)
    counts: dict[str, dict[str, int]] = {}
    for sid, st, n in db.execute(q).all():
        counts.setdefault(sid, {})[st] = n
    return sorted(counts.items())


def student_by_ref(db: Session, ref: str) -> Student | None:
    return db.scalars(select(Student).where(Student.ref == ref).limit(1)).first()
