"""``qaqpa server ...`` commands. ``add_commands`` registers them on an argparse subparsers object;
each sets ``func(args) -> int`` as its default."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from server.settings import ServerSettings


def _settings(args: argparse.Namespace) -> ServerSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return ServerSettings(**overrides)


def _migrate(args: argparse.Namespace) -> int:
    from server.migrate import upgrade

    settings = _settings(args)
    upgrade(settings.database_url)
    print("database at the latest schema")
    return 0


def _device_add(args: argparse.Namespace) -> int:
    from server.db import make_engine, session_factory
    from server.devices import DeviceExists, add_device

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            token = add_device(session, settings, args.school, args.device)
            session.commit()
    except DeviceExists as err:
        print(f"qaqpa server device add: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    hours = settings.enrol_token_ttl_s // 3600
    print(f"device {args.device} of school {args.school} created.")
    print(f"one-time enrolment token (valid {hours} h, shown once): {token}")
    return 0


def _broker_files(args: argparse.Namespace) -> int:
    from server.broker_auth import write_broker_files
    from server.db import make_engine, session_factory

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        written = write_broker_files(session, settings)
    engine.dispose()
    print("broker files written" if written else "no broker files configured")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from server.ingest.worker import IngestWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    IngestWorker(_settings(args)).run_forever()
    return 0


def _downlink(args: argparse.Namespace) -> int:
    from server.sync.service import DownlinkService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    DownlinkService(_settings(args)).run_forever()
    return 0


def _publish(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter, ValidationError

    from protocol.messages import Change
    from server.sync.service import DownlinkService
    from server.sync.state import ChangeRejected

    try:
        changes = TypeAdapter(list[Change]).validate_python(
            json.loads(Path(args.changes).read_text()), strict=False
        )
    except (OSError, ValueError, ValidationError) as err:
        print(f"qaqpa server publish: {err}", file=sys.stderr)
        return 2
    with DownlinkService(_settings(args)) as downlink:
        try:
            version = downlink.publish_changes(args.school, changes)
        except ChangeRejected as err:
            print(f"qaqpa server publish: refused: {err}", file=sys.stderr)
            return 2
    print(f"school {args.school} at version {version}")
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn

    from server.api import create_app

    uvicorn.run(create_app(_settings(args)), host=args.host, port=args.port)
    return 0


def add_commands(subparsers: Any) -> None:
    """Register the server commands (call with the subparsers of ``qaqpa server``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", default=None, help="overrides QAQPA_SERVER_DATABASE_URL")
    p = subparsers.add_parser("migrate", parents=[common], help="upgrade the database to head")
    p.set_defaults(func=_migrate)

    dev = subparsers.add_parser("device", help="device identities")
    dev_sub = dev.add_subparsers(dest="device_command", required=True)
    p = dev_sub.add_parser("add", parents=[common], help="create a device and an enrolment token")
    p.add_argument("--school", required=True)
    p.add_argument("--device", required=True)
    p.set_defaults(func=_device_add)

    p = subparsers.add_parser(
        "broker-files", parents=[common], help="rewrite the Mosquitto password/ACL files, SIGHUP"
    )
    p.set_defaults(func=_broker_files)
    p = subparsers.add_parser("ingest", parents=[common], help="run an ingest worker")
    p.set_defaults(func=_ingest)
    p = subparsers.add_parser("downlink", parents=[common], help="run the downlink service")
    p.set_defaults(func=_downlink)
    p = subparsers.add_parser(
        "publish", parents=[common], help="append changes (a JSON list of Change) to a school"
    )
    p.add_argument("--school", required=True)
    p.add_argument("--changes", required=True, help="JSON file: a list of downlink changes")
    p.set_defaults(func=_publish)
    p = subparsers.add_parser("api", parents=[common], help="run the HTTP API (enrolment)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_api)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qaqpa server")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
