"""LCUS relay gate against a simulated board on a pty, through pyserial."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hardware.base import HardwareError, PassageResult
from hardware.relay import RelayGate, lcus_command, parse_lcus
from hardware.serial_reader import serial_port_factory
from simulators.serial_sim import RelayBoardSim


def test_lcus_frames() -> None:
    assert lcus_command(1, True) == bytes.fromhex("A00101A2")
    assert lcus_command(1, False) == bytes.fromhex("A00100A1")
    assert lcus_command(4, True) == bytes.fromhex("A00401A5")
    noisy = b"\x00\xa0" + lcus_command(2, True) + bytes.fromhex("A00101A3") + lcus_command(2, False)
    assert parse_lcus(noisy) == ([(2, True), (2, False)], 6)
    with pytest.raises(ValueError):
        lcus_command(9, True)


class _Sensor:
    def __init__(self, passes: bool) -> None:
        self.passes = passes

    async def wait_passage(self, within: float) -> bool:
        if self.passes:
            await asyncio.sleep(0.01)
            return True
        await asyncio.sleep(within)
        return False


class _LateSensor:
    """Someone walks through ``after`` seconds after the release (or later than asked)."""

    def __init__(self, after: float) -> None:
        self.after = after

    async def wait_passage(self, within: float) -> bool:
        await asyncio.sleep(self.after)
        return self.after <= within


async def _switches(board: RelayBoardSim, count: int) -> list[tuple[float, int, bool]]:
    switches = await asyncio.to_thread(board.wait_switches, count, 3.0)
    assert len(switches) >= count, switches
    return switches


async def test_pulse_open_for_n_ms(tmp_path: Path) -> None:
    board = RelayBoardSim(tmp_path / "relay0")
    board.plug()
    try:
        async with RelayGate(
            "door-1", serial_port_factory(str(board.path)), channel=2, pulse_ms=200
        ) as gate:
            assert await gate.release(1.0) is PassageResult.UNKNOWN
            (t_on, ch_on, on), (t_off, ch_off, off) = await _switches(board, 2)
        assert (ch_on, on, ch_off, off) == (2, True, 2, False)
        assert 0.15 <= t_off - t_on <= 1.0
        assert board.invalid_bytes == 0
    finally:
        board.close()


async def test_sensor_gives_passed_or_not(tmp_path: Path) -> None:
    board = RelayBoardSim(tmp_path / "relay0")
    board.plug()
    try:
        factory = serial_port_factory(str(board.path))
        async with RelayGate("t-1", factory, pulse_ms=50, sensor=_Sensor(True)) as gate:
            assert await gate.release(1.0) is PassageResult.PASSED
        async with RelayGate("t-1", factory, pulse_ms=50, sensor=_Sensor(False)) as gate:
            assert await gate.release(0.2) is PassageResult.NOT_PASSED
        assert [(c, on) for _, c, on in await _switches(board, 4)] == [
            (1, True),
            (1, False),
            (1, True),
            (1, False),
        ]
    finally:
        board.close()


async def test_unplugged_board_raises_and_replug_recovers(tmp_path: Path) -> None:
    board = RelayBoardSim(tmp_path / "relay0")
    board.plug()
    try:
        async with RelayGate("door-1", serial_port_factory(str(board.path)), pulse_ms=10) as gate:
            board.unplug()
            with pytest.raises(HardwareError):
                await gate.release(0.1)
            assert not gate.available
            board.plug()
            assert await gate.release(0.1) is PassageResult.UNKNOWN
            assert gate.available
            assert [(c, on) for _, c, on in await _switches(board, 2)] == [(1, True), (1, False)]
    finally:
        board.close()


async def test_the_fire_alarm_holds_the_contact_closed_through_a_release(tmp_path: Path) -> None:
    board = RelayBoardSim(tmp_path / "relay0")
    board.plug()
    try:
        async with RelayGate(
            "exit-1", serial_port_factory(str(board.path)), channel=3, pulse_ms=300
        ) as gate:
            pulse = asyncio.create_task(gate.release(1.0))  # a tap's release under way
            await _switches(board, 1)
            await gate.hold_open(True)  # the fire alarm
            assert await pulse is PassageResult.UNKNOWN
            assert await gate.release(1.0) is PassageResult.UNKNOWN  # held: nothing sent
            await asyncio.sleep(0.4)
            switches = await _switches(board, 2)
            assert [(ch, on) for _, ch, on in switches] == [(3, True), (3, True)]  # never off
            await gate.hold_open(False)  # the panel is reset
            switches = await _switches(board, 3)
            assert [(ch, on) for _, ch, on in switches][-1] == (3, False)
    finally:
        board.close()


async def test_a_release_waiting_for_its_passage_ends_not_passed_when_held_free(
    tmp_path: Path,
) -> None:
    """The fire alarm comes while a child's exit release waits for the passage sensor: whoever
    walks through the gate held free from then on is not that child, so the release ends at
    once as not passed (the child stays on the evacuation list), and the contact stays closed."""
    board = RelayBoardSim(tmp_path / "relay0")
    board.plug()
    try:
        factory = serial_port_factory(str(board.path))
        async with RelayGate("exit-1", factory, pulse_ms=50, sensor=_LateSensor(5.0)) as gate:
            release = asyncio.create_task(gate.release(10.0))
            await _switches(board, 2)  # the pulse is over: waiting for the passage
            await gate.hold_open(True)
            # it ends at the hold, not when the sensor fires 5 s later (it would say PASSED)
            assert await asyncio.wait_for(release, 3.0) is PassageResult.NOT_PASSED
            switches = await _switches(board, 3)
            assert [(c, on) for _, c, on in switches][-1] == (1, True)
        async with RelayGate("exit-1", factory, pulse_ms=50, sensor=_LateSensor(0.1)) as gate:
            assert await gate.release(2.0) is PassageResult.PASSED  # not held: as before
    finally:
        board.close()
