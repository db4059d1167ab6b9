"""``qaqpa server retention run [--dry-run]`` and ``qaqpa server retention set``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.db import make_engine, session_factory
    from server.retention.service import run

    engine = make_engine(args.settings_of(args).database_url)
    try:
        with session_factory(engine)() as session:
            rep = run(session, now_ms(), dry_run=args.dry_run)
            if args.dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        engine.dispose()
    verb = "would erase" if args.dry_run else "erased"
    print(
        f"retention: {verb} {rep.due_total} student(s); {rep.started} newly inactive, "
        f"{rep.waiting} waiting, {rep.restarted} active again"
    )
    for school, pks in sorted(rep.due.items()):
        print(f"  {school}: {len(pks)}")
    for key, n in sorted(rep.counts.items()):
        print(f"  {key}: {n}")
    return 0


def _set(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.db import make_engine, session_factory
    from server.models import Region
    from server.retention.rules import RetentionError
    from server.retention.service import set_days

    engine = make_engine(args.settings_of(args).database_url)
    try:
        with session_factory(engine)() as session:
            if session.get(Region, args.region) is None:
                print(f"qaqpa server retention set: no region {args.region!r}", file=sys.stderr)
                return 2
            try:
                set_days(session, None, args.region, args.days, args.basis, now_ms())
            except RetentionError as err:
                print(f"qaqpa server retention set: {args_field(err)}", file=sys.stderr)
                return 2
            session.commit()
    finally:
        engine.dispose()
    print(f"region {args.region}: personal data erased {args.days} day(s) after a student leaves")
    return 0


def args_field(err: Any) -> str:
    return f"{err.field}: {err.message}"


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings_of: Callable[..., Any]
) -> None:
    """``settings_of(args)``: the server's settings (``server.cli._settings``)."""
    ret = subparsers.add_parser("retention", help="erase personal data past its retention period")
    sub = ret.add_subparsers(dest="retention_command", required=True)
    p = sub.add_parser("run", parents=[common], help="erase the leavers past their period")
    p.add_argument("--dry-run", action="store_true", help="count only, change nothing")
    p.set_defaults(func=_run, settings_of=settings_of)
    p = sub.add_parser("set", parents=[common], help="a region's retention period")
    p.add_argument("--region", required=True)
    p.add_argument("--days", type=int, required=True, help="days after the student leaves")
    p.add_argument("--basis", default="", help="the region's order or decision")
    p.set_defaults(func=_set, settings_of=settings_of)
