"""The keyboard-wedge line reader and the file (``log``) gate: chosen by ``type`` like every other
driver, read from a real FIFO and appended to a real file; the gate's lines survive a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from hardware.base import CredentialRead, HardwareError, Misread, ReaderEvent, ReaderStatus
from hardware.config import GateConfig, ReaderConfig, open_gate, open_reader
from hardware.log_gate import LogGate
from hardware.wedge import LineReader


class Terminal(BaseModel):
    reader: ReaderConfig
    gate: GateConfig | None = None


async def test_line_reader_by_type_reads_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "desk.fifo"
    os.mkfifo(fifo)
    term = Terminal.model_validate(
        {"reader": {"type": "line", "reader_id": "desk-1", "path": str(fifo)}}
    )
    reader = open_reader(term.reader)
    assert isinstance(reader, LineReader)
    async with reader:
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(writer, b"0004567891\nMF:04A1B2\nnot a card!\n")
        finally:
            os.close(writer)
        got: list[ReaderEvent] = []
        async with asyncio.timeout(10):
            async for event in reader.events():
                got.append(event)
                if len(got) == 4:
                    break
    assert got[0] == ReaderStatus("desk-1", True, "opened")
    reads = [e for e in got if isinstance(e, CredentialRead)]
    assert [(r.reader_id, r.credential) for r in reads] == [
        ("desk-1", "EM:0004567891"),
        ("desk-1", "MF:04A1B2"),
    ]
    assert isinstance(got[3], Misread)


async def test_log_gate_by_type_appends_one_line_per_actuation(tmp_path: Path) -> None:
    path = tmp_path / "actuations.log"
    term = Terminal.model_validate(
        {
            "reader": {"type": "line", "path": "/dev/null"},
            "gate": {"type": "log", "gate_id": "gate-1", "path": str(path)},
        }
    )
    assert term.gate is not None
    gate = open_gate(term.gate)
    assert isinstance(gate, LogGate)
    async with gate:
        await gate.actuate(1, True)
        await gate.actuate(2, False)
    async with LogGate("gate-2", path) as other:  # a restart appends, never truncates
        await other.actuate(3, True)
    assert path.read_text().splitlines() == ["gate-1 1 open", "gate-1 2 red", "gate-2 3 open"]


async def test_log_gate_without_its_directory_says_so(tmp_path: Path) -> None:
    gate = LogGate("gate-1", tmp_path / "missing" / "actuations.log")
    with pytest.raises(HardwareError, match=r"gate gate-1: cannot open .*missing"):
        await gate.__aenter__()
    with pytest.raises(HardwareError, match="not open"):
        await gate.actuate(1, True)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from hardware.log_gate import LogGate

    async def main() -> None:
        async with LogGate("gate-1", Path(sys.argv[1])) as gate:
            seq = 0
            while True:
                seq += 1
                await gate.actuate(seq, seq % 3 != 0)
                print(seq, flush=True)  # only once the line is durable

    asyncio.run(main())
    """
)


def test_log_gate_lines_survive_a_sigkill(tmp_path: Path) -> None:
    """Every actuation the gate reported done is in the file, and every line is whole."""
    path = tmp_path / "actuations.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = 0
    try:
        for line in proc.stdout:
            acknowledged = int(line)
            if acknowledged >= 200:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert acknowledged >= 200
    lines = path.read_text().splitlines()
    seqs = []
    for line in lines:
        gate_id, seq, verdict = line.split(" ")
        assert gate_id == "gate-1"
        assert verdict == ("red" if int(seq) % 3 == 0 else "open")
        seqs.append(int(seq))
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= acknowledged
