"""A school's edge directory for a real daemon in a child process: roster, policy, edge.toml,
one FIFO a terminal for its reader and a file for its gate (``TERMINAL SEQ open|red``, fsynced
before the gate would move). Shared by the crash campaign (``qaqpa bench crash``) and the tests'
kill harness (tests/support/edge_harness.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
SCHOOL = "S1"
DEVICE = "edge-1"
TERMINALS: dict[str, tuple[str, str | None]] = {
    "gate-1": ("turnstile", "in"),
    "canteen-1": ("canteen", None),
    "canteen-2": ("canteen", None),
    "lib-1": ("library", None),
}


def midday_zone() -> str:
    """An Etc/GMT zone where it is now between 06:00 and 18:00, far from the day's edges: a run
    never crosses a day."""
    offset = max(-12, min(14, 12 - dt.datetime.now(dt.UTC).hour))  # local = utc + offset
    # Etc/GMT signs are inverted: Etc/GMT-5 is UTC+5
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


def card(i: int) -> str:
    return f"EM:{4_000_000_000 + i:010d}"


@dataclass
class EdgeSchool:
    """The directory; ``write_files`` makes it (no store yet: the subclass imports the roster)."""

    root: Path
    students: int = 300
    device: str = DEVICE
    terminals: dict[str, tuple[str, str | None]] = field(default_factory=lambda: dict(TERMINALS))

    @property
    def config(self) -> Path:
        return self.root / "edge.toml"

    @property
    def store(self) -> Path:
        return self.root / "edge.sqlite"

    @property
    def actuations(self) -> Path:
        return self.root / "actuations.log"

    def fifo(self, terminal: str) -> Path:
        return self.root / f"{terminal}.fifo"

    def write_files(self, key_dir: Path | None = None) -> None:
        """roster.json, policy.toml, edge.toml and the FIFOs."""
        self.root.mkdir(parents=True, exist_ok=True)
        roster = {
            "school": SCHOOL,
            "students": [
                {
                    "id": f"s{i}",
                    "grade": 2 if i % 2 else 6,  # odd: a free meal; even: none
                    "class": "2A" if i % 2 else "6A",
                    "shift": 1,
                    "cards": [card(i)],
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
            f'school = "{SCHOOL}"',
            f'device = "{self.device}"',
            'store = "edge.sqlite"',
            'policy = "policy.toml"',
        ]
        if key_dir is not None:
            lines.append(f'sync_key_dir = "{key_dir}"')
        for tid, (kind, direction) in self.terminals.items():
            if not self.fifo(tid).exists():
                os.mkfifo(self.fifo(tid))
            lines += [
                "[[terminal]]",
                f'id = "{tid}"',
                f'kind = "{kind}"',
                *([f'direction = "{direction}"'] if direction else []),
                f'reader = {{ type = "line", path = "{self.fifo(tid)}" }}',
                f'gate = {{ type = "log", path = "{self.actuations}" }}',
            ]
        self.config.write_text("\n".join(lines) + "\n")

    def actuation_lines(self) -> list[tuple[str, int, str]]:
        if not self.actuations.exists():
            return []
        out = []
        for line in self.actuations.read_text().splitlines():
            term, seq, verdict = line.split()
            out.append((term, int(seq), verdict))
        return out


def spawn_daemon(
    config: Path, stderr: IO[bytes] | int | None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The real command, ``qaqpa run --config CONFIG``, in a fresh interpreter."""
    return subprocess.Popen(
        [sys.executable, "-m", "qaqpa.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
