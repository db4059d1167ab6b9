"""CPU and memory of other processes from /proc: what the fleet bench reports for the broker, the
database and the ingest workers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command may hold spaces and parentheses: split after the last ')'
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / TICK if f else 0.0


def memory_mb(pid: int) -> float:
    """Proportional set size (shared memory, e.g. PostgreSQL's buffers, counted once over the
    processes sharing it); resident size where smaps_rollup cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def with_children(root: int | None) -> list[int]:
    """``root`` and its direct children (PostgreSQL's postmaster and its backends)."""
    if root is None:
        return []
    pids = [root]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            f = _stat(int(entry.name))
            if f and int(f[1]) == root:
                pids.append(int(entry.name))
    return pids


@dataclass
class Group:
    """A set of processes, found again at each sample (backends come and go)."""

    name: str
    find: Callable[[], Iterable[int]]
    cpu: dict[int, float] = field(default_factory=dict)
    mem_max_mb: float = 0.0

    def begin(self) -> None:
        self.cpu = {p: cpu_seconds(p) for p in self.find()}
        self.mem_max_mb = 0.0

    def sample(self) -> None:
        pids = list(self.find())
        for p in pids:
            self.cpu.setdefault(p, cpu_seconds(p))  # a process born since: from now
        self.mem_max_mb = max(self.mem_max_mb, sum(memory_mb(p) for p in pids))

    def result(self, seconds: float) -> dict[str, float]:
        used = sum(max(0.0, cpu_seconds(p) - c0) for p, c0 in self.cpu.items())
        return {
            "cpu_cores": round(used / seconds, 3) if seconds > 0 else 0.0,
            "memory_mb_max": round(self.mem_max_mb, 1),
        }
