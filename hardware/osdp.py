"""Turnstile readers over OSDP (RS-485), driven by libosdp's ``ControlPanel``.

One :class:`OsdpBus` owns one RS-485 line and every peripheral (PD) on it, each at its own
address; it is the single owner of libosdp's control panel. Its refresh thread runs libosdp at
least every 20 ms and at once when a command is queued or bytes arrive on the line, so a
release goes out within a few ms of the decision (see :class:`_ControlPanel`). Events from
that thread are handed to the event loop with ``call_soon_threadsafe``; every call into
libosdp from the loop runs in ``asyncio.to_thread`` under ``asyncio.timeout``.

Events (all carry the PD's ``reader_id``):

* a card read in raw Wiegand format -> ``W26:FFF:CCCCC`` / ``W34:FFFFF:CCCCCCC`` (parity
  checked; a parity error is a :class:`~hardware.base.Misread`) or ``WR:<bits>:<HEX>``;
* a card read as raw unspecified data (a contactless UID) -> ``UID:<HEX>``;
* a PD that stops answering, or whose secure channel fails -> ``ReaderStatus(online=False)``
  with a detail saying which; its return -> ``ReaderStatus(online=True)``. Each change is
  logged once.

Secure channel
--------------
Secure channel is ON by default: the CP enforces it (``LibFlag.EnforceSecure``), so nothing the
PD says is accepted before the SC handshake with the PD's own 16-byte SCBK succeeded. A PD that
answers with another key is refused (libosdp drops it), never yields a card read, and is
reported offline with the detail "secure channel refused". Plain-text OSDP is possible only by
setting ``scbk=None`` explicitly in the configuration.

Key set-up (install mode): readers leave the factory with the default key SCBK-D and accept it
only in install mode. To key a new reader, run a CP once with ``LibFlag.InstallMode`` on that
PD, let it come online under SCBK-D, send ``Command.Keyset`` (``{"command": Command.Keyset,
"type": 1, "data": <16 random bytes>}``), store those bytes as the reader's ``scbk`` in the
edge configuration (never in a log or the repository), and restart the CP without install
mode. From then on the reader only talks to a CP that knows its key. Readers from vendors
with a key tool can be keyed the same way with that tool; the configuration only needs the
resulting SCBK. A reader replaced in the field is re-keyed the same way.

Availability
------------
libosdp itself declares a silent PD offline only after about 8 s and then waits 300 s before
trying again. The bus watches replies on the line itself (the address byte after each SOM),
so a PD silent for ``silence_timeout`` (2 s) is reported offline at once, and an offline PD is
retried with capped jittered backoff (``disable_pd``/``enable_pd``) instead of waiting 300 s.
If the port itself fails (a USB-RS485 adapter pulled out), every PD on the bus goes offline
("bus port failed"), the control panel is stopped and the port is reopened with backoff.

Output and input
----------------
:class:`OsdpGate` releases a turnstile with an output command (``control_code`` 5: temporary
ON for ``release_ms``, then back to the permanent state) and waits for the passage sensor
input of the same PD (an input status report with that input active): ``PASSED`` or, after
``passage_timeout``, ``NOT_PASSED``; either way it then re-locks (``control_code`` 1).
:class:`OsdpFeedback` shows green or red on the reader LED and beeps (once granted, three
times denied).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import osdp

from hardware import wiegand
from hardware.base import (
    CredentialRead,
    HardwareError,
    HeldFree,
    KeypadKeys,
    Misread,
    PassageResult,
    ReaderEvent,
    ReaderStatus,
    normalise_credential,
)
from hardware.support import Availability, Backoff, EventChannel, run_blocking_cleanup

log = logging.getLogger(__name__)

SOM = 0x53  # OSDP start of message
REPLY_FLAG = 0x80  # set in the address byte of every PD reply
CALL_TIMEOUT = 2.0  # a call into libosdp waits at most for the poll thread to release its lock

# Output control codes (OSDP osdp_OUT)
OUT_PERMANENT_OFF = 1
OUT_PERMANENT_ON = 2  # and abort a timed state: a turnstile held free (evacuation)
OUT_TEMPORARY_ON = 5


class TrackingChannel(osdp.Channel):  # type: ignore[misc]
    """An ``osdp.Channel`` that notes, per PD address, when a reply was last seen on the line.

    Subclasses implement ``_read_raw`` (non-blocking) and ``write``. A read error (the port
    vanished) returns no data and is remembered in :attr:`error`; libosdp then sees silence.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_reply: dict[int, float] = {}
        self.error: str | None = None
        self._prev = -1  # the last byte of the previous read, for a SOM split across reads

    @abc.abstractmethod
    def _read_raw(self, size: int) -> bytes:
        """Up to ``size`` bytes from the line, without blocking."""

    def read(self, max_bytes: int) -> bytes:
        try:
            data = self._read_raw(max_bytes)
        except Exception as err:  # nothing may propagate into libosdp's C thread
            self.error = type(err).__name__
            return b""
        if data:
            self._note(data)
        return data

    def _note(self, data: bytes) -> None:
        now = time.monotonic()
        prev = self._prev
        for byte in data:
            if prev == SOM and byte & REPLY_FLAG:
                self.last_reply[byte & 0x7F] = now
            prev = byte
        self._prev = prev

    def fileno(self) -> int | None:
        """A descriptor that polls readable when bytes arrive, if the port has one."""
        return None

    def close(self) -> None:
        """Release the port (called once libosdp's thread has stopped)."""


class FdChannel(TrackingChannel):
    """A channel over a raw file descriptor (a pty, a tty opened by the caller). Owns ``fd``."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        os.set_blocking(fd, False)

    def fileno(self) -> int | None:
        return self._fd

    def _read_raw(self, size: int) -> bytes:
        try:
            return os.read(self._fd, size)
        except BlockingIOError:
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self._fd, buf)
        except BlockingIOError:
            return 0
        except Exception as err:  # nothing may propagate into libosdp's C thread
            self.error = type(err).__name__
            return 0

    def flush(self) -> None:
        pass

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            log.debug("closing OSDP fd failed", exc_info=True)


class SerialChannel(TrackingChannel):
    """A channel over a pyserial port opened with ``timeout=0`` (non-blocking reads)."""

    def __init__(self, port: Any) -> None:
        super().__init__()
        self._port = port

    def fileno(self) -> int | None:
        try:
            fd: int = self._port.fileno()
        except (AttributeError, OSError, ValueError):  # not a POSIX port, or closed
            return None
        return fd

    def _read_raw(self, size: int) -> bytes:
        data: bytes = self._port.read(size)
        return data

    def write(self, buf: bytes) -> int:
        try:
            written: int | None = self._port.write(buf)
        except Exception as err:  # OSError, termios.error...: never into libosdp's C thread
            self.error = type(err).__name__
            return 0
        return len(buf) if written is None else written

    def flush(self) -> None:
        try:
            self._port.flush()
        except Exception as err:  # termios.error is not an OSError
            self.error = type(err).__name__

    def close(self) -> None:
        try:
            self._port.close()
        except OSError:
            log.debug("closing OSDP port failed", exc_info=True)


ChannelFactory = Callable[[], TrackingChannel]


def serial_channel_factory(port: str, baudrate: int = 9600) -> ChannelFactory:
    """Open an RS-485 adapter (or a pty) with pyserial, non-blocking, 8N1."""
    import serial

    def open_channel() -> TrackingChannel:
        return SerialChannel(serial.Serial(port, baudrate, timeout=0, write_timeout=1.0))

    return open_channel


@dataclass(frozen=True, slots=True)
class OsdpReaderSpec:
    """One PD on the bus."""

    reader_id: str
    address: int  # 0..126
    scbk: bytes | None  # 16-byte secure channel base key; None only to run in plain text
    output_no: int = 0  # output that releases the turnstile
    passage_input_no: int = 0  # input wired to the passage sensor
    fire_input_no: int | None = None  # input wired to the fire-alarm panel's dry contact
    release_ms: int = 5000  # how long the output stays on (OSDP timer, 100 ms units, <= 25.5 s)
    led_number: int = 0
    reader_no: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 126:
            raise ValueError("OSDP address must be 0..126")
        if self.scbk is not None and len(self.scbk) != 16:
            raise ValueError("SCBK must be 16 bytes")


@dataclass
class _PdState:
    spec: OsdpReaderSpec
    index: int
    availability: Availability
    backoff: Backoff
    next_retry: float = 0.0
    attempt_started: float = 0.0
    inputs: bytes = b""
    input_waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)


class _ControlPanel(osdp.ControlPanel):  # type: ignore[misc]
    """libosdp's ControlPanel with two changes.

    * No per-PD event queue (it grows without bound when nobody calls ``get_event``): events
      go straight to ``sink``.
    * Its own refresh thread. libosdp's Python thread calls ``refresh()`` and then sleeps a
      fixed 20 ms, so a command submitted from the event loop waits for the next tick, and the
      state machine needs one more refresh after a reply before it sends a queued command:
      ~40 ms between a card event and the output command reaching the wire. This thread still
      refreshes at least every ``interval``, but also at once when :meth:`wake` is called
      (a command was queued) or bytes arrive on the line, and once more ``follow_up`` later
      (the second step of libosdp's state machine). ``min_gap`` bounds the rate if the line
      stays readable while libosdp does not read it (a port that hung up).
    """

    sink: Callable[[int, dict[str, Any]], None] | None = None

    def __init__(
        self,
        infos: list[osdp.PDInfo],
        *,
        log_level: int,
        channel: TrackingChannel,
        interval: float = 0.020,
        follow_up: float = 0.002,
        min_gap: float = 0.001,
    ) -> None:
        super().__init__(infos, log_level=log_level)
        self.lock = threading.Lock()  # the base class creates it only in start()
        self._channel = channel
        self._interval = interval
        self._follow_up = follow_up
        self._min_gap = min_gap
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._pipe_lock = threading.Lock()
        self._pipe_closed = False
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._refresher: threading.Thread | None = None

    def _internal_event_handler(self, pd: int, event: dict[str, Any]) -> int:
        sink = self.sink
        if sink is not None:
            try:
                sink(pd, event)
            except Exception:  # never let an exception cross into libosdp's C thread
                log.exception("OSDP event handler failed")
        return 0

    def wake(self) -> None:
        """Refresh now (a command was just queued), not at the next tick."""
        with self._pipe_lock:  # never write to a closed (maybe reused) descriptor
            if self._pipe_closed:
                return
            with contextlib.suppress(OSError):  # already woken: the pipe is full (EAGAIN)
                os.write(self._wake_w, b"\0")

    def start(self) -> None:
        if self._refresher is not None:
            raise RuntimeError("control panel already running")
        self._refresher = threading.Thread(target=self._run, name="osdp-cp", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        self._stopping.set()
        self.wake()
        thread, self._refresher = self._refresher, None
        if thread is not None:
            thread.join(CALL_TIMEOUT)
            if thread.is_alive():
                log.warning("OSDP control panel thread did not stop")
                return  # leave the pipe open: the thread may still select on it
        with self._pipe_lock:
            if not self._pipe_closed:
                self._pipe_closed = True
                for fd in (self._wake_r, self._wake_w):
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _run(self) -> None:
        try:
            self._refresh_loop()
        except Exception:  # the PDs now fall silent: the bus watch reports them offline
            log.exception("OSDP control panel thread failed")

    def _refresh_loop(self) -> None:
        line_fd = self._channel.fileno()
        timeout = self._interval
        last = 0.0
        while not self._stopping.is_set():
            gap = time.monotonic() - last
            if gap < self._min_gap:
                time.sleep(self._min_gap - gap)
            last = time.monotonic()
            with self.lock:
                self.ctx.refresh()
            watch = [self._wake_r]
            if line_fd is not None and self._channel.error is None:
                watch.append(line_fd)
            try:
                ready, _, _ = select.select(watch, [], [], timeout)
            except (OSError, ValueError):  # the port vanished: the bus watch reopens it
                ready = []
                line_fd = None
                time.sleep(timeout)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(self._wake_r, 512)
            # After activity, look again shortly: libosdp sends a queued command one refresh
            # after it has finished the previous exchange.
            timeout = self._follow_up if ready else self._interval


def decode_card_event(event: dict[str, Any]) -> str:
    """Credential of an OSDP card-read event; raises :class:`wiegand.WiegandError` or
    :class:`ValueError` for data that cannot be a credential."""
    fmt = event.get("format")
    data = bytes(event.get("data", b""))
    if fmt == osdp.CardFormat.Wiegand:
        return wiegand.decode(wiegand.frame_from_bytes(data, int(event["length"])))
    if fmt == osdp.CardFormat.Unspecified:
        nbits = int(event.get("length", len(data) * 8))
        raw = data[: (nbits + 7) // 8]
        if not raw:
            raise ValueError("empty raw card data")
        return f"UID:{raw.hex().upper()}"
    raise ValueError(f"unsupported OSDP card format {fmt}")


class OsdpBus:
    """All OSDP readers on one RS-485 line. An async context manager and a
    :class:`~hardware.base.Reader` whose events carry each PD's own ``reader_id``.

    ``channel_factory`` opens the line (``serial_channel_factory(port)`` or a simulator's);
    ``readers`` lists the PDs. Get each PD's :class:`OsdpFeedback` and :class:`OsdpGate`
    with :meth:`feedback` and :meth:`gate`.
    """

    def __init__(
        self,
        bus_id: str,
        channel_factory: ChannelFactory,
        readers: Sequence[OsdpReaderSpec],
        *,
        monitor_interval: float = 0.2,
        silence_timeout: float = 2.0,
        connect_grace: float = 3.0,
        backoff: Callable[[], Backoff] = Backoff,
        log_level: int = osdp.LogLevel.Error,
    ) -> None:
        if not readers:
            raise ValueError("an OSDP bus needs at least one reader")
        # told (on the event loop) when a PD's fire-alarm input changes: (reader_id, active)
        self.on_fire_input: Callable[[str, bool], None] | None = None
        self.held_open: set[int] = set()  # addresses whose turnstile is held free
        addresses = [spec.address for spec in readers]
        if len(set(addresses)) != len(addresses):
            raise ValueError("two readers share an OSDP address")
        self.reader_id = bus_id
        self._factory = channel_factory
        self._specs = list(readers)
        self._monitor_interval = monitor_interval
        self._silence_timeout = silence_timeout
        self._connect_grace = connect_grace
        self._log_level = log_level
        self._events = EventChannel(f"OSDP bus {bus_id}")
        self._states = {
            spec.address: _PdState(spec, i, Availability(spec.reader_id), backoff())
            for i, spec in enumerate(readers)
        }
        self._by_reader = {spec.reader_id: spec.address for spec in readers}
        self._cp: _ControlPanel | None = None
        self._line_backoff = backoff()
        self._channel: TrackingChannel | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._cp_lock = threading.Lock()  # our calls into libosdp, one at a time
        self._views: dict[str, EventChannel] = {}  # reader_id -> channel of an OsdpPdReader
        self._users = 0
        self._runner: asyncio.Task[None] | None = None
        self._users_lock = asyncio.Lock()
        self.misreads = 0

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> OsdpBus:
        self._loop = asyncio.get_running_loop()
        try:
            await self._open_line()
        except (OSError, TimeoutError) as err:  # the watch task keeps trying
            self._all_offline(f"cannot open bus port ({type(err).__name__})")
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._monitor = self._tasks.create_task(
            self._watch(), name=f"osdp-monitor-{self.reader_id}"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        await self._close_line()
        for state in self._states.values():
            for _, waiter in state.input_waiters:
                waiter.cancel()
            state.input_waiters.clear()

    async def _open_line(self) -> None:
        """Open the port and start libosdp's control panel on it."""
        async with asyncio.timeout(CALL_TIMEOUT * 2):
            channel = await asyncio.to_thread(self._factory)
        infos = [
            osdp.PDInfo(
                spec.address,
                channel,
                scbk=spec.scbk,
                name=spec.reader_id,
                flags=[osdp.LibFlag.EnforceSecure, osdp.LibFlag.EnableNotification]
                if spec.scbk is not None
                else [osdp.LibFlag.EnableNotification],
            )
            for spec in self._specs
        ]
        cp = _ControlPanel(infos, log_level=self._log_level, channel=channel)
        cp.sink = self._from_cp_thread
        now = time.monotonic()
        for state in self._states.values():
            state.next_retry = now + self._connect_grace
            state.attempt_started = now
        self._channel, self._cp = channel, cp
        async with asyncio.timeout(CALL_TIMEOUT):
            await asyncio.to_thread(cp.start)

    async def _close_line(self) -> None:
        cp, self._cp = self._cp, None
        if cp is not None:
            cp.sink = None
            await run_blocking_cleanup(cp.stop, f"OSDP bus {self.reader_id} stop")
        channel, self._channel = self._channel, None
        if channel is not None:
            await run_blocking_cleanup(channel.close, f"OSDP bus {self.reader_id} port close")

    def _all_offline(self, detail: str) -> None:
        for state in self._states.values():
            self._emit(state.availability.set(False, detail))

    def events(self) -> AsyncIterator[ReaderEvent]:
        """Events of every PD that has no :class:`OsdpPdReader` view of its own."""
        return aiter(self._events)

    def _emit(self, event: ReaderEvent | None) -> None:
        if event is None:
            return
        if isinstance(event, ReaderStatus):
            self._status_changed.set()
        self._views.get(event.reader_id, self._events).put(event)

    def reader(self, reader_id: str) -> OsdpPdReader:
        """A :class:`~hardware.base.Reader` for one PD; views share this bus (ref-counted)."""
        self._by_reader[reader_id]  # KeyError for a PD not on this bus
        return OsdpPdReader(self, reader_id)

    async def _acquire(self, reader_id: str, channel: EventChannel) -> None:
        async with self._users_lock:
            if reader_id in self._views:
                raise HardwareError(f"reader {reader_id} is already open")
            self._views[reader_id] = channel
            if self._users == 0:
                # The bus's task group lives in a task of its own, so that views entered and
                # left from different tasks never exit a task group from a foreign task.
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._runner = asyncio.create_task(
                    self._serve(ready), name=f"osdp-bus-{self.reader_id}"
                )
                try:
                    await ready
                except BaseException:
                    del self._views[reader_id]
                    raise
            self._users += 1

    async def _release(self, reader_id: str) -> None:
        async with self._users_lock:
            self._views.pop(reader_id, None)
            self._users -= 1
            if self._users == 0 and self._runner is not None:
                runner, self._runner = self._runner, None
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner

    async def _serve(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self:
                ready.set_result(None)
                await asyncio.Event().wait()  # until the last view cancels us
        except Exception as err:
            if not ready.done():
                ready.set_exception(err)
                return
            log.error("OSDP bus %s stopped: %s", self.reader_id, type(err).__name__)
            raise

    def reader_ids(self) -> list[str]:
        return [spec.reader_id for spec in self._specs]

    def is_online(self, reader_id: str) -> bool:
        return self._states[self._by_reader[reader_id]].availability.online is True

    async def wait_online(self, reader_id: str) -> None:
        """Return once the PD is online (wrap in ``asyncio.timeout``)."""
        while True:
            self._status_changed.clear()
            if self.is_online(reader_id):
                return
            await self._status_changed.wait()

    def feedback(self, reader_id: str) -> OsdpFeedback:
        return OsdpFeedback(self, self._by_reader[reader_id])

    def gate(self, reader_id: str) -> OsdpGate:
        return OsdpGate(self, self._by_reader[reader_id])

    # ------------------------------------------------------ events from libosdp

    def _from_cp_thread(self, pd_index: int, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, self._specs[pd_index].address, event)

    def _dispatch(self, address: int, event: dict[str, Any]) -> None:
        state = self._states[address]
        kind = event.get("event")
        if kind == osdp.Event.CardRead:
            self._card(state, event)
        elif kind == osdp.Event.KeyPress:
            self._keys(state, event)
        elif kind == osdp.Event.Status and event.get("type") == osdp.StatusReportType.Input:
            self._inputs(state, bytes(event.get("report", b"")))
        elif kind == osdp.Event.Notification:
            self._wake.set()  # PD or SC status changed: look now, not at the next tick
        else:
            log.debug("reader %s: OSDP event %s ignored", state.spec.reader_id, kind)

    def _card(self, state: _PdState, event: dict[str, Any]) -> None:
        reader_id = state.spec.reader_id
        try:
            credential = decode_card_event(event)
        except ValueError as err:  # WiegandError is a ValueError
            self.misreads += 1
            log.debug("reader %s misread: %s", reader_id, err)
            self._emit(Misread(reader_id, str(err)))
            return
        self._emit(CredentialRead(reader_id, normalise_credential(credential), time.monotonic()))

    def _keys(self, state: _PdState, event: dict[str, Any]) -> None:
        """Keypad data: ASCII digits, CR (``#``, enter) and DEL (``*``, clear); anything else
        is dropped. The keys themselves (a PIN) are never logged."""
        raw = bytes(event.get("data", b""))[:32]
        keys = "".join(
            "#" if b == 0x0D else "*" if b == 0x7F else chr(b)
            for b in raw
            if 0x30 <= b <= 0x39 or b in (0x0D, 0x7F, 0x23, 0x2A)
        )
        if keys:
            self._emit(KeypadKeys(state.spec.reader_id, keys))

    def _inputs(self, state: _PdState, report: bytes) -> None:
        fire = state.spec.fire_input_no
        if fire is not None and fire < len(report):
            was = fire < len(state.inputs) and bool(state.inputs[fire])
            now = bool(report[fire])
            if now != was:
                log.warning("reader %s: fire-alarm input %s", state.spec.reader_id, now)
                if self.on_fire_input is not None:
                    self.on_fire_input(state.spec.reader_id, now)
        state.inputs = report
        still_waiting = []
        for input_no, waiter in state.input_waiters:
            if input_no < len(report) and report[input_no] and not waiter.done():
                waiter.set_result(None)
            elif not waiter.done():
                still_waiting.append((input_no, waiter))
        state.input_waiters = still_waiting

    # ----------------------------------------------------- availability watch

    def _snapshot(self) -> tuple[int, int]:
        cp = self._cp
        if cp is None:
            return 0, 0
        with self._cp_lock:
            return int(cp.status()), int(cp.sc_status())

    def _restart_pd(self, address: int) -> None:
        cp = self._cp
        if cp is None:
            return
        with self._cp_lock:
            cp.disable_pd(address)
            cp.enable_pd(address)

    async def _watch(self) -> None:
        while True:
            if self._cp is None:
                try:
                    await self._open_line()
                except (OSError, TimeoutError) as err:
                    self._all_offline(f"cannot open bus port ({type(err).__name__})")
                    await asyncio.sleep(self._line_backoff.next_delay())
                    continue
            elif self._channel is not None and self._channel.error:
                # The adapter vanished (USB unplugged): start over on a freshly opened port.
                self._all_offline(f"bus port failed ({self._channel.error})")
                await self._close_line()
                await asyncio.sleep(self._line_backoff.next_delay())
                continue
            async with asyncio.timeout(CALL_TIMEOUT):
                status, sc_status = await asyncio.to_thread(self._snapshot)
            now = time.monotonic()
            for state in self._states.values():
                await self._assess(state, status, sc_status, now)
            if status:
                self._line_backoff.reset()
            self._wake.clear()
            try:
                async with asyncio.timeout(self._monitor_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _assess(self, state: _PdState, status: int, sc_status: int, now: float) -> None:
        spec = state.spec
        channel = self._channel
        assert channel is not None
        lib_online = bool(status & (1 << state.index))
        secure_ok = spec.scbk is None or bool(sc_status & (1 << state.index))
        last_reply = channel.last_reply.get(spec.address, 0.0)
        silent = now - last_reply > self._silence_timeout
        if lib_online and secure_ok and not silent:
            if state.availability.online is not True:
                detail = "secure channel up" if spec.scbk is not None else "online (plain text)"
                self._emit(state.availability.set(True, detail))
            state.backoff.reset()
            return
        in_grace = now - state.attempt_started < self._connect_grace
        if state.availability.online is True or not in_grace:
            self._emit(state.availability.set(False, self._why(state, lib_online, now)))
        if not lib_online and now >= state.next_retry:
            # libosdp would wait 300 s before trying an offline PD again; retry sooner.
            state.next_retry = now + state.backoff.next_delay()
            state.attempt_started = now
            async with asyncio.timeout(CALL_TIMEOUT):
                await asyncio.to_thread(self._restart_pd, spec.address)

    def _why(self, state: _PdState, lib_online: bool, now: float) -> str:
        channel = self._channel
        assert channel is not None
        if channel.error:
            return f"bus port failed ({channel.error})"
        answered = channel.last_reply.get(state.spec.address, 0.0) >= state.attempt_started
        if state.spec.scbk is not None and answered and not lib_online:
            return "secure channel refused: PD answers but not with this SCBK (wrong key?)"
        if lib_online:
            return "PD stopped answering"
        return "no answer from PD"

    # --------------------------------------------------------------- commands

    async def submit(self, address: int, *commands: dict[str, Any]) -> None:
        """Queue commands for a PD, in order, in one call into libosdp; raises
        :class:`HardwareError` if the PD is offline or libosdp refuses one of them."""
        state = self._states[address]
        if state.availability.online is not True:
            raise HardwareError(f"reader {state.spec.reader_id} is offline")

        def call() -> bool:
            cp = self._cp
            if cp is None:
                return False
            with self._cp_lock:
                accepted = all(cp.submit_command(address, command) for command in commands)
            cp.wake()  # send now, not at the next refresh tick
            return accepted

        async with asyncio.timeout(CALL_TIMEOUT):
            accepted = await asyncio.to_thread(call)
        if not accepted:
            raise HardwareError(f"reader {state.spec.reader_id} refused an OSDP command")

    def end_passage_waits(self, address: int, input_no: int) -> None:
        """The turnstile is held free: the releases waiting for its passage input end with
        :class:`HeldFree` (a later pulse is anyone's passage, not theirs)."""
        state = self._states[address]
        for waited, waiter in state.input_waiters:
            if waited == input_no and not waiter.done():
                waiter.set_exception(HeldFree())
        state.input_waiters = [(n, w) for n, w in state.input_waiters if not w.done()]

    def _input_waiter(self, address: int, input_no: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._states[address].input_waiters.append((input_no, future))
        return future

    def spec(self, address: int) -> OsdpReaderSpec:
        return self._states[address].spec


class OsdpPdReader:
    """One PD of a shared :class:`OsdpBus` seen as its own Reader (one per terminal). The
    first view entered opens the bus, the last one left closes it."""

    def __init__(self, bus: OsdpBus, reader_id: str) -> None:
        self.reader_id = reader_id
        self.bus = bus
        self._events = EventChannel(f"reader {reader_id}")

    async def __aenter__(self) -> OsdpPdReader:
        await self.bus._acquire(self.reader_id, self._events)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus._release(self.reader_id)

    def events(self) -> AsyncIterator[ReaderEvent]:
        return aiter(self._events)

    def feedback(self) -> OsdpFeedback:
        return self.bus.feedback(self.reader_id)

    def gate(self) -> OsdpGate:
        return self.bus.gate(self.reader_id)


class OsdpFeedback:
    """LED and buzzer of one OSDP reader."""

    def __init__(self, bus: OsdpBus, address: int, *, show_ms: int = 1500) -> None:
        self._bus = bus
        self._address = address
        self._units = max(1, min(255, show_ms // 100))

    async def show(self, granted: bool) -> None:
        """LED and buzzer in one call. Show it after the gate's release command has been
        queued: libosdp sends a PD's commands in order, one exchange each."""
        spec = self._bus.spec(self._address)
        colour = osdp.CommandLEDColor.Green if granted else osdp.CommandLEDColor.Red
        await self._bus.submit(
            self._address,
            {
                "command": osdp.Command.LED,
                "reader": spec.reader_no,
                "led_number": spec.led_number,
                "temporary": True,
                "control_code": 2,  # set the temporary state
                "on_color": colour,
                "off_color": osdp.CommandLEDColor.Black,
                "on_count": self._units,
                "off_count": 0,
                "timer_count": self._units,
            },
            {
                "command": osdp.Command.Buzzer,
                "reader": spec.reader_no,
                "control_code": 2,  # default tone
                "on_count": 2 if granted else 1,
                "off_count": 0 if granted else 1,
                "rep_count": 1 if granted else 3,
            },
        )

    async def indicate(self, alarm: bool, beep: bool) -> None:
        """The LED's permanent (idle) state: amber blinking while an alarm is active, off
        otherwise; a tap's green or red is a temporary state over it. ``beep``: one short
        beep as well."""
        spec = self._bus.spec(self._address)
        commands: list[dict[str, object]] = [
            {
                "command": osdp.Command.LED,
                "reader": spec.reader_no,
                "led_number": spec.led_number,
                "temporary": False,
                "control_code": 1,  # set the permanent state
                "on_color": osdp.CommandLEDColor.Amber if alarm else osdp.CommandLEDColor.Black,
                "off_color": osdp.CommandLEDColor.Black,
                "on_count": 5 if alarm else 1,  # 500 ms on, 500 ms off; steady dark
                "off_count": 5 if alarm else 0,
                "timer_count": 0,
            }
        ]
        if beep:
            commands.append(
                {
                    "command": osdp.Command.Buzzer,
                    "reader": spec.reader_no,
                    "control_code": 2,
                    "on_count": 3,
                    "off_count": 2,
                    "rep_count": 2,
                }
            )
        await self._bus.submit(self._address, *commands)


class OsdpGate:
    """A turnstile released by an OSDP output with the passage sensor on a PD input."""

    def __init__(self, bus: OsdpBus, address: int) -> None:
        self._bus = bus
        self._address = address

    async def __aenter__(self) -> OsdpGate:
        return self  # the bus owns the line; nothing to open

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def hold_open(self, free: bool) -> None:
        """Hold the turnstile free (output permanently on) or lock it again: the fire alarm.
        While held, a release sends nothing and nothing re-locks it."""
        spec = self._bus.spec(self._address)
        if free:
            self._bus.held_open.add(self._address)
            # A release waiting for its passage ends now, not passed: from here on anyone may
            # walk through, and a passage can no longer be told apart (the person who tapped
            # stays on the evacuation list).
            self._bus.end_passage_waits(self._address, spec.passage_input_no)
        else:
            self._bus.held_open.discard(self._address)
        await self._bus.submit(
            self._address,
            {
                "command": osdp.Command.Output,
                "output_no": spec.output_no,
                "control_code": OUT_PERMANENT_ON if free else OUT_PERMANENT_OFF,
                "timer_count": 0,
            },
        )

    async def release(self, passage_timeout: float) -> PassageResult:
        spec = self._bus.spec(self._address)
        if self._address in self._bus.held_open:
            return PassageResult.UNKNOWN  # held free (evacuation): already open
        passed = self._bus._input_waiter(self._address, spec.passage_input_no)
        try:
            await self._bus.submit(
                self._address,
                {
                    "command": osdp.Command.Output,
                    "output_no": spec.output_no,
                    "control_code": OUT_TEMPORARY_ON,
                    "timer_count": max(1, min(255, spec.release_ms // 100)),
                },
            )
            try:
                async with asyncio.timeout(passage_timeout):
                    await passed
                result = PassageResult.PASSED
            except (TimeoutError, HeldFree):
                result = PassageResult.NOT_PASSED
        finally:
            passed.cancel()
        if self._address in self._bus.held_open:  # the fire alarm came meanwhile: stay free
            return result
        try:
            await self._bus.submit(
                self._address,
                {
                    "command": osdp.Command.Output,
                    "output_no": spec.output_no,
                    "control_code": OUT_PERMANENT_OFF,
                    "timer_count": 0,
                },
            )
        except HardwareError:  # the reader went away after the passage; its own timer re-locks
            log.warning("reader %s: re-lock after passage not sent", spec.reader_id)
        return result
