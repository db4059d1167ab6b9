"""Simulated OSDP turnstile readers: libosdp ``PeripheralDevice`` s on the far end of a pty.

:class:`PtyBus` is the RS-485 line: the control panel opens :attr:`PtyBus.port` (a pty name)
like ``/dev/ttyUSB0``; every PD attached to the bus sees every byte the CP sends (a hub thread
copies them to each PD, as RS-485 does) and writes its replies back.

:class:`SimulatedPd` is one reader + turnstile: :meth:`present_wiegand`, :meth:`present_card`
(26/34-bit facility + card) and :meth:`present_uid` submit card reads; an output command
(release) is answered, after ``passage_delay``, with an input status report with the passage
input active, then inactive (someone walked through). :meth:`turn_back_next` makes the next
release go unused (a student who turns back: no input event). :meth:`go_silent` stops
answering (as if unpowered) and :meth:`resume` starts again. A wrong key is simply a
``scbk`` other than the CP's. Every command received is recorded in :attr:`commands`.

Example::

    with PtyBus() as bus:
        pd = bus.attach(address=1, scbk=key)
        driver = OsdpBus("bus-1", serial_channel_factory(bus.port), [OsdpReaderSpec(...)])
        ...
        pd.present_card(26, 12, 34567)
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import osdp

from hardware import wiegand

OUTPUT_ON_CODES = frozenset({2, 4, 5})  # permanent ON (2, 4) and temporary ON (5)


class PdChannel(osdp.Channel):  # type: ignore[misc]
    """One PD's view of the bus: bytes from the hub in, replies straight to the pty."""

    def __init__(self, bus: PtyBus) -> None:
        super().__init__()
        self._bus = bus
        self._rx: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self.silent = False

    def deliver(self, data: bytes) -> None:
        with self._lock:
            self._rx.append(data)

    def read(self, max_bytes: int) -> bytes:
        with self._lock:
            if not self._rx:
                return b""
            chunk = self._rx.popleft()
            if len(chunk) > max_bytes:
                self._rx.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
        return b"" if self.silent else chunk

    def write(self, buf: bytes) -> int:
        if self.silent:
            return len(buf)  # the bytes go nowhere, as from an unpowered reader
        return self._bus.write_to_cp(buf)

    def flush(self) -> None:
        pass


class SimulatedPd:
    """A turnstile reader with a passage sensor, on a :class:`PtyBus`."""

    def __init__(
        self,
        bus: PtyBus,
        address: int,
        scbk: bytes | None,
        *,
        output_no: int = 0,
        passage_input_no: int = 0,
        passage_delay: float = 0.05,
        inputs: int = 4,
    ) -> None:
        self.address = address
        self.output_no = output_no
        self.passage_input_no = passage_input_no
        self.passage_delay = passage_delay
        self.passage = True  # whether a released turnstile is walked through
        self._turn_back_once = False
        self._inputs = inputs
        self._input_state = bytearray(inputs)
        self._input_lock = threading.Lock()
        self.channel = PdChannel(bus)
        self.commands: list[dict[str, Any]] = []
        self.command_times: list[float] = []  # time.monotonic() when each command arrived
        self._commands_changed = threading.Condition()
        self.on_command: Callable[[dict[str, Any]], None] | None = None
        flags = [osdp.LibFlag.EnforceSecure] if scbk is not None else []
        caps = osdp.PDCapabilities(
            [
                (osdp.Capability.OutputControl, 1, 4),
                (osdp.Capability.ContactStatusMonitoring, 1, inputs),
                (osdp.Capability.LEDControl, 1, 1),
                (osdp.Capability.AudibleControl, 1, 1),
                (osdp.Capability.CardDataFormat, 1, 1),
            ]
        )
        self._pd = osdp.PeripheralDevice(
            osdp.PDInfo(address, self.channel, scbk=scbk, flags=flags, name=f"sim-pd-{address}"),
            caps,
            log_level=osdp.LogLevel.Error,
            command_handler=self._command,
        )
        self._timers: list[threading.Timer] = []
        self._started = False

    # -- life cycle
    def start(self) -> None:
        if not self._started:
            self._pd.start()
            self._started = True

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._started:
            self._pd.stop()
            self._started = False

    def go_silent(self) -> None:
        self.channel.silent = True

    def resume(self) -> None:
        self.channel.silent = False

    @property
    def secure_channel_active(self) -> bool:
        return bool(self._pd.is_sc_active())

    # -- card reads
    def present_wiegand(self, frame: wiegand.WiegandFrame, reader_no: int = 0) -> bool:
        return self._submit(
            {
                "event": osdp.Event.CardRead,
                "reader_no": reader_no,
                "direction": 0,
                "format": osdp.CardFormat.Wiegand,
                "length": frame.bits,
                "data": wiegand.frame_to_bytes(frame),
            }
        )

    def present_card(self, bits: int, facility: int, card: int) -> bool:
        return self.present_wiegand(wiegand.encode(bits, facility, card))

    def present_uid(self, uid: bytes, reader_no: int = 0) -> bool:
        return self._submit(
            {
                "event": osdp.Event.CardRead,
                "reader_no": reader_no,
                "direction": 0,
                "format": osdp.CardFormat.Unspecified,
                "length": len(uid) * 8,
                "data": uid,
            }
        )

    def press_keys(self, keys: str, reader_no: int = 0) -> bool:
        """Keys on the reader's keypad, as OSDP sends them: ASCII digits, ``#`` as CR (0x0D),
        ``*`` as DEL (0x7F)."""
        data = keys.replace("#", "\r").replace("*", "\x7f").encode("ascii")
        return self._submit({"event": osdp.Event.KeyPress, "reader_no": reader_no, "data": data})

    def set_input(self, input_no: int, active: bool) -> bool:
        """Change one input; the report carries every input's state, as a PD's does (the
        passage sensor's pulse leaves a fire-alarm contact on another input as it is)."""
        with self._input_lock:
            self._input_state[input_no] = 1 if active else 0
            report = bytearray(self._input_state)
        return self._submit(
            {
                "event": osdp.Event.Status,
                "type": osdp.StatusReportType.Input,
                "report": bytes(report),
            }
        )

    def _submit(self, event: dict[str, Any]) -> bool:
        return bool(self._pd.submit_event(event))

    # -- turnstile
    def turn_back_next(self) -> None:
        """The next release is not walked through (no passage input)."""
        self._turn_back_once = True

    def _command(self, command: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        # Runs in libosdp's PD thread with its lock held: never submit an event from here.
        with self._commands_changed:
            self.commands.append(command)
            self.command_times.append(time.monotonic())
            self._commands_changed.notify_all()
        if self.on_command is not None:
            self.on_command(command)
        if (
            command.get("command") == osdp.Command.Output
            and command.get("output_no") == self.output_no
            and command.get("control_code") in OUTPUT_ON_CODES
        ):
            if self._turn_back_once:
                self._turn_back_once = False
            elif self.passage:
                self._later(self.passage_delay, self.set_input, self.passage_input_no, True)
                self._later(self.passage_delay + 0.1, self.set_input, self.passage_input_no, False)
        return 0, None

    def _later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        timer = threading.Timer(delay, fn, args)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()]
        self._timers.append(timer)
        timer.start()

    def wait_command(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        """The first recorded command matching ``predicate``, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._commands_changed:
            while True:
                for command in self.commands:
                    if predicate(command):
                        return command
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._commands_changed.wait(left)

    def wait_command_time(
        self, predicate: Callable[[dict[str, Any]], bool], since: float, timeout: float
    ) -> float | None:
        """``time.monotonic()`` at which the first command matching ``predicate`` and received
        at or after ``since`` arrived, waiting up to ``timeout`` s; None on timeout."""
        deadline = time.monotonic() + timeout
        with self._commands_changed:
            while True:
                for command, at in zip(self.commands, self.command_times, strict=True):
                    if at >= since and predicate(command):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._commands_changed.wait(left)


class PtyBus:
    """A simulated RS-485 line on a pty: the CP opens :attr:`port`; PDs attach to the far end.

    With ``link`` the port is published as that path (a symlink, like
    ``/dev/serial/by-id/...``), and :meth:`unplug` / :meth:`replug` pull the USB-RS485
    adapter out and put it back: the pty closes (the CP's reads fail) and a new one appears
    behind the same path. The PDs stay powered throughout.
    """

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self._link = None if link is None else Path(link)
        self._pds: list[SimulatedPd] = []
        self._write_lock = threading.Lock()
        self._master = -1
        self._slave = -1
        self.port = ""
        self._stop = threading.Event()
        self._hub: threading.Thread | None = None
        self.replug()

    def replug(self) -> None:
        """Create the pty (again) and start relaying bytes to the PDs."""
        self.unplug()
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master = master
        self._slave = slave  # kept open so the PD side never sees a hang-up between CP opens
        name = os.ttyname(slave)
        if self._link is not None:
            tmp = self._link.with_name(self._link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(name)
            tmp.replace(self._link)
            self.port = str(self._link)
        else:
            self.port = name
        self._stop = threading.Event()
        self._hub = threading.Thread(target=self._fan_out, name="osdp-sim-hub", daemon=True)
        self._hub.start()

    def unplug(self) -> None:
        """Close the pty: the CP's port fails as when a USB adapter is pulled out."""
        self._stop.set()
        if self._hub is not None:
            self._hub.join(1.0)
            self._hub = None
        if self._link is not None:
            self._link.unlink(missing_ok=True)
        with self._write_lock:
            for fd in (self._master, self._slave):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = -1

    def attach(self, address: int, scbk: bytes | None, **kwargs: Any) -> SimulatedPd:
        """Add a PD at ``address`` and start it."""
        pd = SimulatedPd(self, address, scbk, **kwargs)
        self._pds.append(pd)
        pd.start()
        return pd

    def write_to_cp(self, data: bytes) -> int:
        with self._write_lock:
            if self._master < 0:
                return len(data)  # unplugged: the bytes go nowhere
            try:
                return os.write(self._master, data)
            except OSError:
                return 0

    def _fan_out(self) -> None:
        master, stop = self._master, self._stop
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                if stop.wait(0.05):
                    return
                continue
            for pd in list(self._pds):
                pd.channel.deliver(data)

    def close(self) -> None:
        for pd in self._pds:
            pd.stop()
        self.unplug()

    def __enter__(self) -> PtyBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
