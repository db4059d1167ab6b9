"""A school daemon in a child process, fed through FIFOs, for kill tests and benchmarks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edge.store import EdgeStore
from protocol.messages import Event
from tests.support.wait import wait_until


def midday_zone() -> str:
    """An Etc/GMT zone where it is now between 06:00 and 18:00, far from the day's edges."""
    utc_hour = dt.datetime.now(dt.UTC).hour
    offset = 12 - utc_hour  # local = utc + offset
    offset = max(-12, min(14, offset))
    # Etc/GMT signs are inverted: Etc/GMT-5 is UTC+5
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


@dataclass
class School:
    root: Path
    students: int = 40
    terminals: dict[str, tuple[str, str | None]] = field(
        default_factory=lambda: {
            "gate-1": ("turnstile", "in"),
            "canteen-1": ("canteen", None),
            "canteen-2": ("canteen", None),
            "lib-1": ("library", None),
        }
    )

    @property
    def config(self) -> Path:
        return self.root / "edge.toml"

    @property
    def actuations(self) -> Path:
        return self.root / "actuations.log"

    def fifo(self, terminal: str) -> Path:
        return self.root / f"{terminal}.fifo"

    def card(self, i: int) -> str:
        return f"EM:{4_000_000_000 + i:010d}"

    def write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        roster = {
            "school": "S1",
            "students": [
                {
                    "id": f"s{i}",
                    "grade": 2 if i % 2 else 6,
                    "class": "2A" if i % 2 else "6A",
                    "shift": 1,
                    "cards": [self.card(i)],
                    "consent": {"data": True},
                    "categories": [],
                }
                for i in range(self.students)
            ],
            "staff": [],
        }
        (self.root / "roster.json").write_text(json.dumps(roster))
        (self.root / "policy.toml").write_text(
            f'timezone = "{midday_zone()}"\nfree_meal_grades = [1, 2, 3, 4]\n'
            'anti_passback = "off"\n'
            '[[shift]]\nnumber = 1\nentry_from = "00:00"\nentry_to = "23:59"\n'
            '[[meal_period]]\nname = "lunch"\nshifts = [1]\nfrom = "00:00"\nto = "23:59"\n'
        )
        lines = [
            'school = "S1"',
            'device = "edge-1"',
            'store = "edge.sqlite"',
            'policy = "policy.toml"',
        ]
        for tid, (kind, direction) in self.terminals.items():
            fifo = self.fifo(tid)
            if not fifo.exists():
                os.mkfifo(fifo)
            lines += [
                "[[terminal]]",
                f'id = "{tid}"',
                f'kind = "{kind}"',
                *([f'direction = "{direction}"'] if direction else []),
                f'reader = {{ type = "line", path = "{fifo}" }}',
                f'gate = {{ type = "log", path = "{self.actuations}" }}',
            ]
        self.config.write_text("\n".join(lines) + "\n")
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
        proc = subprocess.Popen(
            [sys.executable, "-m", "qaqpa.cli", "run", "--config", str(self.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return Daemon(self, proc)

    def actuation_lines(self) -> list[tuple[str, int, str]]:
        if not self.actuations.exists():
            return []
        out = []
        for line in self.actuations.read_text().splitlines():
            term, seq, verdict = line.split()
            out.append((term, int(seq), verdict))
        return out

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
