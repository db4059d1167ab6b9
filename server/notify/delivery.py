"""Delivery: workers claim due outbox rows, check consent again, send through apprise, and
record the outcome; failures are retried with capped, jittered backoff.

Crash between the send and its mark: the row stays ``sending``; after ``lease_s`` it is
recovered. On channels listed in ``resend_interrupted`` (SMS: the gateway drops a repeated
``Idempotency-Key``, which is the outbox id) it is sent again: at-least-once to the gateway,
exactly once to the parent. On the others (SMTP has no such key) it is marked failed and not
repeated: at-most-once, because a parent told twice that their child entered is worse than a
rare missing message, which the parent page still shows.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import apprise
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from protocol.messages import ConsentKind
from server.clock import now_ms
from server.db import is_unreachable
from server.notify.models import OutboxMessage
from server.notify.planner import NO_CONSENT, address_of, consented
from server.notify.rules import Channel, Kind, Status, after_failure, backoff_ms, scrub
from server.notify.settings import NotifySettings
from server.people.models import Guardian
from server.people.service import has_consent

log = logging.getLogger(__name__)

HEADER_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
INTERRUPTED_REPEAT = "interrupted during send; repeated with the same idempotency key"
INTERRUPTED_DROP = "interrupted during send; not repeated (at-most-once)"


_apprise_log = logging.getLogger("apprise")
_apprise_log.propagate = False  # apprise's lines may carry a gateway URL; the error is recorded


def _errors(result: Any) -> str:
    """apprise (2.x) keeps each attempt's log lines in its result: the warnings say why."""
    lines: list[str] = []
    for res in getattr(result, "results", ()):
        for attempt in getattr(res, "attempts", ()):
            for entry in getattr(attempt, "logs", ()):
                level = getattr(entry, "level", 0)
                if isinstance(level, str):
                    level = logging.getLevelName(level)
                if isinstance(level, int) and level >= logging.WARNING:
                    lines.append(str(getattr(entry, "message", "")))
    return "; ".join(lines)


def _with_params(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


class Sender:
    """One gateway call through apprise; ``send`` returns None or the error (address removed)."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    def url(self, channel: Channel, address: str, outbox_id: int) -> str | None:
        base = self.settings.channel_url(channel)
        if base is None:
            return None
        t = f"{self.settings.send_timeout_s:g}"
        params = {"cto": t, "rto": t}
        if channel is Channel.PUSH:
            base = base.replace("{user}", urllib.parse.quote(address, safe=""))
        scheme = base.split("://", 1)[0].lower()
        if scheme in HEADER_SCHEMES:
            params["+Idempotency-Key"] = str(outbox_id)
        if channel is Channel.SMS:
            params[":to"] = address
        elif channel is Channel.EMAIL:
            params["to"] = address
            params["+X-Qaqpa-Outbox-Id"] = str(outbox_id)
        return _with_params(base, params)

    def send(self, channel: Channel, address: str, outbox_id: int, body: str) -> str | None:
        url = self.url(channel, address, outbox_id)
        if url is None:
            return f"channel {channel.value} is not configured"
        a = apprise.Apprise()
        if not a.add(url):
            return f"the {channel.value} gateway URL is not valid"
        try:
            result = a.notify(body=body, title="Qaqpa")
        except Exception as err:  # a plugin bug must not kill the worker
            return scrub(f"{type(err).__name__}: {err}", address)
        if result:
            return None
        return scrub(_errors(result) or "the gateway refused the message", address)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    channel: Channel
    guardian_pk: int
    student_pk: int
    body: str
    attempts: int
    kind: str = ""
    held: bool = False  # held back by the SMS limit: it goes in a digest


HOUR_MS = 3_600_000
HELD = "held by the hourly SMS limit"
DIGEST_CHARS = 600


def digest(bodies: list[str], limit: int = DIGEST_CHARS) -> str:
    """Several routine messages as one SMS, oldest first, cut at ``limit`` characters."""
    text = "\n".join(bodies)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class DeliveryWorker:
    """Claims due rows and delivers them; several workers (threads or processes) share the
    outbox through ``FOR UPDATE SKIP LOCKED``."""

    def __init__(
        self,
        engine: Engine,
        settings: NotifySettings,
        sender: Sender | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.sender = sender or Sender(settings)
        self.rand = rand
        self._sends = 0
        self.stopping = threading.Event()  # set by the service: no more waiting for the database

    def claim(self, now: int) -> list[Claimed]:
        with Session(self.engine) as session:
            due = (
                select(OutboxMessage.id)
                .where(OutboxMessage.status == Status.QUEUED.value, OutboxMessage.due_at_ms <= now)
                .order_by(OutboxMessage.due_at_ms, OutboxMessage.id)
                .limit(self.settings.claim_batch)
                .with_for_update(skip_locked=True)
            )
            # Two statements: an IN (subquery ... LIMIT n FOR UPDATE SKIP LOCKED) may be
            # re-evaluated by PostgreSQL and claim more than n rows.
            ids = list(session.execute(due).scalars())
            if not ids:
                return []
            rows = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.status == Status.QUEUED.value)
                .values(
                    status=Status.SENDING.value,
                    attempts=OutboxMessage.attempts + 1,
                    claimed_at_ms=now,
                )
                .returning(
                    OutboxMessage.id,
                    OutboxMessage.channel,
                    OutboxMessage.guardian_pk,
                    OutboxMessage.student_pk,
                    OutboxMessage.body,
                    OutboxMessage.attempts,
                    OutboxMessage.kind,
                    OutboxMessage.last_error,
                )
                .execution_options(synchronize_session=False)
            ).all()
            session.commit()
        return [
            Claimed(r[0], Channel(r[1]), r[2], r[3], r[4], r[5], r[6], r[7] == HELD)
            for r in sorted(rows)
        ]

    def run_once(self, now: int | None = None) -> int:
        """Claim and deliver one batch: how many were claimed."""
        t = now if now is not None else now_ms()
        claimed = self.claim(t)
        if not claimed:
            return 0
        # Consent again at sending (a withdrawal since planning stops the message) and the
        # current address, for the whole batch in one read.
        with Session(self.engine) as session:
            ok = consented(session, sorted({c.student_pk for c in claimed}))
            guardians = {
                g.pk: g
                for g in session.execute(
                    select(Guardian).where(Guardian.pk.in_({c.guardian_pk for c in claimed}))
                ).scalars()
            }
        # Held SMS claimed together for one guardian and child go as one digest.
        along: dict[int, list[Claimed]] = {}
        lead: dict[tuple[int, int], Claimed] = {}
        for c in claimed:
            if c.held:
                first = lead.setdefault((c.guardian_pk, c.student_pk), c)
                if first is not c:
                    along.setdefault(first.id, []).append(c)
        riders = {r.id for rs in along.values() for r in rs}
        for c in claimed:
            if c.id in riders:
                continue
            g = guardians.get(c.guardian_pk)
            address = address_of(g, c.channel) if g is not None else ""
            self._deliver(
                c, c.student_pk in ok, address, t if now is not None else None, along.get(c.id, [])
            )
        return len(claimed)

    def deliver(self, c: Claimed, now: int | None = None) -> Status:
        """Deliver one claimed message (consent and address read now)."""
        with Session(self.engine) as session:
            allowed = has_consent(session, c.student_pk, ConsentKind.NOTIFICATIONS)
            guardian = session.get(Guardian, c.guardian_pk)
            address = address_of(guardian, c.channel) if guardian is not None else ""
        return self._deliver(c, allowed, address, now)

    def _deliver(
        self,
        c: Claimed,
        allowed: bool,
        address: str,
        now: int | None,
        along: list[Claimed] | None = None,
    ) -> Status:
        if not allowed or not address:
            for r in along or []:  # the same guardian and child: the same answer
                self._deliver(r, allowed, address, now)
        if not allowed:
            return self._finish(c, Status.CANCELLED, NO_CONSENT, now)
        if not address:
            return self._finish(
                c, Status.CANCELLED, f"the guardian has no {c.channel.value} address", now
            )
        if c.channel is Channel.SMS and c.kind != Kind.MANUAL_PASS.value:
            return self._deliver_routine_sms(c, address, now, along or [])
        error = self.sender.send(c.channel, address, c.id, c.body)
        self._fault_hook()
        if error is None:
            return self._finish(c, Status.SENT, "", now)
        status = after_failure(c.attempts, self.settings.max_attempts)
        log.info("outbox %d: attempt %d failed (%s)", c.id, c.attempts, status.value)
        return self._finish(c, status, error, now)

    def _deliver_routine_sms(
        self, c: Claimed, address: str, now: int | None, along: list[Claimed]
    ) -> Status:
        """A routine SMS within the guardian's hourly limit goes with every other routine SMS
        about the same child that is due, as one digest; over the limit it waits until the
        oldest SMS of the hour is an hour old. A manual pass never comes here."""
        t = now if now is not None else now_ms()
        routine = (
            OutboxMessage.guardian_pk == c.guardian_pk,
            OutboxMessage.channel == Channel.SMS.value,
            OutboxMessage.kind != Kind.MANUAL_PASS.value,
        )
        with Session(self.engine) as session:
            recent, oldest = session.execute(
                select(func.count(), func.min(OutboxMessage.sent_at_ms)).where(
                    *routine,
                    OutboxMessage.status == Status.SENT.value,
                    OutboxMessage.sent_at_ms > t - HOUR_MS,
                    # a digest's other rows share its sent_at: one SMS counts once
                    OutboxMessage.last_error == "",
                )
            ).one()
            if recent >= self.settings.sms_per_hour:
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id.in_([c.id, *(r.id for r in along)]),
                        OutboxMessage.status == Status.SENDING.value,
                    )
                    .values(
                        status=Status.QUEUED.value,
                        attempts=OutboxMessage.attempts - 1,  # held, not failed
                        due_at_ms=(oldest or t) + HOUR_MS,
                        last_error=HELD,
                    )
                    .execution_options(synchronize_session=False)
                )
                session.commit()
                return Status.QUEUED
            # Only a held message gathers the others held with it: a digest.
            others: list[tuple[int, str]] = []
            if c.held:
                others = [
                    (int(i), str(b))
                    for i, b in session.execute(
                        select(OutboxMessage.id, OutboxMessage.body)
                        .where(
                            *routine,
                            OutboxMessage.student_pk == c.student_pk,
                            OutboxMessage.status == Status.QUEUED.value,
                            OutboxMessage.due_at_ms <= t,
                            OutboxMessage.id != c.id,
                            OutboxMessage.last_error == HELD,
                        )
                        .order_by(OutboxMessage.event_at_ms, OutboxMessage.id)
                        .with_for_update(skip_locked=True)
                    )
                ]
            others = [(r.id, r.body) for r in along] + others
            ids = [i for i, _b in others]
            if ids:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(status=Status.SENDING.value, claimed_at_ms=t)
                    .execution_options(synchronize_session=False)
                )
            session.commit()
        body = digest([c.body, *(b for _i, b in others)]) if others else c.body
        error = self.sender.send(c.channel, address, c.id, body)
        self._fault_hook()
        with Session(self.engine) as session:
            if ids:
                done = error is None
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids), OutboxMessage.status == Status.SENDING.value)
                    .values(
                        status=Status.SENT.value if done else Status.QUEUED.value,
                        sent_at_ms=t if done else None,
                        last_error=f"in the digest of message {c.id}" if done else "",
                    )
                    .execution_options(synchronize_session=False)
                )
                session.commit()
        if error is None:
            return self._finish(c, Status.SENT, "", now)
        status = after_failure(c.attempts, self.settings.max_attempts)
        log.info("outbox %d: attempt %d failed (%s)", c.id, c.attempts, status.value)
        return self._finish(c, status, error, now)

    def _finish(self, c: Claimed, status: Status, error: str, now: int | None) -> Status:
        t = now if now is not None else now_ms()
        values: dict[str, object] = {"status": status.value, "last_error": error[:300]}
        if status is Status.SENT:
            values["sent_at_ms"] = t
        elif status is Status.QUEUED:
            values["due_at_ms"] = t + backoff_ms(
                c.attempts,
                base_s=self.settings.backoff_base_s,
                cap_s=self.settings.backoff_cap_s,
                jitter=self.rand(),
            )
        mark = (
            update(OutboxMessage)
            .where(
                OutboxMessage.id == c.id,
                OutboxMessage.status == Status.SENDING.value,
                OutboxMessage.attempts == c.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        # The message has gone (or failed) already: if the database is away now, wait for it
        # rather than leave the row "sending", which after the lease means sent again (SMS) or
        # marked failed (e-mail). Past the lease, recovery owns the row; the guarded update then
        # changes nothing.
        give_up = time.monotonic() + self.settings.lease_s
        pause = 0.2
        while True:
            try:
                with Session(self.engine) as session:
                    session.execute(mark)
                    session.commit()
                return status
            except Exception as err:
                if not is_unreachable(err) or time.monotonic() + pause > give_up:
                    raise
                log.warning("outbox %d: the database is unreachable; recording it later", c.id)
                if self.stopping.wait(pause):
                    raise
                pause = min(pause * 2, 5.0)

    def _fault_hook(self) -> None:
        self._sends += 1
        if self._sends == self.settings.fault_kill_after_send:
            os.kill(os.getpid(), signal.SIGKILL)


def recover_interrupted(engine: Engine, settings: NotifySettings, now: int | None = None) -> int:
    """Rows left ``sending`` by a crashed worker: repeat or fail them (see the module doc)."""
    t = now if now is not None else now_ms()
    stale = t - int(settings.lease_s * 1000)
    repeat = [c.value for c in settings.resend_interrupted]
    with Session(engine) as session:
        base = update(OutboxMessage).where(
            OutboxMessage.status == Status.SENDING.value, OutboxMessage.claimed_at_ms < stale
        )
        n = session.execute(
            base.where(
                OutboxMessage.channel.in_(repeat),
                OutboxMessage.attempts < settings.max_attempts,
            )
            .values(status=Status.QUEUED.value, due_at_ms=t, last_error=INTERRUPTED_REPEAT)
            .execution_options(synchronize_session=False)
        )
        m = session.execute(
            base.values(status=Status.FAILED.value, last_error=INTERRUPTED_DROP).execution_options(
                synchronize_session=False
            )
        )
        session.commit()
    return int(getattr(n, "rowcount", 0) or 0) + int(getattr(m, "rowcount", 0) or 0)
