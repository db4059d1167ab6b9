"""``qaqpa server gifted remind``: record the registry's reminders of what is due and queue the
parents' through the notification outbox (the notify service delivers them). Run it daily
(cron or a systemd timer); a rerun on the same day adds nothing."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any


def _remind(args: argparse.Namespace) -> int:
    from server.clock import clock_for
    from server.db import make_engine, session_factory
    from server.gifted.service import send_reminders
    from server.settings import ServerSettings

    settings = (
        ServerSettings(database_url=args.database_url) if args.database_url else ServerSettings()
    )
    if args.today:
        try:
            today = dt.date.fromisoformat(args.today)
        except ValueError:
            print("qaqpa server gifted remind: --today is a date as YYYY-MM-DD", file=sys.stderr)
            return 2
    else:
        today = clock_for(settings).today_in(None)
    if not 0 <= args.days <= 60:
        print("qaqpa server gifted remind: --days is 0..60", file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            added = send_reminders(session, today, args.days)
            session.commit()
    finally:
        engine.dispose()
    print(f"gifted reminders added: {added} (due by {today + dt.timedelta(days=args.days)})")
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    gifted = subparsers.add_parser("gifted", help="the gifted-children registry")
    sub = gifted.add_subparsers(dest="gifted_command", required=True)
    p = sub.add_parser(
        "remind", parents=[common], help="record due reminders; queue the parents' in the outbox"
    )
    p.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    p.add_argument("--today", default=None, help="the day to plan from (default: today)")
    p.set_defaults(func=_remind)
