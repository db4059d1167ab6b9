"""``qaqpa server rollups rebuild [--since DATE] [--sql]`` and ``qaqpa server rollups meals``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any


def _rebuild(args: argparse.Namespace) -> int:
    from server.db import make_engine
    from server.rollups.service import rebuild, rebuild_sql

    try:
        since = dt.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        print(
            f"qaqpa server rollups rebuild: --since {args.since!r} is not YYYY-MM-DD",
            file=sys.stderr,
        )
        return 2
    engine = make_engine(args.settings_of(args).database_url)
    try:
        out = (rebuild_sql if args.sql else rebuild)(engine, since)
    finally:
        engine.dispose()
    print(
        f"rollups: {out.schools} school(s), {out.events} event(s) read, "
        f"{out.meal_rows} meal row(s), {out.presence_rows} presence row(s)"
    )
    return 0


def _meals(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from server.db import make_engine
    from server.reports.calc import month_days, parse_month
    from server.rollups.service import region_meals

    try:
        days = month_days(parse_month(args.month))
    except ValueError as err:
        print(f"qaqpa server rollups meals: {err}", file=sys.stderr)
        return 2
    engine = make_engine(args.settings_of(args).database_url)
    try:
        with Session(engine) as db:
            rows = region_meals(db, args.region, days[0], days[-1])
    finally:
        engine.dispose()
    print(json.dumps([dataclasses.asdict(r) for r in rows]))
    return 0


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings_of: Callable[..., Any]
) -> None:
    top = subparsers.add_parser("rollups", help="daily roll-ups of meals and attendance")
    sub = top.add_subparsers(dest="rollups_command", required=True)
    p = sub.add_parser("rebuild", parents=[common], help="recompute the roll-ups from the events")
    p.add_argument("--since", default=None, help="YYYY-MM-DD: only the days from this one")
    p.add_argument(
        "--sql",
        action="store_true",
        help="set-based, in one transaction (after a bulk load or a restore; ingest stopped)",
    )
    p.set_defaults(func=_rebuild, settings_of=settings_of)
    p = sub.add_parser("meals", parents=[common], help="a region's meals per school (JSON)")
    p.add_argument("--region", default=None, help="region id (default: the whole country)")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.set_defaults(func=_meals, settings_of=settings_of)
