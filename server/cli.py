"""``qaqpa server ...`` commands. ``add_commands`` registers them on an argparse subparsers object;
each sets ``func(args) -> int`` as its default."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from server.backup import cli as backup_cli
from server.badges import cli as badges_cli
from server.gifted import cli as gifted_cli
from server.settings import ServerSettings
from server.tutoring import cli as tutoring_cli
from server.vouchers import cli as vouchers_cli


def _settings(args: argparse.Namespace) -> ServerSettings:
    from pydantic import ValidationError

    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    try:
        return ServerSettings(**overrides)
    except ValidationError as err:
        # e.g. a plain broker off loopback, a missing CA file: named, no traceback, exit 2
        first = err.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        print(
            f"qaqpa server: refusing to start: settings: {where + ': ' if where else ''}{first['msg']}",
            file=sys.stderr,
        )
        raise SystemExit(2) from err


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


def _device_token(args: argparse.Namespace) -> int:
    """A new one-time token for an existing device: enrol again (pin the centre key) or enrol
    the replacement of a revoked device."""
    from server.db import make_engine, session_factory
    from server.devices import EnrolmentError, reissue_token

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            token = reissue_token(session, settings, args.school, args.device)
            session.commit()
    except EnrolmentError as err:
        print(f"qaqpa server device token: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"one-time enrolment token for {args.school}/{args.device} (shown once): {token}")
    return 0


def _device_revoke(args: argparse.Namespace) -> int:
    from server.broker_auth import BrokerFilesError, write_broker_files
    from server.db import make_engine, session_factory
    from server.devices import EnrolmentError, revoke

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            revoke(session, args.school, args.device)
            session.commit()
            write_broker_files(session, settings)
    except (EnrolmentError, BrokerFilesError) as err:
        print(f"qaqpa server device revoke: {err}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"device {args.school}/{args.device} revoked: key and MQTT login removed")
    return 0


def _centre_key_new(args: argparse.Namespace) -> int:
    from server.centre_key import new_key_file

    try:
        kid = new_key_file(Path(args.out))
    except OSError as err:
        print(f"qaqpa server centre-key new: {err}", file=sys.stderr)
        return 2
    print(f"centre key {kid} written to {args.out} (0600); keep a backup offline")
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


def _ensure_partitions(settings: ServerSettings) -> None:
    """The coming months' partitions of events, made when a worker starts (also daily by
    ``qaqpa server partitions ensure``); a failure here never stops ingest: the default
    partition takes any month without its own."""
    from server.clock import now_ms
    from server.db import make_engine
    from server.partitions.service import ensure

    engine = make_engine(settings.database_url)
    try:
        made = ensure(engine, now_ms())
        if made.created:
            logging.getLogger(__name__).info("partitions made: %s", ", ".join(made.created))
    except Exception as err:
        logging.getLogger(__name__).warning("partitions not ensured: %s", err)
    finally:
        engine.dispose()


def _ingest(args: argparse.Namespace) -> int:
    from server.ingest.source import make_ingest_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _ensure_partitions(_settings(args))
    make_ingest_worker(_settings(args)).run_forever()
    return 0


def _downlink(args: argparse.Namespace) -> int:
    from server.policy.job import DuePolicyJob
    from server.sync.service import DownlinkService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = _settings(args)
    # the job's versions go out through the downlink's watcher
    DownlinkService(settings).run_forever(alongside=DuePolicyJob(settings))
    return 0


def _meals(args: argparse.Namespace) -> int:
    from server.canteen.poster import MealPosterService
    from server.canteen.settings import CanteenSettings

    MealPosterService(_settings(args).database_url, CanteenSettings(), args.poll).run_forever()
    return 0


def _notify(args: argparse.Namespace) -> int:
    from server.notify.service import NotifyService
    from server.notify.settings import NotifySettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    notify_settings = NotifySettings()
    if args.workers:
        notify_settings.workers = args.workers
    NotifyService(_settings(args).database_url, notify_settings).run_forever()
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


def _school_add(args: argparse.Namespace) -> int:
    from server.db import make_engine, session_factory
    from server.people.service import add_school

    settings = _settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            add_school(
                session, args.id, args.name, region=args.region, region_name=args.region_name
            )
            session.commit()
    finally:
        engine.dispose()
    print(f"school {args.id} saved" + (f" in region {args.region}" if args.region else ""))
    return 0


def _user_add(args: argparse.Namespace) -> int:
    """The first operator of a new installation; everyone else is invited from the console."""
    from server.accounts.access import Grant, Role
    from server.accounts.service import AccountError, create_user, invite
    from server.db import make_engine, session_factory

    settings = _settings(args)
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    try:
        role = Role(args.role)
    except ValueError:
        print(
            f"qaqpa server user add: unknown role {args.role!r}; one of: "
            + ", ".join(r.value for r in Role),
            file=sys.stderr,
        )
        return 2
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            try:
                user = create_user(
                    session,
                    args.login,
                    args.name,
                    [Grant(role, region_id=args.region, school_id=args.school)],
                    email=args.email or "",
                    password=password,
                )
                token = (
                    None if password else invite(session, user, None, settings.console_invite_ttl_s)
                )
                session.commit()
            except (AccountError, ValueError) as err:
                print(f"qaqpa server user add: {err}", file=sys.stderr)
                return 2
    finally:
        engine.dispose()
    print(f"user {args.login} ({role.value}) created.")
    if token:
        print(
            f"invitation link (shown once): {settings.console_base_url.rstrip('/')}/invite/{token}"
        )
    return 0


def _api(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from server.api import create_app
    from server.canteen.settings import CanteenSettings

    try:
        settings = _settings(args)
        CanteenSettings()  # read again by the canteen's routes: refuse weak keys at start
    except ValidationError as err:
        print(f"qaqpa server api: refusing to start: {err}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(settings), host=args.host, port=args.port)
    return 0


# ------------------------------------------------- parked events (README, Wire protocol)

_PARKED_WHY = {
    "known": "this release reads it: `qaqpa server parked replay` applies it",
    "unknown_kind": "its kind is of a newer edge release: upgrade the server, then replay",
    "unknown_field": "it has a field of a newer edge release: upgrade the server, then replay",
    "malformed": "this release reads its kind and fields but finds it wrong: never applied",
}


def _parked_line(p: Any) -> str:
    import datetime as dt

    def utc(ms: int) -> str:
        return f"{dt.datetime.fromtimestamp(ms / 1000, dt.UTC):%Y-%m-%d %H:%M} UTC"

    done = f", replayed {utc(p.replayed_at_ms)}" if p.replayed_at_ms is not None else ""
    return f"{p.school}/{p.device} seq {p.seq} {p.kind} (parked {utc(p.parked_at_ms)}{done})"


def _parked_list(args: argparse.Namespace) -> int:
    from server.db import make_engine
    from server.ingest.parked import parked

    engine = make_engine(_settings(args).database_url)
    try:
        found = parked(engine, school=args.school, device=args.device, replayed=args.all)
    finally:
        engine.dispose()
    for p in found:
        why = "" if p.replayed_at_ms is not None else f": {_PARKED_WHY[p.reading]}"
        print(_parked_line(p) + why)
    print(f"{len(found)} parked event(s)" + ("" if args.all else " not replayed yet"))
    return 0


def _parked_replay(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.db import make_engine
    from server.ingest.replay import replay

    engine = make_engine(_settings(args).database_url)
    try:
        out = replay(engine, now_ms(), school=args.school, device=args.device)
    finally:
        engine.dispose()
    for p in out.applied:
        print(f"applied: {_parked_line(p)}")
    for p in out.still_parked:
        print(f"still parked: {_parked_line(p)}: {_PARKED_WHY[p.reading]}")
    print(f"{len(out.applied)} applied, {len(out.still_parked)} still parked")
    return 0


def _parked_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """``qaqpa server parked list|replay`` (here, not in server.ingest: building the command
    line must not import the ingest stack)."""
    top = subparsers.add_parser(
        "parked", help="events a newer edge release sent that ingest kept without applying"
    )
    sub = top.add_subparsers(dest="parked_command", required=True)
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--school", default=None, help="only this school's")
    filters.add_argument("--device", default=None, help="only this device's")
    p = sub.add_parser(
        "list",
        parents=[common, filters],
        help="the parked events and what this release makes of each",
    )
    p.add_argument("--all", action="store_true", help="the replayed ones too")
    p.set_defaults(func=_parked_list)
    p = sub.add_parser(
        "replay",
        parents=[common, filters],
        help="apply, once, the parked events this release reads; the others stay parked",
    )
    p.set_defaults(func=_parked_replay)


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
    for name, func, what in (
        ("token", _device_token, "a new one-time enrolment token (re-enrol, replacement)"),
        ("revoke", _device_revoke, "revoke a stolen or retired device at once"),
    ):
        p = dev_sub.add_parser(name, parents=[common], help=what)
        p.add_argument("--school", required=True)
        p.add_argument("--device", required=True)
        p.set_defaults(func=func)
    ck = subparsers.add_parser("centre-key", help="the centre's downlink signing key")
    p = ck.add_subparsers(dest="centre_key_command", required=True).add_parser(
        "new", help="create a centre key file (refuses to overwrite)"
    )
    p.add_argument("--out", required=True, help="path of the new PEM file")
    p.set_defaults(func=_centre_key_new)

    p = subparsers.add_parser(
        "broker-files", parents=[common], help="rewrite the Mosquitto password/ACL files, SIGHUP"
    )
    p.set_defaults(func=_broker_files)
    from server.cards.cli import add_commands as add_card_commands

    add_card_commands(subparsers, common, _settings)
    p = subparsers.add_parser("ingest", parents=[common], help="run an ingest worker")
    p.set_defaults(func=_ingest)
    p = subparsers.add_parser("downlink", parents=[common], help="run the downlink service")
    p.set_defaults(func=_downlink)
    p = subparsers.add_parser(
        "notify", parents=[common], help="run the notification planner and delivery workers"
    )
    p.add_argument("--workers", type=int, default=0, help="overrides QAQPA_NOTIFY_WORKERS")
    p.set_defaults(func=_notify)
    p = subparsers.add_parser(
        "meals", parents=[common], help="post the schools' paid and voucher meals to the ledger"
    )
    p.add_argument("--poll", type=float, default=2.0, help="seconds between looks for new meals")
    p.set_defaults(func=_meals)
    p = subparsers.add_parser(
        "publish", parents=[common], help="append changes (a JSON list of Change) to a school"
    )
    p.add_argument("--school", required=True)
    p.add_argument("--changes", required=True, help="JSON file: a list of downlink changes")
    p.set_defaults(func=_publish)
    sch = subparsers.add_parser("school", help="schools")
    sch_sub = sch.add_subparsers(dest="school_command", required=True)
    p = sch_sub.add_parser("add", parents=[common], help="create or rename a school")
    p.add_argument("--id", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--region", default=None, help="region id (created if new)")
    p.add_argument("--region-name", default="")
    p.set_defaults(func=_school_add)

    usr = subparsers.add_parser("user", help="console users")
    usr_sub = usr.add_subparsers(dest="user_command", required=True)
    p = usr_sub.add_parser(
        "add", parents=[common], help="create a console user and print a one-time invitation link"
    )
    p.add_argument("--login", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, help="operator, regional_operator, school_admin, ...")
    p.add_argument("--school", default=None)
    p.add_argument("--region", default=None)
    p.add_argument("--email", default=None)
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password from stdin instead of printing an invitation link",
    )
    p.set_defaults(func=_user_add)

    badges_cli.add_commands(subparsers)
    gifted_cli.add_commands(subparsers, common)
    from server.partitions.cli import add_commands as partitions_commands
    from server.retention.cli import add_commands as retention_commands
    from server.rollups.cli import add_commands as rollups_commands

    partitions_commands(subparsers, common, _settings)
    rollups_commands(subparsers, common, _settings)
    _parked_commands(subparsers, common)

    retention_commands(subparsers, common, _settings)
    from server.duty.cli import add_commands as duty_commands

    duty_commands(subparsers, common, _settings)
    vouchers_cli.add_commands(subparsers, common, _settings)

    p = subparsers.add_parser("api", parents=[common], help="run the HTTP API and the console")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_api)
    from server.equipment.cli import add_commands as add_equipment_commands

    add_equipment_commands(subparsers, common)
    tutoring_cli.add_commands(subparsers, common, _settings)
    backup_cli.add_commands(subparsers, common, _settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qaqpa server")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
