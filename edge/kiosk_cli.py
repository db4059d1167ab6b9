"""``qaqpa edge kiosk-sessions list|revoke``: the devices signed in to the canteen kiosk.

Safe while the daemon runs: the daemon reads a session from the store on every request, so a
revoked device is refused from its next request on, and its open screen stream ends within
seconds. Rotating the kiosk token in edge.toml revokes every session at the daemon's next start.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.kiosk import PAGE

if TYPE_CHECKING:
    from edge.store import WebSession

EXIT_BAD_INPUT = 2
EXIT_STORE = 3


def wall_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")


def state(session: WebSession, now_ms: int) -> str:
    if session.revoked_ms is not None:
        return f"revoked {_when(session.revoked_ms)} ({session.revoked_why})"
    return "active" if session.active(now_ms) else "expired"


def format_sessions(sessions: list[WebSession], now_ms: int) -> str:
    rows = [("id", "state", "signed in", "expires", "last seen", "address", "browser")]
    rows += [
        (
            s.id,
            state(s, now_ms),
            _when(s.created_ms),
            _when(s.expires_ms),
            _when(s.seen_ms),
            s.address,
            s.agent[:60],
        )
        for s in sessions
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


async def list_sessions(config_path: Path, *, everything: bool) -> list[WebSession]:
    from edge.config import load_config
    from edge.daemon import open_store

    cfg = load_config(config_path)
    async with await open_store(cfg) as store:
        sessions = await store.web_sessions(PAGE)
    now = wall_ms()
    return sessions if everything else [s for s in sessions if s.active(now)]


async def revoke_sessions(config_path: Path, ids: list[str] | None) -> list[str]:
    from edge.config import load_config
    from edge.daemon import open_store

    cfg = load_config(config_path)
    async with await open_store(cfg) as store:
        return await store.revoke_web_sessions(
            ids, why="revoked by an operator", now_ms=wall_ms(), page=PAGE
        )


def _run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.store import StoreError

    name = f"qaqpa edge kiosk-sessions {args.action}"
    try:
        if args.action == "list":
            sessions = asyncio.run(list_sessions(args.config, everything=args.all))
            print(format_sessions(sessions, wall_ms()))
            return 0
        if not args.ids and not args.all:
            print(f"{name}: name the session ids to revoke, or --all", file=sys.stderr)
            return EXIT_BAD_INPUT
        revoked = asyncio.run(revoke_sessions(args.config, None if args.all else args.ids))
    except ConfigError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"{name}: {err}", file=sys.stderr)
        return EXIT_STORE
    unknown = sorted(set(args.ids or []) - set(revoked))
    print(f"revoked {len(revoked)} session(s): {' '.join(revoked) or '-'}")
    if unknown:
        print(f"{name}: not active (unknown, expired or revoked already): {' '.join(unknown)}")
        return 1
    return 0


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "kiosk-sessions", help="list or revoke the devices signed in to the canteen kiosk"
    )
    sub = p.add_subparsers(dest="action", required=True)
    ls = sub.add_parser("list", help="the kiosk's signed-in devices (active ones by default)")
    ls.add_argument("--config", type=Path, required=True, help="edge.toml")
    ls.add_argument("--all", action="store_true", help="expired and revoked sessions too")
    ls.set_defaults(func=_run)
    rv = sub.add_parser("revoke", help="sign devices out now (by session id, or --all)")
    rv.add_argument("--config", type=Path, required=True, help="edge.toml")
    rv.add_argument("ids", nargs="*", help="session ids from `list`")
    rv.add_argument("--all", action="store_true", help="every active kiosk session")
    rv.set_defaults(func=_run)
