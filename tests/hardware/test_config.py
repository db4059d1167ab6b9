"""Reader and gate configuration: validation, discriminated unions, factories; and two OSDP
terminals configured on one port sharing one bus end to end."""

from __future__ import annotations

import asyncio

import osdp
import pytest
from pydantic import BaseModel, ValidationError

from hardware.base import CredentialRead, PassageResult, ReaderStatus
from hardware.config import (
    GateConfig,
    OsdpBuses,
    ReaderConfig,
    open_feedback,
    open_gate,
    open_reader,
)
from hardware.osdp import OsdpGate, OsdpPdReader
from hardware.pcsc import PcscMonitor
from hardware.relay import RelayGate
from hardware.serial_reader import SerialLineReader
from simulators.osdp_pd import PtyBus
from tests.support.hardware import EventLog

KEY = "000102030405060708090a0b0c0d0e0f"


class Terminal(BaseModel):
    reader: ReaderConfig
    gate: GateConfig | None = None


def test_union_picks_the_model_by_type_and_forbids_extras() -> None:
    term = Terminal.model_validate(
        {
            "reader": {"type": "em_marine", "reader_id": "d1", "port": "/dev/ttyUSB0"},
            "gate": {"type": "relay_serial", "port": "/dev/ttyUSB1", "channel": 2},
        }
    )
    assert isinstance(open_reader(term.reader), SerialLineReader)
    assert term.gate is not None and isinstance(open_gate(term.gate), RelayGate)
    with pytest.raises(ValidationError, match="extra"):
        Terminal.model_validate(
            {"reader": {"type": "pcsc", "reader_id": "d", "reader_name": "x", "colour": 1}}
        )
    with pytest.raises(ValidationError):
        Terminal.model_validate({"reader": {"type": "barcode", "reader_id": "d"}})
    pcsc = Terminal.model_validate(
        {"reader": {"type": "pcsc", "reader_id": "d", "reader_name": "x"}}
    )
    assert isinstance(open_reader(pcsc.reader), PcscMonitor)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "scbk is required"),
        ({"scbk": "303132333435363738393A3B3C3D3E3F"}, "default or trivial"),
        ({"scbk": "00" * 16}, "default or trivial"),
        ({"scbk": "abcd"}, "32 hex digits"),
        ({"scbk": KEY, "secure": False}, "secure = false"),
    ],
)
def test_osdp_key_rules(fields: dict[str, object], message: str) -> None:
    reader = {"type": "osdp", "reader_id": "t1", "port": "/dev/ttyS0", "address": 1, **fields}
    with pytest.raises(ValidationError, match=message):
        Terminal.model_validate({"reader": reader})


def test_osdp_key_is_not_printed() -> None:
    reader = {"type": "osdp", "reader_id": "t1", "port": "/dev/ttyS0", "address": 1, "scbk": KEY}
    term = Terminal.model_validate({"reader": reader})
    assert KEY not in repr(term) and KEY not in str(term.model_dump())


async def test_two_osdp_terminals_on_one_port_share_a_bus() -> None:
    with PtyBus() as line:
        pd1 = line.attach(1, bytes.fromhex(KEY))
        pd2 = line.attach(2, bytes.fromhex(KEY[::-1]))
        terminals = [
            Terminal.model_validate(
                {
                    "reader": {
                        "type": "osdp",
                        "reader_id": f"t{a}",
                        "port": line.port,
                        "baudrate": 115200,
                        "address": a,
                        "scbk": key,
                    },
                    "gate": {"type": "osdp_output"},
                }
            )
            for a, key in ((1, KEY), (2, KEY[::-1]))
        ]
        buses = OsdpBuses()
        for term in terminals:
            buses.add(term.reader)  # type: ignore[arg-type]
        readers = [open_reader(term.reader, buses) for term in terminals]
        assert all(isinstance(r, OsdpPdReader) for r in readers)
        assert readers[0].bus is readers[1].bus  # type: ignore[attr-defined]
        logs = [EventLog(), EventLog()]
        async with readers[0], readers[1], asyncio.TaskGroup() as tg:
            consumers = [
                tg.create_task(log.consume(r.events()))
                for log, r in zip(logs, readers, strict=True)
            ]
            for log in logs:
                await log.wait_for(lambda e: isinstance(e, ReaderStatus) and e.online, 5)
            pd2.present_card(26, 3, 4)
            got = await logs[1].wait_for(lambda e: isinstance(e, CredentialRead), 5)
            assert got.reader_id == "t2" and got.credential == "W26:003:00004"  # type: ignore[union-attr]
            assert not logs[0].of_type(CredentialRead)
            gate = open_gate(terminals[0].gate, readers[0])  # type: ignore[arg-type]
            assert isinstance(gate, OsdpGate)
            async with gate:
                assert await gate.release(3.0) is PassageResult.PASSED
            feedback = open_feedback(readers[0])
            assert feedback is not None
            await feedback.show(True)
            for c in consumers:
                c.cancel()
        assert (
            pd1.wait_command(lambda c: c["command"] == osdp.Command.Output, 0) is not None
        )  # output on PD 1
        assert not pd2.commands or all(c["command"] != osdp.Command.Output for c in pd2.commands)
