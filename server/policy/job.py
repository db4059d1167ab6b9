"""The job that publishes meal policies when they come into force.

A version saved with a future date takes effect that morning without anyone touching it: this
job appends its ``policy_set`` to the school's change log, and the downlink service sends it.
It is started by the process that runs the downlink (``qaqpa server downlink``, the embedded
server), not by the downlink service itself, so ``server.sync`` does not depend on the policy
module.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from server.db import make_engine, session_factory
from server.policy.service import local_today, publish_due_policies
from server.service import ThreadedService
from server.settings import ServerSettings

log = logging.getLogger(__name__)


class DuePolicyJob(ThreadedService):
    """Every ``policy_check_s`` (and once at start), publish the policies due today."""

    def __init__(self, settings: ServerSettings, engine: Engine | None = None) -> None:
        self._settings = settings
        self._engine = engine if engine is not None else make_engine(settings.database_url)
        self._own_engine = engine is None
        self._sessions = session_factory(self._engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, today: dt.date | None = None) -> list[tuple[str, int]]:
        """Publish what is due by ``today`` (default: today in Almaty); returns (school, pk)."""
        with self._sessions() as session:
            done = publish_due_policies(session, today if today is not None else local_today())
        for school, version in done:
            log.info("policy version #%d in force at school %s", version, school)
        return done

    def _loop(self) -> None:
        away = False  # the database was unreachable last round: said once, not every round
        while True:
            try:
                self.run_once()
            except OperationalError as err:
                if not away:
                    first = str(err.orig if err.orig is not None else err).splitlines()[0]
                    log.warning(
                        "due policies: the database is unreachable (%s); trying again every %g s",
                        first[:200],
                        self._settings.policy_check_s,
                    )
                away = True
            except Exception:
                log.exception("due policies: publishing failed; trying again later")
            else:
                if away:
                    log.info("due policies: the database is back; publishing again")
                away = False
            if self._stop.wait(self._settings.policy_check_s):
                return

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="due-policies", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._own_engine:
            self._engine.dispose()
