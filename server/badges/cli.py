"""``qaqpa server badges ...`` commands, registered from ``server/cli.py`` with one line.

Each command sets ``func(args) -> int``; bad input exits 2 with a message naming the field on
stderr and nothing on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PROG = "qaqpa server badges"


def _fail(command: str, message: str) -> int:
    print(f"{PROG} {command}: {message}", file=sys.stderr)
    return 2


def _evaluate(args: argparse.Namespace) -> int:
    from server.badges.rules import MAX_JOURNAL_BYTES, JournalError, parse_date, parse_journal
    from server.badges.rules import evaluate as evaluate_journal

    try:
        today = parse_date(args.today, "--today")
    except JournalError as err:
        return _fail("evaluate", str(err))
    path = Path(args.journal)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JOURNAL_BYTES + 1)
    except OSError as err:
        return _fail("evaluate", f"--journal: cannot read {path}: {err.strerror or err}")
    try:
        journal = parse_journal(raw)
    except JournalError as err:
        return _fail("evaluate", str(err))
    report = evaluate_journal(journal, today)
    print(json.dumps(report, ensure_ascii=False))
    return 0


def _issuer_key_new(args: argparse.Namespace) -> int:
    from server.badges.credential import new_issuer_key_file

    try:
        kid = new_issuer_key_file(Path(args.out))
    except OSError as err:
        return _fail("issuer-key new", f"--out: {err}")
    print(f"badge issuer key {kid} written to {args.out} (0600); keep a backup offline")
    return 0


def add_commands(subparsers: Any) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Register ``badges`` on the subparsers of ``qaqpa server``; returns the subparsers of
    ``badges`` so that more badge commands can be added beside these."""
    badges = subparsers.add_parser("badges", help='the "Elbasy Medal" youth award')
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = badges.add_subparsers(
        dest="badges_command", required=True
    )
    p = sub.add_parser(
        "evaluate", help="evaluate one participant's journal (JSON) and print the report"
    )
    p.add_argument("--journal", required=True, help="the journal, a JSON file")
    p.add_argument("--today", required=True, help="the day of the evaluation, YYYY-MM-DD")
    p.set_defaults(func=_evaluate)

    key = sub.add_parser("issuer-key", help="the Ed25519 key that signs badge credentials")
    p = key.add_subparsers(dest="issuer_key_command", required=True).add_parser(
        "new", help="create an issuer key file (refuses to overwrite)"
    )
    p.add_argument("--out", required=True, help="the new key file (PEM, 0600)")
    p.set_defaults(func=_issuer_key_new)
    return sub
