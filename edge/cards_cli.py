"""``qaqpa edge cards ...``: cards at the school from the command line (the staff page's cards
section does the same with a tap at the desk reader).

    qaqpa edge cards issue --config edge.toml --student s1 --card EM:0012345678
    qaqpa edge cards import --config edge.toml FILE.csv      # student_id,card (or staff_id,card)
    qaqpa edge cards list --config edge.toml --student s1     # records, never numbers
    qaqpa edge cards block --config edge.toml --card-ref k-... --reason lost
    qaqpa edge cards unbind --config edge.toml --card-ref k-...

Run on the school's edge (the store and the card key are there). Each binding journals
``card_issued``, which reaches the centre with the next sync: a running daemon sends it; a
stopped one at its next start. A CSV file of numbers is what a roster with card numbers turns
into: the centre refuses such a file and points here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from protocol.messages import OwnerKind

EXIT_REFUSED = 2


async def _run(args: argparse.Namespace) -> str:
    from edge.cards import block_card, import_cards, issue_card, unbind_card
    from edge.config import load_config
    from edge.daemon import open_store

    cfg = load_config(args.config)
    async with await open_store(cfg) as store:
        if args.cards_command == "issue":
            kind, owner = _owner(args)
            card = await issue_card(store, kind, owner, args.card, replaces_ref=args.replaces)
            return f"card bound to {kind.value} {owner}: record {card.card_ref}"
        if args.cards_command == "import":
            data = await asyncio.to_thread(_read, args.file)
            kind = OwnerKind.STAFF if args.staff else OwnerKind.STUDENT
            done = await import_cards(store, data, kind)
            lines = [f"{len(done.issued)} card(s) bound", *done.problems]
            return "\n".join(lines)
        if args.cards_command == "list":
            kind, owner = _owner(args)
            rows = await store.cards_of(kind.value, owner)
            return "\n".join(f"{ref or '-'}\t{reason or 'active'}" for ref, reason in rows) or (
                "no card"
            )
        if args.cards_command == "block":
            await block_card(store, args.card_ref, args.reason)
            return f"card {args.card_ref} blocked ({args.reason})"
        await unbind_card(store, args.card_ref)
        return f"card {args.card_ref} unbound"


def _read(path: Path) -> bytes:
    from edge.cards import MAX_IMPORT_BYTES

    with path.open("rb") as f:
        return f.read(MAX_IMPORT_BYTES + 1)


def _owner(args: argparse.Namespace) -> tuple[OwnerKind, str]:
    if args.staff:
        return OwnerKind.STAFF, str(args.staff)
    return OwnerKind.STUDENT, str(args.student)


def _command(args: argparse.Namespace) -> int:
    from edge.cards import CardRefused
    from edge.config import ConfigError
    from edge.store import StoreError

    try:
        print(asyncio.run(_run(args)))
    except CardRefused as err:
        print(f"qaqpa edge cards {args.cards_command}: refused: {err}", file=sys.stderr)
        return EXIT_REFUSED
    except (ConfigError, StoreError, OSError) as err:
        print(f"qaqpa edge cards {args.cards_command}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("cards", help="bind, import, list, block and unbind cards here")
    sub = p.add_subparsers(dest="cards_command", required=True)

    def person(q: argparse.ArgumentParser) -> None:
        who = q.add_mutually_exclusive_group(required=True)
        who.add_argument("--student", help="the student's roster id")
        who.add_argument("--staff", help="the staff member's roster id")

    issue = sub.add_parser("issue", help="bind a card number to a person (a new card)")
    issue.add_argument("--config", type=Path, required=True, help="edge.toml")
    person(issue)
    issue.add_argument("--card", required=True, help="the number as the reader gives it")
    issue.add_argument("--replaces", help="the record of the card it replaces (blocked now)")
    imp = sub.add_parser("import", help="bind the numbers of a CSV file (student_id,card)")
    imp.add_argument("--config", type=Path, required=True, help="edge.toml")
    imp.add_argument("--staff", action="store_true", help="the file names staff (staff_id,card)")
    imp.add_argument("file", type=Path, help="CSV, UTF-8, with a header line")
    lst = sub.add_parser("list", help="a person's card records (never the numbers)")
    lst.add_argument("--config", type=Path, required=True, help="edge.toml")
    person(lst)
    blk = sub.add_parser("block", help="block a card by its record")
    blk.add_argument("--config", type=Path, required=True, help="edge.toml")
    blk.add_argument("--card-ref", required=True, help="the card's record, e.g. k-3f9a...")
    blk.add_argument("--reason", choices=["lost", "damaged"], default="lost")
    unb = sub.add_parser("unbind", help="unbind a card by its record")
    unb.add_argument("--config", type=Path, required=True, help="edge.toml")
    unb.add_argument("--card-ref", required=True, help="the card's record")
    for q in (issue, imp, lst, blk, unb):
        q.set_defaults(func=_command)
