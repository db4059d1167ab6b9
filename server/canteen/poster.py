"""The meal poster: paid and voucher meals from the school's events into the ledger, each once
per (device_pk, seq), whatever crashes and reruns (the ledger's unique key is the guard, and each
batch commits its entries together). Several posters may run: one that loses a race on the
unique key rolls its batch back and takes the next.

``python -m server.canteen.poster --database-url URL [--loop SECONDS]``
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

import server.schema  # noqa: F401  (every table, for the foreign keys of the ledger's)
from server.canteen.service import post_meals
from server.canteen.settings import CanteenSettings
from server.db import make_engine, session_factory
from server.service import DatabasePacing, ThreadedService

log = logging.getLogger(__name__)


def post_all(engine: Engine, settings: CanteenSettings) -> int:
    """Post every waiting meal, one committed batch after another; returns how many."""
    sessions = session_factory(engine)
    total = commits = races = 0
    while True:
        with sessions() as db:
            n = post_meals(db, settings)
            if n == 0:
                return total
            commits += 1
            if settings.fault_kill_before_commit == commits:
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                db.commit()
            except IntegrityError:  # another poster booked some of these first
                db.rollback()
                races += 1
                if races > 100:
                    raise
                continue
            total += n


def run_once(database_url: str, settings: CanteenSettings) -> int:
    engine = make_engine(database_url)
    try:
        return post_all(engine, settings)
    finally:
        engine.dispose()


class MealPosterService(ThreadedService):
    """Polls for new meal events and posts them (``qaqpa server`` can run it beside ingest)."""

    def __init__(self, database_url: str, settings: CanteenSettings, poll_s: float = 1.0) -> None:
        self.engine = make_engine(database_url)
        self.settings = settings
        self.poll_s = poll_s
        self.posted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="canteen-poster", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.engine.dispose()

    def _run(self) -> None:
        # The database away: a line when it goes and one when it is back; any other error is
        # logged with its traceback; either way the loop lives on (it used to end on the latter).
        pacing = DatabasePacing("canteen poster", log)
        while not self._stop.is_set():
            try:
                self.posted += post_all(self.engine, self.settings)
            except Exception as err:
                self._stop.wait(max(self.poll_s, pacing.failed(err)))
                continue
            pacing.succeeded()
            self._stop.wait(self.poll_s)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m server.canteen.poster", description=__doc__)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--loop", type=float, default=0.0, help="poll every SECONDS (0: once)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    settings = CanteenSettings()
    if args.loop <= 0:
        log.info("posted %d meals", run_once(args.database_url, settings))
        return
    MealPosterService(args.database_url, settings, args.loop).run_forever()


if __name__ == "__main__":
    main()
