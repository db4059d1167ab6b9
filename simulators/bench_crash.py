"""Crash campaign: SIGKILL the real edge daemon at random moments during a rush, N times,
restarting it each time, with the uplink running against a real broker and real ingest.

    qaqpa bench crash --cycles 300 --json
    python -m simulators.bench_crash --cycles 300 [--cold-every 10] [--json]

Each cycle starts the daemon (``qaqpa run --config edge.toml``: readers on FIFOs, a file gate
that appends ``TERMINAL SEQ open|red`` and fsyncs before the gate would move, the uplink to
Mosquitto), waits for its first decision, taps cards on four terminals and SIGKILLs it at a
random moment (some cycles during start-up, before the first decision). At the end a last daemon
runs until the server has acknowledged everything, and the campaign counts:

- every actuation (a line of the gate's file) has its committed event, same terminal, and a
  grant exactly when the gate opened;
- the journal's sequence is 1..last with no gap; no (student, day, period) has two free meals,
  and the meal ledger agrees with the meal events;
- the server has every journaled seq exactly once, with the same kind, terminal and time, and
  no meal twice.

Restarts are fast because most daemons are forked from a process that has already imported
the daemon's code (``python -m qaqpa.forkserver``): the child runs the same ``qaqpa run`` entry point
(``qaqpa.cli.main``); every ``--cold-every``-th cycle starts a fresh interpreter instead, so the
real command is killed too and the two start-ups are measured in the same run. Before the
campaign, ``--baseline`` clean cycles (start, first decision, the same rush, SIGTERM) give the
cycle time without a kill.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from simulators.edge_school import (
    DEVICE,
    ROOT,
    SCHOOL,
    EdgeSchool,
    card,
    spawn_daemon,
)

# ------------------------------------------------------------------------------------ school


@dataclass
class CrashSchool(EdgeSchool):
    """The school's edge directory (simulators/edge_school.py) with its roster imported."""

    def write(self, key_dir: Path | None) -> None:
        """Write the school's files and import the roster with this release's code."""
        self.write_files(key_dir)
        from edge.daemon import import_roster

        asyncio.run(
            import_roster(self.config, self.root / "roster.json", self.root / "policy.toml")
        )

    def journal_last_seq(self) -> int:
        db = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
        finally:
            db.close()
        return int(row[0])


def write_key_dir(key_dir: Path, key: Any, port: int, prefix: str, centre_b64: str) -> None:
    """What ``qaqpa edge enrol`` leaves behind (the enrolment is done in-process here)."""
    from protocol.signing import private_key_pem

    key_dir.mkdir(parents=True, exist_ok=True)
    (key_dir / "device.key").write_bytes(private_key_pem(key))
    os.chmod(key_dir / "device.key", 0o600)
    creds = {
        "school": SCHOOL,
        "device": DEVICE,
        "mqtt_username": None,
        "mqtt_password": None,
        "topic_prefix": prefix,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": port,
    }
    (key_dir / "mqtt.json").write_text(json.dumps(creds))
    (key_dir / "centre.json").write_text(json.dumps({"current": centre_b64, "next": None}))


# ----------------------------------------------------------------------------- daemon starts


class Daemon:
    """One running daemon: forked by the zygote (warm) or a fresh ``qaqpa run`` (cold)."""

    def __init__(
        self,
        pid: int,
        proc: subprocess.Popen[bytes] | None,
        zygote: Zygote | None,
        started: float,
    ) -> None:
        self.pid = pid
        self.proc = proc
        self.zygote = zygote
        self.started = started
        self.returncode: int | None = None

    @property
    def cold(self) -> bool:
        return self.proc is not None

    def alive(self) -> bool:
        if self.returncode is not None:
            return False
        if self.proc is not None:
            return self.proc.poll() is None
        assert self.zygote is not None
        return not self.zygote.exited(self.pid)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float = 30.0) -> int:
        if self.returncode is None:
            if self.proc is not None:
                self.returncode = self.proc.wait(timeout)
            else:
                assert self.zygote is not None
                self.returncode = self.zygote.wait(self.pid, timeout)
        return self.returncode


class Zygote:
    def __init__(self, stderr: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qaqpa.forkserver"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        self._ended: dict[int, int] = {}

    def start(self, config: Path) -> Daemon:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        t0 = time.perf_counter()
        self.proc.stdin.write(f"run {config}\n".encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        if not line or line[0] != b"pid":
            raise RuntimeError(f"the zygote did not fork a daemon: {line!r}")
        return Daemon(int(line[1]), None, self, t0)

    def exited(self, pid: int) -> bool:
        if pid in self._ended:
            return True
        assert self.proc.stdout is not None
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], 0)
        if ready:
            self._read_exit()
        return pid in self._ended

    def _read_exit(self) -> None:
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()
        if len(words) != 3 or words[0] != b"exit":
            raise RuntimeError(f"the zygote said {words!r}")
        self._ended[int(words[1])] = int(words[2])

    def wait(self, pid: int, timeout: float) -> int:
        import select

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while pid not in self._ended:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"daemon {pid} did not end within {timeout} s")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                self._read_exit()
        return self._ended.pop(pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_cold(config: Path, stderr: IO[bytes]) -> Daemon:
    t0 = time.perf_counter()
    proc = spawn_daemon(config, stderr)
    return Daemon(proc.pid, proc, None, t0)


# ---------------------------------------------------------------------------------- the rush


class Taps:
    """The readers: one FIFO per terminal, held open across restarts (a tap written while the
    daemon is down waits in the pipe like a card in a reader's buffer)."""

    def __init__(self, school: CrashSchool, rng: random.Random) -> None:
        self.school = school
        self.rng = rng
        self.fds = {t: os.open(school.fifo(t), os.O_RDWR | os.O_NONBLOCK) for t in school.terminals}
        self.offered = 0
        self.pairs: set[tuple[str, str]] = set()  # (terminal, student) of every tap offered

    def tap(self, terminal: str, i: int) -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: the tap is not made
            os.write(self.fds[terminal], (card(i) + "\n").encode())
            self.offered += 1
            self.pairs.add((terminal, f"s{i}"))

    def random_tap(self) -> None:
        self.tap(
            self.rng.choice(list(self.school.terminals)), self.rng.randrange(self.school.students)
        )

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)


def wait_first_decision(
    school: CrashSchool, taps: Taps, daemon: Daemon, size0: int, timeout: float = 60.0
) -> float | None:
    """Tap the gate and wait until the gate file grows: seconds since the start, or None when
    the daemon died first."""
    taps.tap("gate-1", taps.rng.randrange(school.students))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if school.actuations.stat().st_size > size0:
                return time.perf_counter() - daemon.started
        if not daemon.alive():
            return None
        time.sleep(0.002)
    raise TimeoutError(f"no decision within {timeout} s of the daemon's start")


def rush(taps: Taps, seconds: float, rate: float) -> None:
    """Offer taps at about ``rate`` per second for ``seconds``."""
    t0 = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - t0) < seconds:
        due = int(elapsed * rate) + 1
        while sent < due:
            taps.random_tap()
            sent += 1
        time.sleep(min(0.002, max(0.0, seconds - elapsed)))


# --------------------------------------------------------------------------------- counting


def count(
    school: CrashSchool,
    server: dict[int, dict[str, Any]] | None,
    offered: set[tuple[str, str]] | None = None,
) -> dict[str, int]:
    """The invariants, as counts of what broke (each should be 0) and of what there is;
    ``offered``: the (terminal, student) of every tap made, which every decision must match."""
    from edge.store import EdgeStore
    from protocol.messages import EntryEvent, LibraryVisitEvent, ManualPassEvent, MealServedEvent

    grants = (EntryEvent, MealServedEvent, LibraryVisitEvent, ManualPassEvent)

    async def read() -> tuple[list[Any], list[Any]]:
        async with await EdgeStore.open(
            school.store, school=SCHOOL, device=DEVICE, create=False
        ) as store:
            return await store.journal_rows(), await store.meal_ledger()

    journal, ledger = asyncio.run(read())
    seqs = [e.seq for e in journal]
    gaps = sum(1 for a, b in zip([0, *seqs], seqs, strict=False) if b != a + 1)
    by_seq = {e.seq: e for e in journal}
    lines = school.actuation_lines()
    without_record = wrong_terminal = wrong_verdict = 0
    for terminal, seq, verdict in lines:
        ev = by_seq.get(seq)
        if ev is None:
            without_record += 1
        elif ev.terminal != terminal:
            wrong_terminal += 1
        elif isinstance(ev, grants) != (verdict == "open"):
            wrong_verdict += 1
    actuated_seqs = collections.Counter(seq for _, seq, _ in lines)
    meals = collections.Counter(
        (e.student_id, e.local_date, e.period) for e in journal if isinstance(e, MealServedEvent)
    )
    out = {
        "journal_events": len(journal),
        "decided_without_tap": 0
        if offered is None
        else sum(
            1
            for e in journal
            if e.kind != "alarm" and (e.terminal, getattr(e, "student_id", None)) not in offered
        ),
        "actuations": len(lines),
        "actuated_open": sum(1 for *_, v in lines if v == "open"),
        "actuated_without_record": without_record,
        "actuated_wrong_terminal": wrong_terminal,
        "actuated_wrong_verdict": wrong_verdict,
        "seq_actuated_twice": sum(1 for n in actuated_seqs.values() if n > 1),
        "seq_gaps": gaps,
        "meals": len(meals),
        "meals_counted_twice": sum(1 for n in meals.values() if n > 1),
        "meal_ledger_disagrees": int(len(ledger) != len(meals)),
    }
    if server is not None:
        missing = sum(1 for s in seqs if s not in server)
        extra = sum(1 for s in server if s not in by_seq)
        different = sum(
            1
            for s, row in server.items()
            if s in by_seq
            and (row["kind"], row["terminal"], row["at_ms"])
            != (by_seq[s].kind, by_seq[s].terminal, by_seq[s].at_ms)
        )
        server_meals = collections.Counter(
            (r["student_id"], r["local_date"], r["period"])
            for r in server.values()
            if r["kind"] == "meal_served"
        )
        out |= {
            "server_events": len(server),
            "server_missing": missing,
            "server_extra": extra,
            "server_different": different,
            "server_meals_twice": sum(1 for n in server_meals.values() if n > 1),
        }
    return out


BROKEN = (
    "decided_without_tap",
    "actuated_without_record",
    "actuated_wrong_terminal",
    "actuated_wrong_verdict",
    "seq_actuated_twice",
    "seq_gaps",
    "meals_counted_twice",
    "meal_ledger_disagrees",
    "server_missing",
    "server_extra",
    "server_different",
    "server_meals_twice",
)


def server_events(url: str, prefix_free_school: str, device: str) -> dict[int, dict[str, Any]]:
    from sqlalchemy import select

    from server.db import make_engine
    from server.models import Device, StoredEvent

    engine = make_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(
                select(
                    StoredEvent.seq,
                    StoredEvent.kind,
                    StoredEvent.terminal,
                    StoredEvent.at_ms,
                    StoredEvent.payload,
                )
                .join(Device, Device.pk == StoredEvent.device_pk)
                .where(Device.school_id == prefix_free_school, Device.device_id == device)
            ).all()
    finally:
        engine.dispose()
    out: dict[int, dict[str, Any]] = {}
    for seq, kind, terminal, at_ms, payload in rows:
        out[int(seq)] = {
            "kind": kind,
            "terminal": terminal,
            "at_ms": int(at_ms),
            "student_id": payload.get("student_id"),
            "local_date": payload.get("local_date"),
            "period": payload.get("period"),
        }
    return out


# -------------------------------------------------------------------------------- campaign


@dataclass
class Timings:
    warm_first_decision: list[float] = field(default_factory=list)
    cold_first_decision: list[float] = field(default_factory=list)
    rush: list[float] = field(default_factory=list)
    reaped: list[float] = field(default_factory=list)
    cycle: list[float] = field(default_factory=list)


def _ms(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values) * 1000, 1),
        "p50": round(ordered[len(ordered) // 2] * 1000, 1),
        "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
    }


@contextlib.contextmanager
def _centre(
    database_url: str | None, mqtt_port: int, prefix: str, workers: int
) -> Iterator[tuple[str, Any, str]]:
    """A scratch database (unless given), the centre's key, an enrolled device, ingest workers.
    Yields (database url, device key, centre public key)."""
    from simulators.bench_drain import enrolled_edge
    from simulators.bench_ingest import scratch_database, worker_processes

    with contextlib.ExitStack() as stack:
        url = database_url or stack.enter_context(scratch_database())
        edge = stack.enter_context(
            enrolled_edge(
                url,
                school=SCHOOL,
                device=DEVICE,
                prefix=prefix,
                mqtt_port=mqtt_port,
            )
        )
        stack.enter_context(worker_processes(edge.server, workers))
        assert edge.sync.centre_key is not None
        yield url, edge.key, edge.sync.centre_key


def _store_open_s(school: CrashSchool) -> float:
    """Seconds to open and close the store in this process (a part of every start)."""
    from edge.store import EdgeStore

    async def run() -> float:
        t0 = time.perf_counter()
        store = await EdgeStore.open(school.store, school=SCHOOL, device=DEVICE, create=False)
        took = time.perf_counter() - t0
        await store.close()
        return took

    return asyncio.run(run())


def _import_s() -> float:
    """Seconds for a fresh interpreter to import the daemon's code (a cold start's share)."""
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import qaqpa.cli, edge.daemon, edge.sync"], cwd=ROOT, check=True
    )
    return time.perf_counter() - t0


def run_campaign(
    *,
    cycles: int,
    seed: int = 18,
    cold_every: int = 10,
    baseline_cycles: int = 3,
    rush_max_s: float = 0.6,
    rate: float = 300.0,
    startup_kill_share: float = 0.15,
    students: int = 300,
    mqtt_port: int = 1883,
    database_url: str | None = None,
    workers: int = 1,
    drain_timeout_s: float = 300.0,
    workdir: Path | None = None,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Run the campaign; ``max_minutes`` ends it early (the cycles done are reported)."""
    rng = random.Random(seed)
    prefix = f"qaqpa-crash/{uuid.uuid4().hex[:8]}/v1"
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-")))
        url, key, centre_b64 = stack.enter_context(
            _centre(database_url, mqtt_port, prefix, workers)
        )
        write_key_dir(root / "keys", key, mqtt_port, prefix, centre_b64)
        school = CrashSchool(root / "school", students)
        school.write(root / "keys")
        stderr = stack.enter_context(open(root / "daemons.log", "ab"))
        zygote = Zygote(stderr)
        stack.callback(zygote.close)
        taps = Taps(school, rng)
        stack.callback(taps.close)
        running: list[Daemon] = []  # killed if the campaign stops with an error

        def kill_running() -> None:
            for d in running:
                if d.alive():
                    d.signal(signal.SIGKILL)
                    d.wait()

        stack.callback(kill_running)
        parts = {"import_s": _import_s(), "store_open_s_at_start": _store_open_s(school)}

        def size() -> int:
            try:
                return school.actuations.stat().st_size
            except FileNotFoundError:
                return 0

        # Baseline: clean cycles, same rush, stopped with SIGTERM.
        base = Timings()
        for _ in range(baseline_cycles):
            t0 = time.perf_counter()
            d = zygote.start(school.config)
            running[:] = [d]
            first = wait_first_decision(school, taps, d, size())
            assert first is not None, "the daemon died in a clean cycle"
            base.warm_first_decision.append(first)
            rush(taps, rush_max_s / 2, rate)
            t1 = time.perf_counter()
            d.signal(signal.SIGTERM)
            rc = d.wait()
            base.reaped.append(time.perf_counter() - t1)
            if rc != 0:
                raise RuntimeError(f"a clean stop exited {rc}: see {root / 'daemons.log'}")
            base.cycle.append(time.perf_counter() - t0)
        if baseline_cycles:
            t0 = time.perf_counter()
            d = start_cold(school.config, stderr)
            running[:] = [d]
            first = wait_first_decision(school, taps, d, size())
            assert first is not None
            base.cold_first_decision.append(first)
            d.signal(signal.SIGTERM)
            d.wait()

        camp = Timings()
        kills = startup_kills = colds = 0
        t_campaign = time.perf_counter()
        for n in range(cycles):
            if max_minutes is not None and time.perf_counter() - t_campaign > max_minutes * 60:
                break
            t0 = time.perf_counter()
            cold = cold_every > 0 and n % cold_every == cold_every - 1
            d = start_cold(school.config, stderr) if cold else zygote.start(school.config)
            running[:] = [d]
            colds += cold
            if rng.random() < startup_kill_share:
                # during start-up: store open, migrations check, policy, sync, readers
                typical = statistics.median(
                    (camp.cold_first_decision if cold else camp.warm_first_decision)
                    or (base.cold_first_decision if cold else base.warm_first_decision)
                    or [0.3]
                )
                time.sleep(rng.uniform(0, typical))
                startup_kills += 1
            else:
                first = wait_first_decision(school, taps, d, size())
                if first is not None:
                    (camp.cold_first_decision if cold else camp.warm_first_decision).append(first)
                r = rng.uniform(0, rush_max_s)
                rush(taps, r, rate)
                camp.rush.append(r)
            t1 = time.perf_counter()
            d.signal(signal.SIGKILL)
            rc = d.wait()
            camp.reaped.append(time.perf_counter() - t1)
            if rc != -signal.SIGKILL:
                raise RuntimeError(
                    f"cycle {n}: the daemon exited {rc} before the kill: see {root / 'daemons.log'}"
                )
            kills += 1
            camp.cycle.append(time.perf_counter() - t0)
        campaign_s = time.perf_counter() - t_campaign

        # The last daemon runs until the server has acknowledged everything, then stops.
        t0 = time.perf_counter()
        d = zygote.start(school.config)
        running[:] = [d]
        wait_first_decision(school, taps, d, size())
        deadline = time.monotonic() + drain_timeout_s
        drained = False
        while time.monotonic() < deadline:
            last = school.journal_last_seq()
            srv = server_events(url, SCHOOL, DEVICE)
            if len(srv) >= last and all(s in srv for s in range(1, last + 1)):
                drained = True
                break
            time.sleep(0.5)
        d.signal(signal.SIGTERM)
        if d.wait() != 0:
            raise RuntimeError(f"the last daemon did not stop cleanly: see {root / 'daemons.log'}")
        drain_s = time.perf_counter() - t0
        parts["store_open_s_at_end"] = _store_open_s(school)
        counts = count(school, server_events(url, SCHOOL, DEVICE), taps.pairs)

    cycle_mean = statistics.fmean(camp.cycle) if camp.cycle else float("nan")
    first_all = camp.warm_first_decision + camp.cold_first_decision
    share = {
        "start_to_first_decision": statistics.fmean(first_all) * len(first_all) / sum(camp.cycle)
        if camp.cycle and first_all
        else None,
        "rush_before_kill": sum(camp.rush) / sum(camp.cycle) if camp.cycle else None,
        "kill_to_reaped": sum(camp.reaped) / sum(camp.cycle) if camp.cycle else None,
    }
    limit = max((k for k in share if share[k] is not None), key=lambda k: share[k] or 0.0)
    # what a cycle costs besides the rush the campaign chooses to offer before the kill
    overhead = (sum(camp.cycle) - sum(camp.rush)) / len(camp.cycle) if camp.cycle else None
    result: dict[str, Any] = {
        "benchmark": "crash",
        "cycles_asked": cycles,
        "cycles": kills,
        "kills": kills,
        "kills_during_startup": startup_kills,
        "cold_starts": colds,
        "taps_offered": taps.offered,
        **counts,
        "drained": drained,
        "ok": drained and all(counts.get(k, 0) == 0 for k in BROKEN),
        "campaign_s": round(campaign_s, 1),
        "cycles_per_min": round(kills / campaign_s * 60, 1) if campaign_s else None,
        "restart_overhead_ms": round(overhead * 1000, 1) if overhead else None,
        "cycles_per_min_without_rush": round(60 / overhead, 1) if overhead else None,
        "cycle_ms": _ms(camp.cycle),
        "warm_start_to_first_decision_ms": _ms(camp.warm_first_decision),
        "cold_start_to_first_decision_ms": _ms(camp.cold_first_decision),
        "rush_before_kill_ms": _ms(camp.rush),
        "kill_to_reaped_ms": _ms(camp.reaped),
        "share_of_cycle_time": {k: round(v, 3) if v else v for k, v in share.items()},
        "limited_by": limit,
        "parts_s": {k: round(v, 3) for k, v in parts.items()},
        "final_drain_s": round(drain_s, 1),
        "baseline": {
            "clean_cycles": baseline_cycles,
            "cycle_ms": _ms(base.cycle),
            "warm_start_to_first_decision_ms": _ms(base.warm_first_decision),
            "cold_start_to_first_decision_ms": _ms(base.cold_first_decision),
            "sigterm_to_exit_ms": _ms(base.reaped),
            "kill_cycle_over_clean_cycle": round(cycle_mean / statistics.fmean(base.cycle), 2)
            if base.cycle
            else None,
        },
    }
    return result


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """``qaqpa bench crash``."""
    return run_campaign(cycles=args.cycles, mqtt_port=args.mqtt_port, max_minutes=args.max_minutes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m simulators.bench_crash")
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--cold-every", type=int, default=10, help="every Nth start is a cold one")
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--workdir", type=Path, help="keep the school's files here")
    p.add_argument("--max-minutes", type=float, help="stop starting cycles after this long")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = p.parse_args(argv)
    result = run_campaign(
        cycles=args.cycles,
        seed=args.seed,
        cold_every=args.cold_every,
        mqtt_port=args.mqtt_port,
        workdir=args.workdir,
        max_minutes=args.max_minutes,
    )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
