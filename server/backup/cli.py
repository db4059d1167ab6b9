"""``qaqpa server backup dump --out FILE`` and ``qaqpa server backup check --dump FILE``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _dump(args: argparse.Namespace) -> int:
    from server.backup.core import BackupError, dump, manifest_of

    try:
        contents = dump(args.settings_of(args).database_url, Path(args.out))
    except BackupError as err:
        print(f"qaqpa server backup dump: {err}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "dump": str(args.out),
                "manifest": str(manifest_of(Path(args.out))),
                "tables": len(contents.tables),
                "rows": sum(contents.tables.values()),
                "events": contents.events,
            }
        )
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from server.backup.core import BackupError, check

    try:
        report = check(
            Path(args.dump),
            args.settings_of(args).database_url,
            manifest=Path(args.manifest) if args.manifest else None,
            server_url=args.scratch_url,
            keep=args.keep,
        )
    except BackupError as err:
        print(f"qaqpa server backup check: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=1))
    return 0 if report.ok else 1


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings_of: Callable[..., Any]
) -> None:
    """``settings_of(args)``: the server's settings (``server.cli._settings``)."""
    bk = subparsers.add_parser("backup", help="dump the database; check that a dump restores")
    sub = bk.add_subparsers(dest="backup_command", required=True)
    p = sub.add_parser(
        "dump", parents=[common], help="pg_dump -Fc into FILE, with FILE.manifest.json"
    )
    p.add_argument("--out", required=True, help="the dump file to write")
    p.set_defaults(func=_dump, settings_of=settings_of)
    p = sub.add_parser(
        "check",
        parents=[common],
        help="restore a dump into a new empty database and compare every table's row count "
        "and the events' checksum; exit 1 on a difference",
    )
    p.add_argument("--dump", required=True, help="a pg_dump -Fc file")
    p.add_argument(
        "--manifest",
        default=None,
        help="what the dump should hold (default: DUMP.manifest.json; without one, the live "
        "database of --database-url is the reference, exact only while nothing writes)",
    )
    p.add_argument(
        "--scratch-url",
        default=None,
        help="a database on the server to restore on (default: --database-url's server); "
        "the check creates and drops its own database there",
    )
    p.add_argument("--keep", action="store_true", help="keep the restored database")
    p.set_defaults(func=_check, settings_of=settings_of)
