"""``qaqpa server partitions ensure|list|retire``: the monthly partitions of ``events``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _engine(args: argparse.Namespace) -> Any:
    from server.db import make_engine

    return make_engine(args.settings_of(args).database_url)


def _ensure(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.partitions import rules, service

    months = None
    if args.month:
        try:
            months = [rules.parse_label(m) for m in args.month]
        except ValueError as err:
            print(f"qaqpa server partitions ensure: {err}", file=sys.stderr)
            return 2
    engine = _engine(args)
    try:
        if not service.supported(engine):
            print("partitions: SQLite keeps one unpartitioned events table; nothing to do")
            return 0
        now = now_ms()
        wanted = months if months is not None else rules.wanted(now, args.ahead, args.behind)
        out = service.ensure(engine, now, wanted)
    finally:
        engine.dispose()
    print(
        f"partitions: {len(out.created)} created ({', '.join(out.created) or '-'}), "
        f"{out.moved_from_default} row(s) moved from {rules.DEFAULT}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from server.partitions import service

    engine = _engine(args)
    try:
        if not service.supported(engine):
            print("partitions: SQLite keeps one unpartitioned events table")
            return 0
        with engine.connect() as conn:
            found = service.partitions(conn, exact=args.exact)
    finally:
        engine.dispose()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "month": p.month.label if p.month else None,
                        "rows": p.rows,
                        "bytes": p.bytes,
                    }
                    for p in found
                ]
            )
        )
        return 0
    what = "rows" if args.exact else "rows (estimate)"
    print(f"{'partition':<18} {'month':<8} {what:>16} {'MB':>9}")
    for p in found:
        label = p.month.label if p.month else "default"
        print(f"{p.name:<18} {label:<8} {p.rows:>16} {p.bytes / 1e6:>9.1f}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.partitions import service

    if args.archive is None and not args.drop and not args.dry_run:
        print(
            "qaqpa server partitions retire: say --archive DIR (keep a compressed copy) "
            "or --drop (delete)",
            file=sys.stderr,
        )
        return 2
    engine = _engine(args)
    try:
        if not service.supported(engine):
            print("partitions: SQLite keeps one unpartitioned events table; nothing to retire")
            return 0
        done = service.retire(
            engine,
            now_ms(),
            archive_dir=Path(args.archive) if args.archive else None,
            days=args.days,
            dry_run=args.dry_run,
        )
    finally:
        engine.dispose()
    verb = "would retire" if args.dry_run else "retired"
    print(f"partitions: {verb} {len(done)} month(s)")
    for r in done:
        where = f"-> {r.archive} sha256 {r.sha256}" if r.archive else "(dropped)"
        whose = f" region {r.region}" if r.region else ""
        line = f"  {r.month.label}{whose}: {r.rows} row(s) {'' if args.dry_run else where}"
        print(line.rstrip())
    return 0


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings_of: Callable[..., Any]
) -> None:
    """``settings_of(args)``: the server's settings (``server.cli._settings``)."""
    top = subparsers.add_parser("partitions", help="monthly partitions of the events (PostgreSQL)")
    sub = top.add_subparsers(dest="partitions_command", required=True)
    p = sub.add_parser("ensure", parents=[common], help="make the coming months' partitions")
    p.add_argument("--ahead", type=int, default=3, help="months after the current one")
    p.add_argument("--behind", type=int, default=1, help="months before the current one")
    p.add_argument("--month", action="append", help="YYYY-MM (repeatable) instead of the above")
    p.set_defaults(func=_ensure, settings_of=settings_of)
    p = sub.add_parser("list", parents=[common], help="the partitions, rows and sizes")
    p.add_argument("--exact", action="store_true", help="count rows (slow) instead of estimates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list, settings_of=settings_of)
    p = sub.add_parser(
        "retire", parents=[common], help="detach the months past the retention period"
    )
    p.add_argument("--archive", default=None, help="directory for NAME.csv.gz and .sha256")
    p.add_argument("--drop", action="store_true", help="delete without an archive")
    p.add_argument(
        "--days", type=int, default=None, help="period after the month ends (default: regions')"
    )
    p.add_argument("--dry-run", action="store_true", help="list the months, change nothing")
    p.set_defaults(func=_retire, settings_of=settings_of)
