"""``qaqpa server cards move --school S1`` (start, or report) the move of a school's card numbers
to the school: run it once the school's edges run a release that knows card records."""

from __future__ import annotations

import argparse
from typing import Any


def _move(args: argparse.Namespace, settings_of: Any) -> int:
    from server.cards.move import move_status, start_move
    from server.db import make_engine, session_factory

    settings = settings_of(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            if not args.status:
                start_move(session, args.school)
                session.commit()
            st = move_status(session, args.school)
    finally:
        engine.dispose()
    if st.version is None:
        print(f"school {st.school}: not started; the centre holds {st.numbers_here} number(s)")
    elif st.done_at_ms is not None:
        print(f"school {st.school}: done at version {st.version}; no number is held here")
    else:
        waiting = ", ".join(f"{d} (at {v})" for d, v in st.behind) or "none (no enrolled edge)"
        print(
            f"school {st.school}: version {st.version} sent; the centre keeps "
            f"{st.numbers_here} number(s) until every edge has applied it; waiting for: {waiting}"
        )
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser, settings_of: Any) -> None:
    cards = subparsers.add_parser("cards", help="card records")
    sub = cards.add_subparsers(dest="cards_command", required=True)
    p = sub.add_parser(
        "move", parents=[common], help="move a school's card numbers to its edges (or --status)"
    )
    p.add_argument("--school", required=True)
    p.add_argument("--status", action="store_true", help="only report where the move is")
    p.set_defaults(func=lambda args: _move(args, settings_of))
