"""``qaqpa edge apply-delta``: apply a downlink delta (JSON) to a school's store by hand.

For a school not (yet) enrolled with a server, and for tests: the day's menu, balance credits and
parents' limits go through the same code as the server's downlink (atomic, replay-safe, a credit
idempotent on its ledger id). Run it while the daemon is stopped: the daemon reads its store at
start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.validation import first_problem
from protocol.messages import SyncDelta

EXIT_BAD_INPUT = 2


async def apply_delta_file(config_path: Path, delta_path: Path) -> tuple[bool, int]:
    from edge.config import load_config
    from edge.daemon import open_store

    cfg = load_config(config_path)
    try:
        raw = await asyncio.to_thread(delta_path.read_bytes)
    except OSError as err:
        raise ValueError(f"{delta_path}: cannot read: {err.strerror}") from err
    try:
        delta = SyncDelta.model_validate_json(raw)
    except ValidationError as err:
        raise ValueError(f"{delta_path}: {first_problem(err, whole='(file)')}") from err
    if delta.school != cfg.school:
        raise ValueError(f"{delta_path}: school {delta.school!r} is not {cfg.school!r}")
    async with await open_store(cfg) as store:
        applied = await store.apply_delta(delta)
        return applied, await store.sync_version()


def _apply_delta_command(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.store import StoreError, SyncGap

    try:
        applied, version = asyncio.run(apply_delta_file(args.config, args.delta))
    except (ConfigError, ValueError, SyncGap) as err:
        print(f"qaqpa edge apply-delta: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"qaqpa edge apply-delta: {err}", file=sys.stderr)
        return 3
    print(f"{'applied' if applied else 'already applied'}; store at version {version}")
    return 0


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apply-delta", help="apply a downlink delta (menu, balance credits, limits...) from JSON"
    )
    p.add_argument("--config", type=Path, required=True, help="edge.toml")
    p.add_argument("--delta", type=Path, required=True, help="a SyncDelta as JSON")
    p.set_defaults(func=_apply_delta_command)
