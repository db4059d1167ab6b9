"""A school daemon in a child process, fed through FIFOs, for kill tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from edge.store import EdgeStore
from protocol.messages import Event
from simulators.edge_school import EdgeSchool, card, spawn_daemon
from tests.support.wait import wait_until


@dataclass
class School(EdgeSchool):
    """The school's edge directory (simulators/edge_school.py), its roster imported by the real
    command; a small school by default."""

    students: int = 40

    def card(self, i: int) -> str:
        return card(i)

    def write(self) -> None:
        self.write_files()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "qaqpa.cli",
                "edge",
                "import-roster",
                "--config",
                str(self.config),
                "--roster",
                str(self.root / "roster.json"),
            ],
            check=True,
            capture_output=True,
        )

    def start(self, crash_at: str | None = None) -> Daemon:
        env = dict(os.environ)
        env.pop("QAQPA_CRASH_AT", None)
        if crash_at:
            env["QAQPA_CRASH_AT"] = crash_at
        return Daemon(self, spawn_daemon(self.config, subprocess.PIPE, env))

    def journal(self) -> list[Event]:
        async def read() -> list[Event]:
            async with await EdgeStore.open(
                self.root / "edge.sqlite", school="S1", device="edge-1", create=False
            ) as store:
                return await store.journal_rows()

        return asyncio.run(read())

    def ledger(self) -> list[tuple[str, str, str, int]]:
        async def read() -> list[tuple[str, str, str, int]]:
            async with await EdgeStore.open(
                self.root / "edge.sqlite", school="S1", device="edge-1", create=False
            ) as store:
                return await store.meal_ledger()

        return asyncio.run(read())


class Daemon:
    def __init__(self, school: School, proc: subprocess.Popen[bytes]) -> None:
        self.school = school
        self.proc = proc
        self._fds: dict[str, int] = {}

    def tap(self, terminal: str, credential: str) -> None:
        fd = self._fds.get(terminal)
        if fd is None:
            fd = os.open(self.school.fifo(terminal), os.O_RDWR | os.O_NONBLOCK)
            self._fds[terminal] = fd
        os.write(fd, (credential + "\n").encode())

    def tap_and_wait(self, terminal: str, credential: str, timeout: float = 15.0) -> bool:
        """Tap; True when the terminal actuated, False when the daemon died first."""
        before = len(self.school.actuation_lines())
        self.tap(terminal, credential)

        def outcome() -> str | None:
            if len(self.school.actuation_lines()) > before:
                return "actuated"
            return "died" if self.proc.poll() is not None else None

        what = f"an actuation or the daemon's exit after tapping {terminal}"
        return wait_until(outcome, timeout, what, interval=0.01) == "actuated"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        finally:
            self.close_fifos()
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=15)
        self.close_fifos()

    def close_fifos(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
