"""A simulated school for end-to-end tests of the console: the real edge (store, pipeline, the
EM-Marine serial driver reading a simulated reader on a pty, EdgeSync over Mosquitto) on its own
event loop in a thread, and the server's ingest worker and downlink service on PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from edge.config import TerminalConfig
from edge.daemon import run_terminal
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from edge.sync import EdgeSync, SyncSettings
from hardware.config import EmMarineConfig
from protocol.messages import (
    Direction,
    OwnerKind,
    PolicyDoc,
    TerminalKind,
)
from protocol.signing import generate_key, public_key_raw
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.ingest.worker import IngestWorker
from server.models import School
from server.settings import ServerSettings
from server.sync.service import DownlinkService
from simulators.serial_sim import EmMarineSim
from tests.support.centre import CENTRE_PUBLIC_B64
from tests.support.readers_online import watching_readers
from tests.support.wait import wait_until, wait_until_async


class SimSchool:
    """``device``: another edge of the same school; ``services=False`` when another SimSchool
    already runs the server's ingest and downlink; ``card_key``: the school's card key (the
    store then keeps numbers as keyed hashes, as the daemon does); ``staff_pin_key``: the staff
    page is served too (``staff_url``), with a library desk terminal (``DESK``, its own
    simulated reader: ``desk_tap``) whose reads go to the page while it waits there."""

    def __init__(
        self,
        settings: ServerSettings,
        school: str,
        directory: Path,
        *,
        device: str = "edge-1",
        services: bool = True,
        card_key: bytes | None = None,
        staff_pin_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.school = school
        self.device = device
        self.directory = directory
        self.with_services = services
        self.card_key = card_key
        self.key: Any = None
        self._engine = make_engine(settings.database_url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.store: EdgeStore | None = None
        self.reader: EmMarineSim | None = None
        self.staff_pin_key = staff_pin_key
        self.desk_reader: EmMarineSim | None = None
        self.staff: Any = None
        self.staff_url = ""
        self._services: list[Any] = []

    # --------------------------------------------------------------------------- control

    def __enter__(self) -> SimSchool:
        if self.with_services:
            ingest = IngestWorker(self.settings, self._engine)
            ingest.start()
            self._services.append(ingest)
            downlink = DownlinkService(self.settings, self._engine)
            downlink.start()
            self._services.append(downlink)
        key = self.key
        if key is None:  # enrolled once; an edge started again keeps its key and its store
            key = self.key = generate_key()
            with session_factory(self._engine)() as session:
                token = add_device(session, self.settings, self.school, self.device)
                enrol(session, self.settings, token, self.device, public_key_raw(key))
                session.commit()
        self._thread = threading.Thread(target=self._run, args=(key,), daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the simulated school did not start: {self._error!r}")
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)
        for service in reversed(self._services):
            service.stop()
        self._services.clear()
        self._ready.clear()
        self._loop = self._thread = None
        self._engine.dispose()  # the pool only: a SimSchool entered again opens new connections

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        assert self._loop is not None
        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout)

    def tap(self, credential: str) -> None:
        """A card held to the turnstile's reader (an EM-Marine credential "EM:0123456789")."""
        assert self._loop is not None and self.reader is not None
        number = int(credential.removeprefix("EM:"))
        self._loop.call_soon_threadsafe(self.reader.present_card, number)

    def desk_tap(self, credential: str) -> None:
        """A card held to the library desk's reader (with ``staff_pin_key``)."""
        assert self._loop is not None and self.desk_reader is not None
        number = int(credential.removeprefix("EM:"))
        self._loop.call_soon_threadsafe(self.desk_reader.present_card, number)

    def desk_waits(self) -> bool:
        """A staff page waits for a card at the library desk's reader."""
        assert self.staff is not None
        return self.staff.readers.claimed(DESK)

    def desk_issue(
        self, owner_id: str, credential: str, *, staff: bool = False, replaces: str | None = None
    ) -> str:
        """A card tapped at the school's desk and bound there (``edge.cards.issue_card``);
        returns its record's ref (the centre learns the record through the uplink)."""
        from edge.cards import issue_card

        assert self.store is not None
        kind = OwnerKind.STAFF if staff else OwnerKind.STUDENT
        issued = self.call(
            issue_card(self.store, kind, owner_id, credential, replaces_ref=replaces)
        )
        return str(issued.card_ref)

    def edge_version(self) -> int:
        assert self.store is not None
        return int(self.call(self.store.sync_version()))

    def server_version(self) -> int:
        with session_factory(self._engine)() as session:
            return int(session.get_one(School, self.school).sync_version)

    def wait_synced(self, timeout: float = 20.0) -> None:
        """Until the edge has applied every version the server has."""
        wait_until(
            lambda: self.edge_version() >= self.server_version(),
            timeout,
            "the edge applies every version the server has",
            interval=0.1,
        )

    def journaled(self) -> int:
        assert self.store is not None
        return int(self.store.last_seq)

    # ------------------------------------------------------------------------------ edge

    def _run(self, key: Any) -> None:
        try:
            asyncio.run(self._main(key))
        except BaseException as err:  # reported to the test through __enter__
            self._error = err
            self._ready.set()

    async def _main(self, key: Any) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = await EdgeStore.open(
            self.directory / f"{self.device}.sqlite",
            school=self.school,
            device=self.device,
            card_key=self.card_key,
        )
        self.store = store
        reader = EmMarineSim(self.directory / f"{self.device}-gate-in.reader")
        reader.plug()
        self.reader = reader
        term = TerminalConfig(
            id="gate-in",
            kind=TerminalKind.TURNSTILE,
            direction=Direction.IN,
            reader=EmMarineConfig(type="em_marine", reader_id="gate-in", port=str(reader.path)),
        )
        sync_settings = SyncSettings(
            mqtt_host=self.settings.mqtt_host,
            mqtt_port=self.settings.mqtt_port,
            topic_prefix=self.settings.topic_prefix,
            ack_timeout_s=2.0,
            backoff_max_s=2.0,
            centre_key=CENTRE_PUBLIC_B64,
        )
        desk: TerminalConfig | None = None
        if self.staff_pin_key is not None:
            self.desk_reader = EmMarineSim(self.directory / f"{self.device}-desk.reader")
            self.desk_reader.plug()
            desk = TerminalConfig(
                id=DESK,
                kind=TerminalKind.LIBRARY,
                reader=EmMarineConfig(
                    type="em_marine", reader_id=DESK, port=str(self.desk_reader.path)
                ),
            )
        try:
            async with (
                EdgeSync(store, sync_settings, key),
                Pipeline(store) as pipeline,
                contextlib.AsyncExitStack() as stack,
            ):
                readers_online = stack.enter_context(watching_readers())
                readers, gates = None, None
                if desk is not None:
                    self.staff = await stack.enter_async_context(
                        _staff_server(store, pipeline, [term, desk], self.staff_pin_key)
                    )
                    self.staff_url = self.staff.url
                    readers, gates = self.staff.readers, {}
                tasks = [
                    asyncio.create_task(
                        run_terminal(t, pipeline, store, readers=readers, gates=gates), name=t.id
                    )
                    for t in ([term] if desk is None else [term, desk])
                ]
                terminal_ids = [t.id for t in ([term] if desk is None else [term, desk])]
                await wait_until_async(  # a card before the port is open would be flushed
                    lambda: (
                        readers_online.online(*terminal_ids) or any(task.done() for task in tasks)
                    ),
                    30,
                    "the readers' ports are open",
                )
                for task in tasks:
                    if task.done():
                        task.result()  # a terminal that failed to start: its error
                self._ready.set()
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            reader.close()
            if self.desk_reader is not None:
                self.desk_reader.close()
            await store.close()


DESK = "library-desk"


def _staff_server(
    store: EdgeStore, pipeline: Pipeline, terminals: list[TerminalConfig], key: bytes
) -> Any:
    """The staff page as the daemon serves it (all sections), signing in at the desk reader."""
    import datetime as dt

    from edge.core.reasons import Lang
    from edge.staff.auth import StaffAuth
    from edge.staff.capture import ReaderInput
    from edge.staff.i18n import Strings
    from edge.staff.registry import SECTIONS
    from edge.staff.sections import StaffContext
    from edge.staff.server import StaffServer

    readers = ReaderInput()
    auth = StaffAuth(store, readers, key, [DESK], lifetime_s=600, card_wait_s=10)
    ctx = StaffContext(
        store=store,
        pipeline=pipeline,
        readers=readers,
        gates={},
        terminals=terminals,
        clock=lambda: dt.datetime.now(dt.UTC),
        language=Lang.EN,
        auth=auth,
        strings=Strings(),
        sections=SECTIONS,
    )
    return StaffServer(ctx, "127.0.0.1", 0)


ALL_DAY = PolicyDoc.model_validate(
    {
        "timezone": "Asia/Almaty",
        "free_meal_grades": [1, 2, 3, 4],
        "shift": [
            {"number": 1, "entry_from": "00:00", "entry_to": "23:59"},
            {"number": 2, "entry_from": "00:00", "entry_to": "23:59"},
        ],
    },
    strict=False,
)
