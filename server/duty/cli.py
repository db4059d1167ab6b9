"""``qaqpa server duty alarms``: route the edges' alarms to the person on duty and send them."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _alarms(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.db import make_engine, session_factory
    from server.duty.service import deliver_alerts, route_alarms
    from server.notify.delivery import Sender
    from server.notify.rules import Channel
    from server.notify.settings import NotifySettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = args.settings_of(args)
    notify = NotifySettings()
    sender = Sender(notify)
    push = notify.push_url is not None

    def send(channel: str, address: str, key: int, body: str) -> str | None:
        return sender.send(Channel(channel), address, key, body)

    engine = make_engine(settings.database_url)
    try:
        factory = session_factory(engine)
        while True:
            with factory() as session:
                now = now_ms()
                added = route_alarms(session, now, args.grace * 1000, push=push)
                session.commit()
                sent, failed = deliver_alerts(session, send, now, push=push)
                session.commit()
            if added or sent or failed:
                log.info("duty alarms: %d routed, %d sent, %d failed", added, sent, failed)
            if args.once:
                print(f"duty alarms: {added} routed, {sent} sent, {failed} failed")
                return 0
            time.sleep(args.poll)
    finally:
        engine.dispose()


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings_of: Callable[..., Any]
) -> None:
    duty = subparsers.add_parser("duty", help="the person on duty and their alarms")
    sub = duty.add_subparsers(dest="duty_command", required=True)
    p = sub.add_parser(
        "alarms", parents=[common], help="route the edges' alarms to the person on duty, send"
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between passes")
    p.add_argument(
        "--grace", type=int, default=300, help="seconds an edge may be offline before an alarm"
    )
    p.set_defaults(func=_alarms, settings_of=settings_of)
