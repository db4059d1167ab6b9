"""The meal poster: paid and voucher meals from the school's events into the ledger, each once
per (device_pk, seq), whatever crashes and reruns (the ledger's unique key is the guard, and each
batch commits its entries together).

``python -m server.canteen.poster --database-url URL [--loop SECONDS]``
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time

import server.schema  # noqa: F401  (every table, for the foreign keys of the ledger's)
from server.canteen.service import post_meals
from server.canteen.settings import CanteenSettings
from server.db import make_engine, session_factory

log = logging.getLogger(__name__)


def run_once(database_url: str, settings: CanteenSettings) -> int:
    """Post every waiting meal; returns how many."""
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    total = commits = 0
    try:
        while True:
            with sessions() as db:
                n = post_meals(db, settings)
                if n == 0:
                    return total
                commits += 1
                if settings.fault_kill_before_commit == commits:
                    os.kill(os.getpid(), signal.SIGKILL)
                db.commit()
                total += n
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m server.canteen.poster", description=__doc__)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--loop", type=float, default=0.0, help="poll every SECONDS (0: once)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    settings = CanteenSettings()
    while True:
        n = run_once(args.database_url, settings)
        log.info("posted %d meals", n)
        if args.loop <= 0:
            return
        time.sleep(args.loop)


if __name__ == "__main__":
    main()
