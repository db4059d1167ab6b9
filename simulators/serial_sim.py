"""Serial card readers on a pty: a 125 kHz EM-Marine module, a Wiegand-to-serial converter and a
magnetic stripe reader, speaking the bytes the drivers in :mod:`hardware.serial_reader` and
:mod:`hardware.magstripe` expect.

A :class:`PtyDevice` publishes its port at a stable path (a symlink, like
``/dev/serial/by-id/...``) so the driver can be pointed at it once; :meth:`PtyDevice.unplug`
closes the pty and removes the link (the driver's read fails, as with a USB cable pulled out),
:meth:`PtyDevice.replug` makes a fresh pty behind the same path.

Usage::

    sim = EmMarineSim(tmp_path / "em0")
    sim.plug()
    reader = em_marine_reader("desk-1", serial_port_factory(str(sim.path)))
    sim.present_card(4567891)  # -> CredentialRead(credential="EM:0004567891")
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
import tty
from pathlib import Path

from hardware.magstripe import track2_swipe
from hardware.relay import parse_lcus
from hardware.serial_reader import em_frame
from hardware.wiegand import WiegandFrame


class PtyDevice:
    """The device end of a pty, reachable by the driver at :attr:`path`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._master: int | None = None
        self._slave: int | None = None

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        if self._master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.path)

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def replug(self) -> None:
        self.unplug()
        self.plug()

    def close(self) -> None:
        self.unplug()

    def write(self, data: bytes) -> None:
        if self._master is None:
            raise OSError("simulated device is unplugged")
        view = memoryview(data)
        while view:
            written = os.write(self._master, view)
            view = view[written:]

    def read_available(self, size: int = 4096) -> bytes:
        """What the host wrote to the device (non-blocking; empty when nothing)."""
        if self._master is None:
            return b""
        os.set_blocking(self._master, False)
        try:
            return os.read(self._master, size)
        except BlockingIOError:
            return b""

    def inject_noise(self, size: int, seed: int | None = None) -> bytes:
        """Random bytes on the line (never STX, so a later good frame is not swallowed)."""
        rng = random.Random(seed)
        noise = bytes(rng.choice([b for b in range(256) if b not in (0x02,)]) for _ in range(size))
        self.write(noise)
        return noise


class EmMarineSim(PtyDevice):
    """An EM-Marine module: STX/ETX frames with XOR checksum, or decimal lines."""

    def present_card(self, card_id: int, *, framing: str = "stx", version: int = 0x0A) -> None:
        if framing == "stx":
            self.write(em_frame(card_id, version))
        elif framing == "line":
            self.write(f"{card_id:010d}\r\n".encode())
        else:
            raise ValueError(f"unknown framing {framing!r}")

    def send_bad_checksum(self, card_id: int) -> None:
        frame = bytearray(em_frame(card_id))
        frame[-2] = ord("0") if frame[-2] != ord("0") else ord("1")  # corrupt the checksum
        self.write(bytes(frame))

    def send_half_frame(self, card_id: int) -> None:
        self.write(em_frame(card_id)[:6])


class WiegandSerialSim(PtyDevice):
    """A Wiegand-to-serial converter sending ``W<bits>:<HEX>`` lines."""

    def present_frame(self, frame: WiegandFrame) -> None:
        self.write(f"W{frame.bits}:{frame.value:X}\r\n".encode())


class MagstripeSim(PtyDevice):
    """A serial track 2 reader: ``;PAN=...?`` + LRC + CR LF."""

    def swipe(self, pan: str, *, good_lrc: bool = True) -> None:
        text = track2_swipe(pan)
        if not good_lrc:
            text = text[:-1] + chr(0x30 + ((ord(text[-1]) - 0x30 + 1) % 16))
        self.write(text.encode() + b"\r\n")


class RelayBoardSim(PtyDevice):
    """An LCUS relay board: a thread decodes each command as it arrives and records it with
    the time it arrived (:attr:`switches`)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.switches: list[tuple[float, int, bool]] = []  # (monotonic, channel, on)
        self.invalid_bytes = 0
        self._pending = b""
        self._lock = threading.Condition()
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    def plug(self) -> None:
        super().plug()
        self._stop.clear()
        self._listener = threading.Thread(target=self._listen, name="relay-sim", daemon=True)
        self._listener.start()

    def unplug(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(1.0)
            self._listener = None
        super().unplug()

    def _listen(self) -> None:
        master = self._master
        assert master is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                self.poll()

    def poll(self) -> list[tuple[float, int, bool]]:
        """Decode what the host wrote so far; returns all switches seen."""
        with self._lock:
            data = self._pending + self.read_available()
            now = time.monotonic()
            head = data.rfind(0xA0)
            if head >= 0 and len(data) - head < 4:  # a command split across reads
                body, self._pending = data[:head], data[head:]
            else:
                body, self._pending = data, b""
            commands, skipped = parse_lcus(body)
            self.invalid_bytes += skipped
            self.switches.extend((now, channel, on) for channel, on in commands)
            self._lock.notify_all()
            return list(self.switches)

    def wait_switches(self, count: int, timeout: float) -> list[tuple[float, int, bool]]:
        """Block until ``count`` switches were seen (or ``timeout``); returns them."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.switches) >= count, timeout)
            return list(self.switches)
