"""The ``qaqpa`` command: the edge's, the server's and the simulators' commands under one name."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from qaqpa.bench import BENCHES

EXIT_BAD_INPUT = 2


def _replay(args: argparse.Namespace) -> int:
    from edge.replay import ReplayError, replay

    try:
        replay(args.roster, args.policy, args.taps, sys.stdout)
    except ReplayError as err:
        print(f"qaqpa replay: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.daemon import run_daemon
    from edge.store import StoreError

    try:
        asyncio.run(run_daemon(args.config))
    except ConfigError as err:
        print(f"qaqpa run: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"qaqpa run: the edge store cannot be used: {err}", file=sys.stderr)
        print("It was left untouched. Restore it from backup or move it aside.", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0
    return 0


def _import_roster(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from edge.daemon import import_roster
    from edge.replay import ReplayError
    from edge.roster import RosterError
    from edge.store import StoreError

    try:
        n = asyncio.run(import_roster(args.config, args.roster, args.policy))
    except (ConfigError, RosterError, ReplayError) as err:
        print(f"qaqpa edge import-roster: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as err:
        print(f"qaqpa edge import-roster: {err}", file=sys.stderr)
        return 3
    print(f"imported {n} students")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from qaqpa.demo import human_summary, run_demo

    if not args.verbose:  # the URLs and logins stay readable: only warnings besides them
        logging.getLogger().setLevel(logging.WARNING)
        for noisy in ("alembic", "fontTools", "mail.log", "httpx", "uvicorn.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    summary = asyncio.run(
        run_demo(
            duration=args.duration,
            students=args.students,
            broker_port=args.broker_port,
            database_url=args.database_url,
            console_port=None if args.no_console else args.console_port,
        )
    )
    print(human_summary(summary), file=sys.stderr)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def _bench(args: argparse.Namespace) -> int:
    result = BENCHES[args.what](args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qaqpa", description="School pass and meal system")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("replay", help="decisions for a day of taps under a policy (policy audit)")
    r.add_argument("--roster", type=Path, required=True, help="roster.json")
    r.add_argument("--policy", type=Path, required=True, help="policy.toml")
    r.add_argument("--taps", type=Path, required=True, help="taps.jsonl")
    r.set_defaults(func=_replay)

    run = sub.add_parser("run", help="run a school's edge daemon")
    run.add_argument("--config", type=Path, required=True, help="edge.toml")
    run.set_defaults(func=_run)

    edge = sub.add_parser("edge", help="edge administration")
    edge_sub = edge.add_subparsers(dest="edge_command", required=True)
    imp = edge_sub.add_parser("import-roster", help="load a roster.json into the edge store")
    imp.add_argument("--config", type=Path, required=True)
    imp.add_argument("--roster", type=Path, required=True)
    imp.add_argument("--policy", type=Path, help="policy.toml to install with it")
    imp.set_defaults(func=_import_roster)

    d = sub.add_parser("demo", help="one simulated school on this machine")
    d.add_argument(
        "--duration", type=float, default=None, help="stop after SECONDS and print a summary"
    )
    d.add_argument("--students", type=int, default=300)
    d.add_argument(
        "--broker-port",
        type=int,
        default=None,
        help="use the MQTT 5 broker (e.g. Mosquitto) on 127.0.0.1:PORT instead of embedded amqtt",
    )
    d.add_argument(
        "--database-url",
        default=None,
        help="server database, e.g. postgresql+psycopg://postgres@127.0.0.1/qaqpa (default SQLite)",
    )
    d.add_argument(
        "--console-port",
        type=int,
        default=8000,
        help="serve the console on 127.0.0.1:PORT (another free port if taken)",
    )
    d.add_argument("--no-console", action="store_true", help="do not serve the console")
    d.set_defaults(func=_demo)

    b = sub.add_parser("bench", help="benchmarks; print JSON")
    b.add_argument("what", choices=sorted(BENCHES))
    b.add_argument("--frames", type=int, default=60, help="camera frames (face)")
    b.add_argument("--templates", type=int, default=5000, help="enrolled templates (face)")
    b.add_argument("--workers", type=int, default=2, help="ingest workers (ingest, drain, fleet)")
    b.add_argument("--mqtt-port", type=int, default=1883, help="Mosquitto port (ingest, drain)")
    b.add_argument("--json", action="store_true", help="one line of JSON")
    b.add_argument("--seconds", type=float, default=10.0, help="how long to sustain load")
    b.add_argument("--rate", type=float, default=20.0, help="taps per second offered (notify)")
    b.add_argument(
        "--notify-workers", type=int, default=None, help="notification delivery workers (notify)"
    )
    b.add_argument(
        "--gateway-ms", type=float, default=0.0, help="simulated SMS gateway answer time (notify)"
    )
    f = b.add_argument_group("fleet (qaqpa bench fleet; README, Benchmarks)")
    f.add_argument("--schools", type=int, default=7800, help="simulated schools (fleet)")
    f.add_argument(
        "--brokers", default="mosquitto", help="broker targets, comma-separated: mosquitto,cluster"
    )
    f.add_argument(
        "--ramp", default="500,1000,2000,4000,7800", help="school counts of the ramp (fleet)"
    )
    f.add_argument(
        "--compression", type=float, default=1.0, help="peak time compression of the ramp"
    )
    f.add_argument("--max-compression", type=float, default=64.0, help="stop doubling here")
    f.add_argument(
        "--min-compression", type=float, default=0.0, help="stop halving here (0: 1/8 of it)"
    )
    f.add_argument("--stage-seconds", type=float, default=30.0, help="seconds of taps per stage")
    f.add_argument("--broker-port", type=int, default=0, help="the bench's broker (0: free)")
    f.add_argument("--pg-ports", type=int, nargs=2, default=[25451, 25452], help="primary, standby")
    f.add_argument(
        "--tls", action="store_true", help="schools reach the broker over TLS (as in production)"
    )
    f.add_argument("--no-fleet", action="store_true", help="only the statements")
    f.add_argument("--no-load", action="store_true", help="only the fleet")
    f.add_argument("--days", type=int, default=7, help="school days loaded with COPY")
    f.add_argument("--events-per-day", type=int, default=4_300_000, help="national, loaded")
    f.add_argument("--load-schools", type=int, default=0, help="schools loaded (0: --schools)")
    f.add_argument("--students", type=int, default=4_000_000, help="students loaded")
    f.add_argument(
        "--ingest-fault",
        type=int,
        default=0,
        help="each ingest worker is killed after N commits (before its acks) and restarted",
    )
    f.add_argument(
        "--load-minutes", type=float, default=0.0, help="stop loading days after this (0: never)"
    )
    f.add_argument("--no-rollups", action="store_true", help="time the raw events only (load)")
    f.add_argument(
        "--rollup-refresh",
        choices=["sql", "python"],
        default="sql",
        help="roll-ups after each COPY: rebuild_sql (set-based) or rebuild (per school)",
    )
    b.add_argument("--cycles", type=int, default=300, help="daemon kills and restarts (crash)")
    b.add_argument(
        "--max-minutes", type=float, default=None, help="end the campaign after this long (crash)"
    )
    b.add_argument(
        "--minutes", type=float, default=5.0, help="a school day compressed into this long (soak)"
    )
    b.set_defaults(func=_bench)

    from edge.sync import add_commands as add_edge_sync_commands
    from server.cli import add_commands as add_server_commands

    add_edge_sync_commands(edge_sub)
    from edge.faces_cli import add_commands as add_face_commands

    add_face_commands(edge_sub)
    from edge.canteen_cli import add_commands as add_canteen_commands

    add_canteen_commands(edge_sub)
    from edge.kiosk_cli import add_commands as add_kiosk_session_commands

    add_kiosk_session_commands(edge_sub)
    from edge.cards_cli import add_commands as add_card_commands

    add_card_commands(edge_sub)
    srv = sub.add_parser("server", help="central server administration and processes")
    add_server_commands(srv.add_subparsers(dest="server_command", required=True))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("amqtt", "transitions", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
