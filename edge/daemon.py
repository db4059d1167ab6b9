"""The school daemon: terminals feeding the pipeline, actuation after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from edge.config import EdgeConfig, LineReaderConfig, LogGateConfig, TerminalConfig, load_config
from edge.core.model import Tap
from edge.faults import crash_point
from edge.pipeline import Clock, Pipeline, PipelineError, utc_now
from edge.replay import ReplayError, load_policy
from edge.roster import load_roster
from edge.store import EdgeStore
from hardware.base import Feedback, Gate, Misread, PassageResult, Reader, ReaderStatus
from hardware.config import OsdpBuses, open_feedback, open_gate, open_reader
from hardware.wedge import LineReader
from protocol.messages import AlarmCode
from simulators.log_gate import LogActuator

log = logging.getLogger(__name__)


async def open_store(cfg: EdgeConfig) -> EdgeStore:
    return await EdgeStore.open(
        cfg.store, school=cfg.school, device=cfg.device, outbox_capacity=cfg.outbox_capacity
    )


async def install_local_policy(cfg: EdgeConfig, store: EdgeStore) -> None:
    if cfg.policy is None:
        return
    try:
        doc = load_policy(cfg.policy)
    except ReplayError as err:
        from edge.config import ConfigError

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


def _open_reader(cfg: TerminalConfig, buses: OsdpBuses) -> Reader:
    if isinstance(cfg.reader, LineReaderConfig):
        return LineReader(cfg.id, cfg.reader.path, default_prefix=cfg.reader.default_prefix)
    return open_reader(cfg.reader, buses)


async def run_terminal(
    term: TerminalConfig,
    pipeline: Pipeline,
    store: EdgeStore,
    clock: Clock = utc_now,
    buses: OsdpBuses | None = None,
) -> None:
    """One terminal: its reader's events become taps; actuation only after the commit.

    With a hardware gate the anti-passback state is written once the gate reports the passage
    (or, for a gate without a sensor, once it has been released): a student who turns back, or a
    crash between commit and release, never leaves the student marked inside.
    """
    reader = _open_reader(term, buses or OsdpBuses())
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(reader)
        log_gate: LogActuator | None = None
        gate: Gate | None = None
        if isinstance(term.gate, LogGateConfig):
            log_gate = LogActuator(term.gate.path, term.id)
        elif term.gate is not None:
            gate = await stack.enter_async_context(open_gate(term.gate, reader))
        feedback: Feedback | None = open_feedback(reader)
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
            tap = Tap(
                at=clock(),
                terminal=term.id,
                kind=term.kind,
                direction=term.direction,
                credential=event.credential,
            )
            try:
                outcome = await pipeline.submit(tap, defer_presence=gate is not None)
            except PipelineError as err:
                log.error("terminal %s: tap refused: %s", term.id, err)
                continue
            granted = outcome.decision.granted
            if log_gate is not None:
                await log_gate.actuate(outcome.event.seq, granted)
            release = (
                asyncio.create_task(gate.release(term.passage_timeout), name=f"release-{term.id}")
                if gate is not None and granted
                else None
            )
            if feedback is not None:  # green or red while the gate opens, not after the passage
                await feedback.show(granted)
            if release is not None:
                result = await release
                await pipeline.passage(outcome, result is not PassageResult.NOT_PASSED, clock())
            crash_point("after_actuate")


async def run_daemon(config_path: Path, *, clock: Clock = utc_now) -> None:
    cfg = load_config(config_path)
    async with await open_store(cfg) as store:
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
        buses = OsdpBuses()
        for t in cfg.terminals:  # every OSDP reader of a bus is known before the bus opens
            if t.reader.type == "osdp":
                buses.add(t.reader)
        async with contextlib.AsyncExitStack() as stack:
            if cfg.sync_key_dir is not None:
                from edge.sync import EdgeSync

                await stack.enter_async_context(EdgeSync.from_key_dir(store, cfg.sync_key_dir))
            else:
                log.info("no sync_key_dir: running stand-alone; events wait in the outbox")
            pipeline = await stack.enter_async_context(Pipeline(store))
            tg = await stack.enter_async_context(asyncio.TaskGroup())
            tasks = [
                tg.create_task(
                    run_terminal(t, pipeline, store, clock, buses), name=f"terminal-{t.id}"
                )
                for t in cfg.terminals
            ]
            await stop.wait()
            log.info("stopping")
            for task in tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
