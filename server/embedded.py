"""The one-machine demo's server side: an in-process amqtt broker, one ingest worker and the
downlink service, against SQLite. Production uses the same classes against Mosquitto and
PostgreSQL by configuration only.

amqtt speaks MQTT 3.1.1, so everything here runs with ``mqtt_protocol="3.1.1"`` (no shared
subscription: exactly one ingest worker, which is what a single machine needs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

from amqtt.broker import Broker
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.signing import generate_key, public_key_raw
from server.centre_key import CentreSigner, new_key_file
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.ingest.worker import IngestWorker
from server.migrate import upgrade
from server.policy.job import DuePolicyJob
from server.settings import ServerSettings
from server.sync.service import DownlinkService

log = logging.getLogger(__name__)

# A service started beside the console: given the database URL, a context manager that runs it.
ConsoleService = Callable[[str], AbstractContextManager[object]]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """``async with EmbeddedServer(data_dir) as server:``; then ``server.add_device(...)`` and
    ``server.edge_sync_settings()`` for the edge, ``server.downlink.publish_changes(...)``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        mqtt_port: int | None = None,
        database_url: str | None = None,
        external_broker: bool = False,
        console_port: int | None = None,
        console_services: Sequence[ConsoleService] = (),
    ) -> None:
        """``external_broker``: use a broker already listening on ``mqtt_port`` (MQTT 5);
        ``console_port``: also serve the console on 127.0.0.1 (0: any free port);
        ``console_services``: more services to run beside the console, each opened with the
        database URL (the demo's notification sinks, wired in by ``qaqpa.embedded``)."""
        self._external = external_broker
        self._console_port = console_port
        self._console_services = tuple(console_services)
        self._console: Any = None
        self._console_thread: threading.Thread | None = None
        self.console_url: str | None = None
        self._extras: contextlib.ExitStack | None = None
        port = mqtt_port if mqtt_port is not None else free_port()
        self.settings = ServerSettings(
            database_url=database_url or f"sqlite:///{data_dir / 'server.db'}",
            mqtt_host="127.0.0.1",
            mqtt_port=port,
            mqtt_protocol="5" if external_broker else "3.1.1",
            centre_key_file=data_dir / "centre.key",  # created at start if missing
        )
        self._data_dir = data_dir
        self._engine = make_engine(self.settings.database_url)
        self._broker: Broker | None = None
        self._ingest: IngestWorker | None = None
        self._downlink: DownlinkService | None = None
        self._policy_job: DuePolicyJob | None = None

    @property
    def downlink(self) -> DownlinkService:
        if self._downlink is None:
            raise RuntimeError("the embedded server is not running")
        return self._downlink

    def add_device(self, school: str, device: str) -> tuple[Ed25519PrivateKey, dict[str, Any]]:
        """Create and enrol a device in one step (the demo has no HTTP enrolment round trip)."""
        key = generate_key()
        with session_factory(self._engine)() as session:
            token = add_device(session, self.settings, school, device)
            enrol(session, self.settings, token, device, public_key_raw(key))
            session.commit()
        return key, self.edge_sync_settings()

    def stored_events(self, school: str) -> int:
        """How many events of ``school`` the server holds (each exactly once)."""
        from sqlalchemy import func, select

        from server.models import StoredEvent

        with session_factory(self._engine)() as session:
            count = session.execute(
                select(func.count()).select_from(StoredEvent).where(StoredEvent.school_id == school)
            ).scalar_one()
        return int(count)

    def desk_loans(self, school: str) -> list[list[str]]:
        """[inventory number, student ref] of the loans open at ``school`` that a library desk
        at the school recorded (synced lending events applied by ingest), in order."""
        from sqlalchemy import select

        from server.equipment.models import Item, Loan
        from server.people.models import Student

        with session_factory(self._engine)() as session:
            rows = session.execute(
                select(Item.inventory_no, Student.ref)
                .join(Loan, Loan.item_pk == Item.pk)
                .join(Student, Student.pk == Loan.student_pk)
                .where(
                    Item.school_id == school,
                    Loan.source == "edge",
                    Loan.returned_at_ms.is_(None),
                )
                .order_by(Loan.pk)
            ).all()
        return [[inv, ref] for inv, ref in rows]

    def edge_sync_settings(self) -> dict[str, Any]:
        """Keyword values for ``edge.sync.SyncSettings`` to reach this server's broker."""
        return {
            "mqtt_host": self.settings.mqtt_host,
            "mqtt_port": self.settings.mqtt_port,
            "mqtt_protocol": self.settings.mqtt_protocol,
            "topic_prefix": self.settings.topic_prefix,
            "centre_key": CentreSigner.from_settings(self.settings).public_b64,
        }

    async def __aenter__(self) -> EmbeddedServer:
        await asyncio.to_thread(self._data_dir.mkdir, parents=True, exist_ok=True)
        key_file = self.settings.centre_key_file
        if key_file is not None and not await asyncio.to_thread(key_file.exists):
            await asyncio.to_thread(new_key_file, key_file)
        await asyncio.to_thread(upgrade, self.settings.database_url)
        if not self._external:
            self._broker = Broker(
                {
                    "listeners": {
                        "default": {
                            "type": "tcp",
                            "bind": f"127.0.0.1:{self.settings.mqtt_port}",
                        }
                    },
                    "plugins": {
                        "amqtt.plugins.authentication.AnonymousAuthPlugin": {
                            "allow_anonymous": True
                        }
                    },
                }
            )
            async with asyncio.timeout(10):
                await self._broker.start()
        self._ingest = IngestWorker(self.settings, self._engine)
        await self._ingest.__aenter__()
        self._downlink = DownlinkService(self.settings, self._engine)
        await self._downlink.__aenter__()
        self._policy_job = DuePolicyJob(self.settings, self._engine)
        await self._policy_job.__aenter__()
        log.info("embedded server: MQTT on 127.0.0.1:%d", self.settings.mqtt_port)
        if self._console_port is not None:
            await asyncio.to_thread(self._start_console, self._console_port)
            await asyncio.to_thread(self._start_console_services)
        return self

    def _start_console_services(self) -> None:
        """What a console user expects to see move: paid meals posted to the canteen ledger,
        and whatever ``console_services`` were given (the demo's parents' notifications)."""
        from server.canteen.poster import MealPosterService
        from server.canteen.settings import CanteenSettings

        url = self.settings.database_url
        self._extras = contextlib.ExitStack()
        for service in self._console_services:
            self._extras.enter_context(service(url))
        self._extras.enter_context(MealPosterService(url, CanteenSettings()))

    def _start_console(self, port: int) -> None:
        """uvicorn in its own thread, so the console's work never delays the school's loop."""
        import time

        import uvicorn

        from server.api import create_app

        if port == 0 or not _port_free(port):
            port = free_port()
        self.settings = self.settings.model_copy(
            update={"console_base_url": f"http://127.0.0.1:{port}"}
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.settings), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        self._console = server
        self._console_thread = threading.Thread(target=server.run, name="console", daemon=True)
        self._console_thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not self._console_thread.is_alive():
                raise RuntimeError(f"the console did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
        self.console_url = f"http://127.0.0.1:{port}"

    def seed_demo(
        self, school: str, students: Any, staff: Any, cards: Any = None, policy: Any = None
    ) -> list[Any]:
        """The demo school's people, cards, policy and one account per role in the server."""
        from server.demo_seed import seed_demo

        with session_factory(self._engine)() as session:
            accounts = seed_demo(session, school, students, staff, cards, policy)
            session.commit()
        return accounts

    def seed_canteen(
        self,
        school: str,
        today: Any,
        menu: Any,
        topups: Any,
        limits: Any = (),
    ) -> int:
        """The demo school's menu, top-ups and parents' limits booked at the server (the edge
        gets them by the signed downlink). Returns the change-log version to wait for."""
        from server.canteen.demo import seed_canteen

        with session_factory(self._engine)() as session:
            head = seed_canteen(session, school, today, menu, topups, limits)
            session.commit()
        return head

    def canteen_balances(self, school: str) -> dict[str, int]:
        """Student ref -> the server ledger's balance in tiyn (meals posted so far)."""
        from sqlalchemy import select

        from server.canteen.service import balances, post_waiting_meals
        from server.canteen.settings import CanteenSettings
        from server.people.models import Student

        with session_factory(self._engine)() as session:
            post_waiting_meals(session, CanteenSettings(), school)
            students = list(session.scalars(select(Student).where(Student.school_id == school)))
            money = balances(session, [s.pk for s in students])
            session.commit()
        return {s.ref: money[s.pk][0] for s in students}

    def canteen_unexplained(self, school: str) -> int:
        """How many rows of the canteen reconciliation have a difference nothing explains."""
        from server.canteen.service import reconciliation

        with session_factory(self._engine)() as session:
            rows = reconciliation(session, school)
        return sum(1 for r in rows if r.recon.unexplained_tiyn != 0)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._extras is not None:
            await asyncio.to_thread(self._extras.close)
            self._extras = None
        if self._console is not None:
            self._console.should_exit = True
            if self._console_thread is not None:
                await asyncio.to_thread(self._console_thread.join, 10)
            self._console = None
        if self._policy_job is not None:
            await self._policy_job.__aexit__(None, None, None)
            self._policy_job = None
        if self._downlink is not None:
            await self._downlink.__aexit__(None, None, None)
            self._downlink = None
        if self._ingest is not None:
            await self._ingest.__aexit__(None, None, None)
            self._ingest = None
        if self._broker is not None:
            with contextlib.suppress(Exception):  # amqtt's shutdown may complain on a dead loop
                async with asyncio.timeout(10):
                    await self._broker.shutdown()
            self._broker = None
        self._engine.dispose()
