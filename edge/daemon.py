"""The school daemon: terminals feeding the pipeline, actuation after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.alarm_lights import AlarmLights
from edge.clock_guard import ClockGuard
from edge.config import ConfigError, EdgeConfig, TerminalConfig, load_config
from edge.core.model import Tap
from edge.evacuation import Evacuation
from edge.faults import crash_point
from edge.kiosk.hub import KioskHub
from edge.pipeline import Clock, Outcome, Pipeline, PipelineError, utc_now
from edge.replay import ReplayError, load_policy
from edge.roster import load_roster
from edge.school_faults import SchoolFaults
from edge.store import EdgeStore
from hardware.base import (
    Feedback,
    Gate,
    KeypadKeys,
    Misread,
    PassageResult,
    Reader,
    ReaderStatus,
)
from hardware.config import OsdpBuses, open_feedback, open_gate, open_reader
from hardware.log_gate import LogGate
from protocol.messages import AlarmCode, ConsentKind, OwnerKind

if TYPE_CHECKING:
    # The face stack (OpenCV, dlib, numpy: the optional `faces` extra) is imported only by a
    # daemon with a face terminal, so a school without cameras needs none of it.
    from edge.faces.camera import Camera
    from edge.faces.matcher import MatchParams
    from edge.faces.service import FaceService
    from edge.staff.capture import ReaderInput
    from edge.sync import EdgeSync

log = logging.getLogger(__name__)


async def open_store(cfg: EdgeConfig) -> EdgeStore:
    from edge.cards import load_card_key

    key = None
    if cfg.card_key_file is not None:
        await asyncio.to_thread(cfg.store.parent.mkdir, parents=True, exist_ok=True)
        key = await asyncio.to_thread(load_card_key, cfg.card_key_file)
    return await EdgeStore.open(
        cfg.store,
        school=cfg.school,
        device=cfg.device,
        outbox_capacity=cfg.outbox_capacity,
        card_key=key,
    )


async def install_local_policy(cfg: EdgeConfig, store: EdgeStore) -> None:
    if cfg.policy is None:
        return
    try:
        doc = load_policy(cfg.policy)
    except ReplayError as err:
        raise ConfigError(str(err)) from err
    if doc != store.policy_doc:
        await store.install_policy(doc)


async def import_roster(config_path: Path, roster_path: Path, policy_path: Path | None) -> int:
    cfg = load_config(config_path)
    roster = load_roster(roster_path)
    policy = load_policy(policy_path) if policy_path else None
    async with await open_store(cfg) as store:
        await store.import_roster(roster.students, roster.staff, roster.cards, policy)
    return len(roster.students)


@dataclass
class Actuation:
    """Submit a tap (card or face) and actuate after the commit: the one path for both."""

    term: TerminalConfig
    pipeline: Pipeline
    clock: Clock
    log_gate: LogGate | None = None  # told every decision, granted or not
    gate: Gate | None = None  # released on a grant
    feedback: Feedback | None = None
    kiosk: KioskHub | None = None  # a canteen terminal's screen on the staff's kiosk page
    evacuation: Evacuation | None = None  # the fire alarm holds this terminal's gate free

    @classmethod
    async def open(
        cls,
        stack: contextlib.AsyncExitStack,
        term: TerminalConfig,
        pipeline: Pipeline,
        clock: Clock,
        reader: Reader | None,
        kiosk: KioskHub | None = None,
        evacuation: Evacuation | None = None,
    ) -> Actuation:
        act = cls(term, pipeline, clock, evacuation=evacuation)
        if kiosk is not None and term.id in kiosk.terminals:
            act.kiosk = kiosk
        if term.gate is not None:
            gate = open_gate(term.gate, reader)
            await stack.enter_async_context(gate)
            if isinstance(gate, LogGate):
                act.log_gate = gate
            else:
                act.gate = gate
                if evacuation is not None:
                    evacuation.register(term.id, gate)
        act.feedback = open_feedback(reader) if reader is not None else None
        return act

    async def tap(self, tap: Tap) -> Outcome | None:
        """Decide and record ``tap``, then open (or not) the gate; None when refused."""
        gate = self.gate
        try:
            outcome = await self.pipeline.submit(tap, defer_presence=gate is not None)
        except PipelineError as err:
            log.error("terminal %s: tap refused: %s", self.term.id, err)
            if err.cannot_record:  # nothing recorded, nothing opened: say so at the terminal
                if self.kiosk is not None:
                    self.kiosk.show_unrecorded(self.term.id)
                if self.feedback is not None:
                    await self.feedback.show(False)
            return None
        granted = outcome.decision.granted
        if self.log_gate is not None:
            await self.log_gate.actuate(outcome.event.seq, granted)
        if self.kiosk is not None:  # committed: the canteen screen may say FREE MEAL now
            self.kiosk.show_tap(outcome)
        release = (
            asyncio.create_task(
                gate.release(self.term.passage_timeout), name=f"release-{self.term.id}"
            )
            if gate is not None and granted
            else None
        )
        if self.feedback is not None:  # green or red while the gate opens, not after the passage
            await self.feedback.show(granted)
        if release is not None:
            result = await release
            try:
                await self.pipeline.passage(
                    outcome, result is not PassageResult.NOT_PASSED, self.clock()
                )
            except Exception as err:  # after the act (e.g. a full disk): the tap's record stands
                log.error("terminal %s: passage not recorded: %s", self.term.id, err)
        crash_point("after_actuate")
        return outcome


def _params(term: TerminalConfig) -> MatchParams:
    from edge.faces.matcher import MatchParams

    return MatchParams(term.face_tolerance, term.face_margin)


async def verify_card_face(
    term: TerminalConfig, store: EdgeStore, faces: FaceService, camera: Camera, credential: str
) -> bool | None:
    """Card + face: is the card's student in front of the camera within ``face_window``?

    None (no face check) for a staff card, an unknown card, a student without biometric consent
    (their card alone gives the same access) or without an enrolled template.
    """
    card = store.state.card(credential)
    if card is None or card.owner_kind is not OwnerKind.STUDENT:
        return None
    student = store.state.student(card.owner_id)
    if student is None or ConsentKind.BIOMETRIC not in student.consents:
        return None
    if not faces.is_enrolled(student.id):
        log.info("terminal %s: card + face without an enrolled template: card only", term.id)
        return None
    from edge.faces.camera import CameraError
    from edge.faces.encoder import EncoderError

    params = _params(term)
    try:
        async with asyncio.timeout(term.face_window):
            while True:
                frame = await camera.frame()
                if frame is None:
                    return False
                for obs in await faces.encoder.encode(frame):
                    if faces.verify(student.id, obs.encoding, params).matched:
                        return True
    except TimeoutError:
        return False
    except (CameraError, EncoderError) as err:
        log.error("terminal %s: face check failed: %s", term.id, err)
        return False


async def run_terminal(
    term: TerminalConfig,
    pipeline: Pipeline,
    store: EdgeStore,
    clock: Clock = utc_now,
    buses: OsdpBuses | None = None,
    faces: FaceService | None = None,
    kiosk: KioskHub | None = None,
    readers: ReaderInput | None = None,
    gates: dict[str, Actuation] | None = None,
    lights: AlarmLights | None = None,
    evacuation: Evacuation | None = None,
) -> None:
    """One terminal: its reader's events (or its camera's faces) become taps; actuation only
    after the commit.

    With the staff page on, the terminal's actuation is in ``gates`` (a teacher's pass opens it
    through the same pipeline) and, while the page waits for a staff member's card or keypad
    entry at this reader (``readers``), the reads go to the page instead of becoming taps.

    With a hardware gate the anti-passback state is written once the gate reports the passage
    (or, for a gate without a sensor, once it has been released): a student who turns back, or a
    crash between commit and release, never leaves the student marked inside.
    """
    if term.face_mode == "face_only":
        assert faces is not None, "a face terminal needs the daemon's FaceService"
        await run_face_terminal(
            term, pipeline, store, faces, clock, kiosk=kiosk, evacuation=evacuation
        )
        return
    assert term.reader is not None  # load_config refuses a card terminal without one
    reader = open_reader(term.reader, buses or OsdpBuses())
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(reader)
        act = await Actuation.open(stack, term, pipeline, clock, reader, kiosk, evacuation)
        if gates is not None:
            gates[term.id] = act
        if lights is not None and act.feedback is not None:
            lights.register(term.id, act.feedback)
        camera: Camera | None = None
        if term.face_mode == "card_and_face":
            assert faces is not None and term.camera is not None
            from edge.faces.camera import Camera, open_source

            camera = await stack.enter_async_context(Camera(open_source(term.camera)))
        offline = False
        async for event in reader.events():
            if isinstance(event, ReaderStatus):
                if event.online == offline:  # a change
                    offline = not event.online
                    await store.journal_alarm(
                        term.id, AlarmCode.READER_OFFLINE, offline, event.detail[:200]
                    )
                continue
            if isinstance(event, Misread):
                log.debug("terminal %s: misread (%s)", term.id, event.detail)
                continue
            if isinstance(event, KeypadKeys):
                if readers is None or not readers.offer_keys(term.id, event.keys):
                    log.debug("terminal %s: keypad keys with no page waiting", term.id)
                continue
            if readers is not None and readers.offer_card(term.id, event.credential):
                continue  # a staff member signing in at the staff page: no tap
            verified = None
            if camera is not None and faces is not None:
                verified = await verify_card_face(term, store, faces, camera, event.credential)
            tap = Tap(
                at=clock(),
                terminal=term.id,
                kind=term.kind,
                direction=term.direction,
                credential=event.credential,
                face_verified=verified,
            )
            await act.tap(tap)


CAMERA_RETRY_S = 5.0


async def run_face_terminal(
    term: TerminalConfig,
    pipeline: Pipeline,
    store: EdgeStore,
    faces: FaceService,
    clock: Clock = utc_now,
    *,
    loop_source: bool = True,
    kiosk: KioskHub | None = None,
    evacuation: Evacuation | None = None,
) -> None:
    """Face only: frame -> encoder (worker process) -> 1:N identify -> Tap(face_student) ->
    the same pipeline and actuation as a card. A face that matches nobody (or two students
    within the margin) is no tap. The same student again within ``face_debounce`` seconds is
    the same tap. Ends when a finite source (a folder without ``loop_source``) runs out."""
    from edge.faces.camera import Camera, CameraError, open_source
    from edge.faces.encoder import EncoderError

    assert term.camera is not None
    params = _params(term)
    last_seen: dict[str, float] = {}
    offline = False
    async with contextlib.AsyncExitStack() as stack:
        act = await Actuation.open(stack, term, pipeline, clock, None, kiosk, evacuation)
        while True:
            try:
                source = await asyncio.to_thread(open_source, term.camera, loop=loop_source)
                async with Camera(source) as camera:
                    if offline:
                        offline = False
                        await store.journal_alarm(
                            term.id, AlarmCode.READER_OFFLINE, False, "camera"
                        )
                    while (frame := await camera.frame()) is not None:
                        observations = await faces.encoder.encode(frame)
                        del frame
                        for obs in observations:
                            result = faces.identify(obs.encoding, params)
                            if not result.matched or result.student_id is None:
                                log.debug(
                                    "terminal %s: face not matched (%s)", term.id, result.reason
                                )
                                continue
                            now = time.monotonic()
                            seen = last_seen.get(result.student_id)
                            last_seen[result.student_id] = now
                            if seen is not None and now - seen < term.face_debounce:
                                continue
                            tap = Tap(
                                at=clock(),
                                terminal=term.id,
                                kind=term.kind,
                                direction=term.direction,
                                face_student=result.student_id,
                            )
                            await act.tap(tap)
                    return  # a finite source ended
            except (CameraError, EncoderError, TimeoutError) as err:
                log.error("terminal %s: camera or encoder failed: %s", term.id, err)
                if not offline:
                    offline = True
                    await store.journal_alarm(term.id, AlarmCode.READER_OFFLINE, True, "camera")
                await asyncio.sleep(CAMERA_RETRY_S)


async def open_kiosk(
    stack: contextlib.AsyncExitStack,
    cfg: EdgeConfig,
    store: EdgeStore,
    pipeline: Pipeline,
    clock: Clock = utc_now,
) -> KioskHub | None:
    """The canteen staff's page, served from this loop; None when not configured."""
    if cfg.kiosk is None:
        return None
    from edge.kiosk.server import KioskServer

    hub = KioskHub(store, pipeline, cfg.kiosk_terminals, clock)
    server = KioskServer(
        hub,
        cfg.kiosk.host,
        cfg.kiosk.port,
        cfg.kiosk.token.get_secret_value(),
        cfg.kiosk.language or cfg.language,
        session_hours=cfg.kiosk.session_hours,
        tls=cfg.kiosk.tls,
    )
    try:
        await stack.enter_async_context(server)
    except ssl.SSLError as err:  # not PEM, or a key that does not fit its certificate
        raise ConfigError(f"kiosk.tls_certfile / tls_keyfile: cannot be used: {err}") from err
    except OSError as err:
        raise ConfigError(f"kiosk.listen: cannot listen on {cfg.kiosk.listen}: {err}") from err
    return hub


async def open_staff_page(
    stack: contextlib.AsyncExitStack,
    cfg: EdgeConfig,
    store: EdgeStore,
    pipeline: Pipeline,
    clock: Clock = utc_now,
    faults: SchoolFaults | None = None,
) -> tuple[ReaderInput, dict[str, Actuation]] | None:
    """The staff page (card + PIN sign-in, the teacher's pass, other sections), served from this
    loop; None when not configured. Returns the readers it borrows and the gates it opens (the
    terminals fill ``gates`` as they start)."""
    if cfg.staff is None:
        return None
    from edge.staff.server import StaffServer

    gates: dict[str, Actuation] = {}
    server = StaffServer.from_config(cfg, store, pipeline, gates, clock)
    if faults is not None:  # the duty section shows them
        server.ctx.extras["faults"] = faults
    try:
        await stack.enter_async_context(server)
    except ssl.SSLError as err:
        raise ConfigError(f"staff.tls_certfile / tls_keyfile: cannot be used: {err}") from err
    except OSError as err:
        raise ConfigError(f"staff.listen: cannot listen on {cfg.staff.listen}: {err}") from err
    return server.readers, gates


def open_sync(config_path: Path, cfg: EdgeConfig, store: EdgeStore) -> EdgeSync:
    """The sync of the enrolment in ``sync_key_dir``, with the config's TLS settings on top; an
    unusable enrolment or link (e.g. plain to a broker off loopback) is a ``ConfigError``."""
    from edge.sync import EdgeSync, SyncError

    assert cfg.sync_key_dir is not None
    link: dict[str, Any] = {
        "mqtt_ca_file": cfg.mqtt_ca_file,
        "mqtt_cert_file": cfg.mqtt_cert_file,
        "mqtt_key_file": cfg.mqtt_key_file,
        "mqtt_allow_plain": cfg.mqtt_allow_plain or None,
        "mqtt_brokers": cfg.mqtt_brokers,
        "mqtt_protocol": cfg.mqtt_protocol,
        "failback_s": cfg.failback_s,
    }
    overrides = {name: value for name, value in link.items() if value is not None}
    from edge.staff.pins import PinKeyError, load_pin_key

    assert cfg.staff_pin_key_file is not None  # load_config sets the default
    try:
        pin_key = load_pin_key(cfg.staff_pin_key_file)
    except (OSError, PinKeyError) as err:
        raise ConfigError(f"{config_path}: staff_pin_key_file: {err}") from err
    try:
        return EdgeSync.from_key_dir(store, cfg.sync_key_dir, pin_key=pin_key, **overrides)
    except SyncError as err:
        raise ConfigError(f"{config_path}: sync_key_dir: {err}") from err


def guard_clock(store: EdgeStore, guard: ClockGuard, pending: set[asyncio.Task[int]]) -> None:
    """The store takes its time and the doubt from ``guard``; a doubt that starts or ends is
    journaled as a ``clock_in_doubt`` alarm (the duty page and the readers' LEDs show it)."""
    store.clock = guard.now
    store.clock_in_doubt = lambda: guard.in_doubt

    def changed(state: object, detail: str) -> None:
        async def record() -> int:
            try:
                return await store.journal_alarm(
                    store.device, AlarmCode.CLOCK_IN_DOUBT, guard.in_doubt, detail[:500]
                )
            except Exception as err:  # e.g. a full disk: the duty page still shows the doubt
                log.error("clock alarm not journaled: %s", err)
                return 0

        task = asyncio.get_running_loop().create_task(record(), name="clock-alarm")
        pending.add(task)
        task.add_done_callback(pending.discard)

    guard.on_change = changed


async def run_daemon(
    config_path: Path, *, clock: Clock = utc_now, guard: ClockGuard | None = None
) -> None:
    """``clock`` is the wall clock (injectable for tests); the daemon's own time is the
    ``guard``'s (a ``ClockGuard`` on ``clock`` unless given), which notices a wall clock that
    jumps (README, "Wrong clock")."""
    cfg = load_config(config_path)
    async with await open_store(cfg) as store:
        guard = guard if guard is not None else ClockGuard(wall=clock)
        clock_alarms: set[asyncio.Task[int]] = set()
        guard_clock(store, guard, clock_alarms)
        guard.start(await store.last_at_ms())
        clock = guard.now
        evacuation = Evacuation(store, clock)
        faults = SchoolFaults(guard, evacuation)
        store.set_overdraft(cfg.canteen.overdraft_tiyn)
        await install_local_policy(cfg, store)
        if store.policy is None:
            log.warning("no policy yet: taps are refused until the server sends one")
        log.info(
            "school %s device %s: %d terminals, journal at seq %d",
            cfg.school,
            cfg.device,
            len(cfg.terminals),
            store.last_seq,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            buses = OsdpBuses()
            buses.on_fire_input = evacuation.input_changed
            for t in cfg.terminals:  # every OSDP reader of a bus is known before the bus opens
                if t.reader is not None and t.reader.type == "osdp":
                    buses.add(t.reader)
            async with contextlib.AsyncExitStack() as stack:
                if cfg.sync_key_dir is not None:
                    sync = open_sync(config_path, cfg, store)
                    sync.on_centre_time = guard.centre_time
                    await stack.enter_async_context(sync)
                else:
                    log.info("no sync_key_dir: running stand-alone; events wait in the outbox")
                faces: FaceService | None = None
                if any(t.uses_faces for t in cfg.terminals):
                    assert cfg.face_key_file is not None  # load_config refuses otherwise
                    from edge.faces.service import FaceService, FaceSetupError

                    try:
                        faces = await stack.enter_async_context(
                            FaceService.open(store, cfg.store, cfg.face_key_file)
                        )
                    except FaceSetupError as err:
                        raise ConfigError(f"face_key_file: {err}") from err
                    log.info("face matching on: %d templates loaded", len(faces.gallery))
                pipeline = await stack.enter_async_context(Pipeline(store))
                faults.pipeline = pipeline
                kiosk = await open_kiosk(stack, cfg, store, pipeline, clock)
                staff = await open_staff_page(stack, cfg, store, pipeline, clock, faults)
                readers, gates = staff if staff is not None else (None, None)
                tg = await stack.enter_async_context(asyncio.TaskGroup())
                lights = AlarmLights(
                    store, now_ms=guard.now_ms, unjournaled=faults.unjournaled_alarms
                )
                tasks = [
                    tg.create_task(
                        run_terminal(
                            t,
                            pipeline,
                            store,
                            clock,
                            buses,
                            faces,
                            kiosk,
                            readers,
                            gates,
                            lights,
                            evacuation,
                        ),
                        name=f"terminal-{t.id}",
                    )
                    for t in cfg.terminals
                ]
                tasks.append(tg.create_task(lights.run(), name="alarm-lights"))
                await stop.wait()
                log.info("stopping")
                for task in tasks:
                    task.cancel()
        finally:
            with contextlib.suppress(Exception):
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
