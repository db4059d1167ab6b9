"""OSDP card-to-relay round trip: the baseline with bare libosdp, and a rig for Qaqpa's driver.

The round trip is the time from a PD presenting a card to the same PD receiving the output
(relay) command the control panel sends in reaction to that card. Both sides run in this
process over the two ends of a pty with secure channel on, as in production; libosdp polls
every 20 ms on each side, so that is the floor.

* :func:`bare_round_trip` ``(n) -> list[float]`` — libosdp ``ControlPanel`` and
  ``PeripheralDevice`` only, no Qaqpa code: the CP's event callback submits the output command
  directly from libosdp's thread. This is the baseline.
* :func:`driver_round_trip` ``(n) -> list[float]`` (async) — the same through Qaqpa's
  :class:`hardware.osdp.OsdpBus`: card event -> ``CredentialRead`` on the event loop ->
  ``OsdpGate.release`` -> output command.
* :class:`OsdpRig` — for the full edge pipeline: a simulated PD and Qaqpa's driver, exposing
  the ``Reader``, ``Gate`` and ``Feedback`` the pipeline uses, and the PD-side clock::

      async with OsdpRig() as rig:
          # give rig.reader / rig.gate / rig.feedback to the pipeline (reader_id rig.reader_id)
          t = await rig.round_trip(facility=12, card=34567)   # seconds, card -> output
          # or by hand: t0 = rig.present(12, 34567); t1 = await rig.output_received(t0, 5.0)

  The rig's reader is an :class:`hardware.osdp.OsdpPdReader` (enter it, or let the pipeline
  enter it; the rig enters nothing itself except the PD). ``rig.card_credential(f, c)`` gives
  the credential string (``W26:FFF:CCCCC``) the pipeline will see, to bind it in the roster.

A benchmark prints ratios to :func:`bare_round_trip` measured in the same run. Keep the gap
between cards (default 0.3 s) for both: after a release the PD reports the passage input and
the driver re-locks, and a card presented while that traffic is on the line waits behind it.
Measured here (2 shared cores): bare median ~85 ms, driver median ~125 ms (ratio ~1.5).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
import tty
from types import TracebackType
from typing import Any

import osdp

from hardware import wiegand
from hardware.base import PassageResult
from hardware.osdp import OsdpBus, OsdpFeedback, OsdpGate, OsdpPdReader, OsdpReaderSpec
from hardware.osdp import serial_channel_factory as _serial_channel_factory
from simulators.osdp_pd import PtyBus, SimulatedPd

BENCH_KEY = bytes.fromhex("5a1c0e93b2f4d6a8c0e2f4a6b8d0c2e4")
_CARD = wiegand.encode(26, 12, 34567)


class _FdChannel(osdp.Channel):  # type: ignore[misc]
    """Minimal non-blocking pty channel for the baseline (deliberately not Qaqpa's)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        os.set_blocking(fd, False)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self._fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self._fd, buf)
        except BlockingIOError:
            return 0

    def flush(self) -> None:
        pass


def bare_round_trip(n: int, *, gap: float = 0.3, timeout: float = 5.0) -> list[float]:
    """``n`` card -> output round trips (seconds) with bare libosdp over a pty, SC on."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    received = threading.Event()
    arrival = [0.0]

    def pd_command(command: dict[str, Any]) -> tuple[int, None]:
        if command.get("command") == osdp.Command.Output:
            arrival[0] = time.monotonic()
            received.set()
        return 0, None

    caps = osdp.PDCapabilities([(osdp.Capability.OutputControl, 1, 1)])
    pd = osdp.PeripheralDevice(
        osdp.PDInfo(1, _FdChannel(slave), scbk=BENCH_KEY, flags=[osdp.LibFlag.EnforceSecure]),
        caps,
        log_level=osdp.LogLevel.Error,
        command_handler=pd_command,
    )
    cp: osdp.ControlPanel | None = None

    def cp_event(_pd: int, event: dict[str, Any]) -> int:
        if event.get("event") == osdp.Event.CardRead and cp is not None:
            # In libosdp's own thread, lock held by refresh(): call the C context directly.
            cp.ctx.submit_command(
                0,
                {
                    "command": osdp.Command.Output,
                    "output_no": 0,
                    "control_code": 5,
                    "timer_count": 10,
                },
            )
        return 0

    cp = osdp.ControlPanel(
        [osdp.PDInfo(1, _FdChannel(master), scbk=BENCH_KEY, flags=[osdp.LibFlag.EnforceSecure])],
        log_level=osdp.LogLevel.Error,
        event_handler=cp_event,
    )
    times: list[float] = []
    pd.start()
    cp.start()
    try:
        deadline = time.monotonic() + 10
        while not (cp.is_online(1) and cp.is_sc_active(1)):
            if time.monotonic() > deadline:
                raise RuntimeError("bare libosdp pair did not come online")
            time.sleep(0.05)
        for _ in range(n):
            received.clear()
            start = time.monotonic()
            pd.submit_event(
                {
                    "event": osdp.Event.CardRead,
                    "reader_no": 0,
                    "direction": 0,
                    "format": osdp.CardFormat.Wiegand,
                    "length": _CARD.bits,
                    "data": wiegand.frame_to_bytes(_CARD),
                }
            )
            if not received.wait(timeout):
                raise RuntimeError("no output command within the timeout")
            times.append(arrival[0] - start)
            time.sleep(gap)
    finally:
        cp.teardown()
        pd.teardown()
        os.close(master)
        os.close(slave)
    return times


class OsdpRig:
    """A simulated turnstile PD + Qaqpa's OSDP driver, ready for the edge pipeline."""

    def __init__(self, reader_id: str = "bench-turnstile", address: int = 1) -> None:
        self.reader_id = reader_id
        self._address = address
        self._line: PtyBus | None = None
        self.pd: SimulatedPd | None = None
        self.bus: OsdpBus | None = None
        self.reader: OsdpPdReader | None = None
        self.gate: OsdpGate | None = None
        self.feedback: OsdpFeedback | None = None

    async def __aenter__(self) -> OsdpRig:
        line = PtyBus()
        self._line = line
        self.pd = line.attach(self._address, BENCH_KEY, passage_delay=0.01)
        self.bus = OsdpBus(
            "bench-bus",
            _serial_channel_factory(line.port, 115200),
            [OsdpReaderSpec(self.reader_id, self._address, BENCH_KEY)],
        )
        self.reader = self.bus.reader(self.reader_id)
        self.gate = self.bus.gate(self.reader_id)
        self.feedback = self.bus.feedback(self.reader_id)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._line is not None:
            await asyncio.to_thread(self._line.close)
            self._line = None

    @staticmethod
    def card_credential(facility: int, card: int) -> str:
        return wiegand.decode(wiegand.encode(26, facility, card))

    def present(self, facility: int, card: int) -> float:
        """Present a 26-bit card at the PD; returns ``time.monotonic()`` just before."""
        assert self.pd is not None
        start = time.monotonic()
        if not self.pd.present_card(26, facility, card):
            raise RuntimeError("the simulated PD refused the card event (offline?)")
        return start

    async def output_received(self, since: float, within: float) -> float:
        """When the PD received the next output command after ``since``; raises on timeout."""
        assert self.pd is not None
        at = await asyncio.to_thread(
            self.pd.wait_command_time,
            lambda c: c.get("command") == osdp.Command.Output and c.get("control_code") == 5,
            since,
            within,
        )
        if at is None:
            raise TimeoutError("no output command reached the PD")
        return at

    async def wait_online(self, within: float = 10.0) -> None:
        assert self.bus is not None
        async with asyncio.timeout(within):
            await self.bus.wait_online(self.reader_id)

    async def round_trip(self, facility: int, card: int, within: float = 5.0) -> float:
        """Present a card and wait for the pipeline's release to reach the PD: seconds."""
        start = self.present(facility, card)
        return await self.output_received(start, within) - start


async def driver_round_trip(n: int, *, gap: float = 0.3) -> list[float]:
    """``n`` round trips through Qaqpa's OSDP driver alone (no pipeline): read -> release."""
    times: list[float] = []
    async with OsdpRig() as rig:
        assert rig.reader is not None and rig.gate is not None
        async with rig.reader:
            await rig.wait_online()
            events = rig.reader.events()
            for i in range(n):
                start = rig.present(12, i % 65536)
                async with asyncio.timeout(5):
                    async for event in events:
                        if getattr(event, "credential", None):
                            break
                result = await rig.gate.release(2.0)
                if result is not PassageResult.PASSED:
                    raise RuntimeError(f"turnstile reported {result}")
                times.append(await rig.output_received(start, 5.0) - start)
                await asyncio.sleep(gap)
    return times


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"n={len(ms)} median={statistics.median(ms):.1f}ms p95={p95:.1f}ms max={ms[-1]:.1f}ms"


if __name__ == "__main__":
    bare = bare_round_trip(20)
    driver = asyncio.run(driver_round_trip(20))
    print("bare libosdp :", summary(bare))
    print("qaqpa driver :", summary(driver))
    print(f"ratio (median): {statistics.median(driver) / statistics.median(bare):.2f}")
