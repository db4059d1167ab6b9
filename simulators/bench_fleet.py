"""``qaqpa bench fleet``: a national fleet of simulated schools against the real server ingest, and
a week of national traffic loaded with COPY to time the region's and the nation's pages.

1. The fleet (``simulators/fleet.py``): N schools, each an MQTT client with its own enrolled
   login and the edge's uplink, in one asyncio process, tap at the national morning peak's rate
   per school (4 million entries in 30 minutes over 7,800 schools: 0.285 taps/s a school), times
   ``--compression``, through each broker target (``--brokers``; simulators/fleet_brokers.py)
   into ``--workers`` ingest worker processes (``python -m server.ingest``) writing the primary of
   a PostgreSQL pair streaming to a hot standby. A ramp of school counts (``--ramp``) at that
   fixed rate stops at the first stage whose tap-to-stored p99 reaches 5 s (or that does not
   drain); at the full fleet the compression is then doubled while it is carried. Each stage
   reports sustained events/s, p50 / p99, and the CPU and memory of the broker, the database,
   the ingest workers and the fleet process itself. At the end the events stored are counted
   against the events sent: duplicates and missing must both be 0.
2. The statements (``simulators/fleet_load.py``): ``--days`` days of ``--events-per-day`` events
   COPYed into the primary, and the region's meal statement and the national dashboard timed on
   the standby at 1, 3 and ``--days`` days loaded.

Everything here shares the machine's cores (2 where this was written): the JSON says so beside
every figure. The PostgreSQL pair is made on ``--pg-ports`` (and removed after) unless one is
already running there; the broker runs on ``--broker-port`` (0: a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from protocol.centre import key_id
from protocol.signing import generate_key, public_key_raw
from server.broker_auth import write_broker_files
from server.centre_key import CentreSigner, temporary_key_file
from server.db import make_engine, session_factory
from server.devices import add_device, enrol
from server.settings import ServerSettings
from simulators.bench_support import percentile
from simulators.fleet import Fleet, Login
from simulators.fleet_brokers import TARGETS, TargetUnavailable, server_env
from simulators.fleet_common import caveat, scratch_database
from simulators.fleet_load import load_and_time
from simulators.pg_pair import BenchPair
from simulators.procstat import Group, memory_mb, with_children

ROOT = Path(__file__).resolve().parents[1]
NATIONAL_SCHOOLS = 7_800
PEAK_ENTRIES = 4_000_000
PEAK_SECONDS = 1_800
PER_SCHOOL_RATE = PEAK_ENTRIES / PEAK_SECONDS / NATIONAL_SCHOOLS  # taps/s a school at the peak
P99_LIMIT_S = 5.0
DEFAULT_RAMP = (500, 1_000, 2_000, 4_000, 7_800)


def enrol_fleet(settings: ServerSettings, n: int) -> tuple[list[Login], float]:
    """N schools with one edge each, enrolled as a real edge is (token, key, MQTT login); the
    broker's password and ACL files written from the devices table."""
    t0 = time.monotonic()
    engine = make_engine(settings.database_url)
    logins: list[Login] = []
    try:
        with session_factory(engine)() as session:
            for i in range(n):
                school, device = f"F{i:05d}", "edge-1"
                key = generate_key()
                token = add_device(session, settings, school, device)
                cred = enrol(session, settings, token, device, public_key_raw(key))
                logins.append(Login(school, device, cred.mqtt_username, cred.mqtt_password, key))
                if i % 500 == 499:
                    session.commit()
            session.commit()
            write_broker_files(session, settings)
    finally:
        engine.dispose()
    return logins, time.monotonic() - t0


def exactly_once(
    url: str, sent: dict[str, int], acked: dict[str, int] | None = None
) -> dict[str, Any]:
    """Stored events per school against the seqs each simulated school journaled (1..last).

    ``acked``: the seq through which each school holds the server's ack. Events sent but not
    stored at the end are a backlog while they are not acknowledged (the school still holds and
    re-sends them); one acknowledged and not stored is a loss: ``acknowledged_not_stored``."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    acked = acked or {}
    with psycopg.connect(dsn) as conn:
        schools = list(acked)
        acked_stored = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(DISTINCT e.seq) AS n"
            " FROM unnest(%s::text[], %s::bigint[]) AS a(school, through)"
            " JOIN devices d ON d.school_id = a.school"
            " JOIN events e ON e.device_pk = d.pk AND e.seq BETWEEN 1 AND a.through"
            " GROUP BY a.school) x",
            (schools, [acked[k] for k in schools]),
        ).fetchone()
        rows = conn.execute(
            "SELECT d.school_id, count(e.seq), count(DISTINCT e.seq), coalesce(max(e.seq), 0),"
            " coalesce(min(e.seq), 0)"
            " FROM devices d LEFT JOIN events e ON e.device_pk = d.pk GROUP BY d.school_id"
        ).fetchall()
        by_reason: dict[bool, int] = dict(
            conn.execute(
                "SELECT reason = 'duplicate', coalesce(sum(count), 0) FROM ingest_rejections"
                " GROUP BY 1"
            ).fetchall()
        )
    stored = duplicates = missing = unexpected = 0
    for school, count, distinct, high, low in rows:
        last = sent.get(school, 0)
        stored += count
        duplicates += count - distinct
        beyond = max(0, high - last) + (1 if count and low < 1 else 0)
        unexpected += beyond
        missing += last - (distinct - beyond)
    total_sent = sum(sent.values())
    total_acked = sum(acked.values())
    return {
        "events_sent": total_sent,
        "events_stored": stored,
        "duplicates": duplicates,
        # sent, not stored: still in the schools' outboxes unless acknowledged (the next field)
        "missing": missing,
        "events_acknowledged": total_acked,
        # acknowledged to a school and not stored: a loss, must be 0
        "acknowledged_not_stored": total_acked - int(acked_stored[0] if acked_stored else 0),
        "unexpected": unexpected,
        # re-sent batches the server had stored already: acked again, nothing stored twice
        "resent_batches_absorbed": int(by_reason.get(True, 0)),
        # anything else the ingest refused (signature, unknown device...): must be 0
        "batches_rejected": int(by_reason.get(False, 0)),
        "exactly_once": stored == total_sent and duplicates == missing == unexpected == 0,
    }


# -------------------------------------------------------------------------- ingest workers


class IngestWorkers:
    """``n`` ingest worker processes (``python -m server.ingest``). With ``kill_after`` each
    worker SIGKILLs itself after that many commits, before publishing the acks (the server's
    fault injection), and ``check()`` starts a new one in its place: the edges' re-sends and the
    idempotent insert must still store every event once."""

    def __init__(
        self, settings: ServerSettings, n: int, kill_after: int = 0, log: Path | None = None
    ) -> None:
        self.log = log if log is not None else Path(tempfile.mkstemp(prefix="qaqpa-ingest-")[1])
        self.env = {
            **os.environ,
            **server_env(settings),
            "QAQPA_SERVER_FAULT_KILL_AFTER_INSERT": str(kill_after),
        }
        self.kill_after = kill_after
        self.restarts = 0
        self.procs = [self._spawn() for _ in range(n)]

    def _spawn(self) -> subprocess.Popen[bytes]:
        # the workers' logs go to a file: a pipe nobody reads would stop a worker in mid
        # transaction once a re-send storm has filled it with "duplicate batch" lines
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "server.ingest"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.poll() is None]

    def check(self) -> None:
        """A worker that died: started again when faults are injected, an error otherwise."""
        for i, p in enumerate(self.procs):
            if p.poll() is None:
                continue
            if not self.kill_after:
                err = self.log.read_text(errors="replace")[-800:]
                raise RuntimeError(f"an ingest worker exited: {err}")
            self.procs[i] = self._spawn()
            self.restarts += 1

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


@contextlib.contextmanager
def ingest_workers(
    settings: ServerSettings, n: int, kill_after: int = 0, log: Path | None = None
) -> Iterator[IngestWorkers]:
    workers = IngestWorkers(settings, n, kill_after, log)
    try:
        time.sleep(2.0)  # connect and subscribe (a batch sent before is re-sent: nothing lost)
        workers.check()
        yield workers
    finally:
        workers.stop()


# -------------------------------------------------------------------------------- stages


def _latency(lat: Sequence[float]) -> dict[str, Any]:
    values = list(lat)
    return {
        "tap_to_stored_p50_s": round(percentile(values, 50), 3) if values else None,
        "tap_to_stored_p99_s": round(percentile(values, 99), 3) if values else None,
        "tap_to_stored_max_s": round(max(values), 3) if values else None,
    }


async def _stage(
    fleet: Fleet,
    logins: Sequence[Login],
    active: int,
    compression: float,
    seconds: float,
    groups: Sequence[Group],
) -> dict[str, Any]:
    connect_s, not_connected = 0.0, 0
    if active > len(fleet.schools):
        connect_s, not_connected = await fleet.connect(logins[len(fleet.schools) : active])
    c = fleet.counters
    c.latencies = type(c.latencies)("d")
    acked0, sent0, batches0, rewinds0 = c.acked_events, c.events_sent, c.batches, c.rewinds
    rate = PER_SCHOOL_RATE * compression
    for g in groups:
        g.begin()
    last_sample = [time.monotonic()]

    def sample() -> None:
        now = time.monotonic()
        if now - last_sample[0] >= 2.0:
            last_sample[0] = now
            for g in groups:
                g.sample()

    t0 = time.monotonic()
    played = await fleet.play(active, rate, seconds, on_tick=sample)
    drained = await fleet.drain(active, within=max(60.0, seconds * 2))
    t1 = time.monotonic()
    for g in groups:
        g.sample()
    stored = c.acked_events - acked0
    busy = max(c.last_ack_at, t0 + seconds) - t0 if stored else seconds
    lat = _latency(c.latencies)
    p99 = lat["tap_to_stored_p99_s"]
    carried = bool(drained and not not_connected and p99 is not None and p99 < P99_LIMIT_S)
    out = {
        "schools": active,
        "compression": compression,
        "per_school_taps_per_s": round(rate, 4),
        "offered_events_per_s": round(played["taps"] / seconds, 1),
        "events": played["taps"],
        "events_acknowledged": stored,
        "sustained_events_per_s": round(stored / busy, 1),
        **lat,
        "drained": drained,
        "carried": carried,
        "batches": c.batches - batches0,
        "events_sent_with_resends": c.events_sent - sent0,
        "rewinds": c.rewinds - rewinds0,
        "scheduler_lag_max_s": played["scheduler_lag_max_s"],
        "connect_seconds": round(connect_s, 1),
        "schools_not_connected_in_time": not_connected,
        "resources": {g.name: g.result(t1 - t0) for g in groups},
        "machine": caveat(),
    }
    # what one event costs the ingest here: at the peak an edge's message carries one or two
    # events, and the ingest's work is per message and per device, not per event
    batches = out["batches"]
    out["events_per_batch"] = (
        round(out["events_sent_with_resends"] / batches, 2) if batches else None
    )
    ingest_s = out["resources"]["ingest_workers"]["cpu_cores"] * (t1 - t0)
    out["ingest_cpu_ms_per_event"] = round(ingest_s / stored * 1000, 3) if stored else None
    brief = "schools compression offered_events_per_s sustained_events_per_s"
    brief += " tap_to_stored_p50_s tap_to_stored_p99_s carried rewinds events_per_batch"
    brief += " ingest_cpu_ms_per_event"
    print(
        "fleet stage:", json.dumps({k: out[k] for k in brief.split()}), file=sys.stderr, flush=True
    )
    return out


async def _run_fleet(
    nodes: list[Any],
    settings: ServerSettings,
    logins: list[Login],
    ramp: Sequence[int],
    compression: float,
    max_compression: float,
    min_compression: float,
    seconds: float,
    groups: Sequence[Group],
    workers: IngestWorkers,
) -> tuple[
    list[dict[str, Any]], list[dict[str, Any]], dict[str, int], dict[str, int], dict[str, Any]
]:
    signer = CentreSigner.from_settings(settings)
    assert signer.key is not None
    keys = {key_id(signer.key): signer.key.public_key()}
    fleet = Fleet(
        asyncio.get_running_loop(),
        nodes,
        settings.topic_prefix,
        keys,
        settings.mqtt_protocol,
    )
    fleet.every_tick.append(workers.check)
    stages: list[dict[str, Any]] = []
    peaks: list[dict[str, Any]] = []
    try:
        for n in ramp:
            st = await _stage(fleet, logins, n, compression, seconds, groups)
            stages.append(st)
            if not st["carried"]:
                break
        full = len(logins)
        if stages and stages[-1]["carried"] and stages[-1]["schools"] == full:
            c = compression * 2  # faster while the full fleet is carried
            while c <= max_compression:
                st = await _stage(fleet, logins, full, c, seconds, groups)
                peaks.append(st)
                if not st["carried"]:
                    break
                c *= 2
        else:
            c = compression / 2  # slower than the ramp's rate until the full fleet is carried
            while c >= min_compression:
                await fleet.drain(len(fleet.schools), within=90.0)  # the backlog first
                st = await _stage(fleet, logins, full, c, seconds, groups)
                peaks.append(st)
                if st["carried"]:
                    break
                c /= 2
        drained = await fleet.drain(len(fleet.schools), within=300.0)
        sent = {s.school: s.last_seq for s in fleet.schools}
        acked = {s.school: s.window.acked for s in fleet.schools}
        counters = {
            "connects": fleet.counters.connects,
            "disconnects": fleet.counters.disconnects,
            "refused_logins": fleet.counters.refused_logins,
            "acks": fleet.counters.acks,
            "acks_refused": fleet.counters.acks_refused,
            "all_acknowledged_at_end": drained,
        }
    finally:
        await fleet.close()
    return stages, peaks, sent, acked, counters


def run_target(
    name: str,
    pair: BenchPair,
    *,
    schools: int,
    ramp: Sequence[int],
    compression: float,
    max_compression: float,
    min_compression: float,
    seconds: float,
    workers: int,
    broker_port: int,
    workdir: Path,
    ingest_fault: int = 0,
    tls: bool = False,
) -> dict[str, Any]:
    target = TARGETS[name](workdir / name, broker_port, tls)
    result: dict[str, Any] = {"target": name}
    with scratch_database(pair, "fleet") as url, temporary_key_file() as centre_key:
        settings = ServerSettings(
            database_url=url,
            mqtt_host="127.0.0.1",
            mqtt_port=1,  # set once the target names its nodes
            mqtt_protocol="5" if target.mqtt_protocol == "5" else "3.1.1",
            mqtt_username="qaqpa-server",
            mqtt_password=secrets.token_urlsafe(16),
            topic_prefix=f"qaqpa-fleet/{uuid.uuid4().hex[:8]}/v1",
            centre_key_file=centre_key,
            **target.auth_settings(),
        )
        try:
            target.preflight()
            logins, enrol_s = enrol_fleet(settings, schools)
            result["enrol_seconds"] = round(enrol_s, 1)
        except TargetUnavailable as err:
            return {"target": name, "available": False, "reason": str(err)}
        try:
            try:
                t0 = time.monotonic()
                nodes = target.start(settings)
                result["broker_start_seconds"] = round(time.monotonic() - t0, 1)
                # the broker's memory with no school connected: per 1,000 connections is above it
                idle_mb = sum(memory_mb(p) for p in target.pids())
                result["broker_memory_mb_idle"] = round(idle_mb, 1)
            except TargetUnavailable as err:
                target.stop()
                return {"target": name, "available": False, "reason": str(err)}
            result["nodes"] = [n.url for n in nodes]
            result["tls"] = any(n.ca_file is not None for n in nodes)
            settings = target.ingest_settings(settings)
            with ingest_workers(settings, workers, ingest_fault, workdir / "ingest.log") as procs:
                groups = [
                    Group("broker", target.pids),
                    Group("database_primary", lambda: with_children(pair.primary.postmaster_pid())),
                    Group("database_standby", lambda: with_children(pair.standby.postmaster_pid())),
                    Group("ingest_workers", procs.pids),
                    Group("fleet_process", lambda: [os.getpid()]),
                ]
                stages, peaks, sent, acked, counters = asyncio.run(
                    _run_fleet(
                        nodes,
                        settings,
                        logins,
                        ramp,
                        compression,
                        max_compression,
                        min_compression,
                        seconds,
                        groups,
                        procs,
                    )
                )
                counters["ingest_workers_killed_and_restarted"] = procs.restarts
        finally:
            target.stop()
        result.update(
            {
                "available": True,
                "workers": workers,
                "ingest_fault_kill_after_commits": ingest_fault or None,
                "stages": stages,
                "compression_stages": peaks,
                "connections": counters,
                "exactly_once": exactly_once(url, sent, acked),
            }
        )
    result.update(_summary(stages, peaks, compression, idle_mb))
    return result


def _summary(
    stages: list[dict[str, Any]],
    peaks: list[dict[str, Any]],
    compression: float,
    broker_idle_mb: float,
) -> dict[str, Any]:
    ramp_ok = [s for s in stages if s["carried"]]
    every_ok = ramp_ok + [p for p in peaks if p["carried"]]
    full = max((s["schools"] for s in stages + peaks), default=0)
    at_full = [s for s in every_ok if s["schools"] == full]
    best = ramp_ok[-1] if ramp_ok else (every_ok[-1] if every_ok else None)
    top = max(at_full, key=lambda s: s["compression"]) if at_full else best
    out: dict[str, Any] = {
        "largest_schools_carried_p99_under_5s": ramp_ok[-1]["schools"] if ramp_ok else 0,
        "at_compression": compression,
        # the fastest the whole fleet played the peak with p99 < 5 s (1: real time, 30 minutes)
        "compression_carried_at_full_fleet": top["compression"] if at_full and top else None,
        "machine": caveat(),
    }
    if best is not None:
        k = best["schools"] / 1000
        res = best["resources"]
        out["per_1000_schools"] = {
            "events_per_s": round(best["sustained_events_per_s"] / k, 1),
            "broker_cpu_cores": round(res["broker"]["cpu_cores"] / k, 3),
            # above the broker's memory with no school connected
            "broker_memory_mb": round((res["broker"]["memory_mb_max"] - broker_idle_mb) / k, 1),
            "ingest_cpu_cores": round(res["ingest_workers"]["cpu_cores"] / k, 3),
            "database_primary_cpu_cores": round(res["database_primary"]["cpu_cores"] / k, 3),
            "database_standby_cpu_cores": round(res["database_standby"]["cpu_cores"] / k, 3),
            # the simulator's own share of the same 2 cores (not needed in production)
            "fleet_simulator_cpu_cores": round(res["fleet_process"]["cpu_cores"] / k, 3),
            "from_stage": f"{best['schools']} schools at compression {best['compression']}",
            "machine": caveat(),
        }
    if top is not None:
        out["peak"] = {
            "schools": top["schools"],
            "compression": top["compression"],
            "sustained_events_per_s": top["sustained_events_per_s"],
            "tap_to_stored_p50_s": top["tap_to_stored_p50_s"],
            "tap_to_stored_p99_s": top["tap_to_stored_p99_s"],
            # each school taps at `compression` x its real peak rate: a fleet of this size
            # plays its share of the 30-minute national peak in this many minutes
            "peak_played_in_minutes": round(PEAK_SECONDS / 60 / top["compression"], 1),
            "national_fleet": top["schools"] >= NATIONAL_SCHOOLS,
            "resources": top["resources"],
            "machine": caveat(),
        }
    return out


# ---------------------------------------------------------------------------------- bench


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bench_fleet(
    *,
    schools: int = NATIONAL_SCHOOLS,
    brokers: Sequence[str] = ("mosquitto",),
    ramp: Sequence[int] = DEFAULT_RAMP,
    compression: float = 1.0,
    max_compression: float = 64.0,
    min_compression: float = 0.0,
    stage_seconds: float = 30.0,
    workers: int = 2,
    broker_port: int = 0,
    pg_ports: tuple[int, int] = (25451, 25452),
    fleet: bool = True,
    load: bool = True,
    days: int = 7,
    events_per_day: int = 4_300_000,
    load_schools: int = NATIONAL_SCHOOLS,
    students: int = 4_000_000,
    rollups: bool = True,
    load_minutes: float = 0.0,
    rollup_refresh: str = "sql",
    ingest_fault: int = 0,
    tls: bool = False,
) -> dict[str, Any]:
    """``ingest_fault`` N > 0: every ingest worker SIGKILLs itself after N commits, before its
    acks, and is started again (the counts must still be exact)."""
    _raise_fd_limit()
    unknown = [b for b in brokers if b not in TARGETS]
    if unknown:
        raise SystemExit(
            f"qaqpa bench fleet: unknown broker target {unknown[0]!r} ({', '.join(TARGETS)})"
        )
    stages_at = sorted({n for n in ramp if n < schools} | {schools})
    pair = BenchPair.on(*pg_ports)
    out: dict[str, Any] = {
        "benchmark": "fleet",
        "machine": caveat(),
        "cores": os.cpu_count(),
        "national_peak": {
            "entries": PEAK_ENTRIES,
            "minutes": PEAK_SECONDS // 60,
            "schools": NATIONAL_SCHOOLS,
            "events_per_s": round(PEAK_ENTRIES / PEAK_SECONDS, 1),
            "per_school_taps_per_s": round(PER_SCHOOL_RATE, 4),
        },
        "p99_limit_s": P99_LIMIT_S,
    }
    try:
        pair.ensure()
        out["postgresql"] = {
            "primary_port": pair.primary.port,
            "standby_port": pair.standby.port,
            "made_here": pair.made,
        }
        if fleet:
            with tempfile.TemporaryDirectory(prefix="qaqpa-fleet-") as d:
                out["targets"] = {
                    name: run_target(
                        name,
                        pair,
                        schools=schools,
                        ramp=stages_at,
                        compression=compression,
                        max_compression=max_compression,
                        min_compression=min_compression or compression / 8,
                        seconds=stage_seconds,
                        workers=workers,
                        broker_port=broker_port,
                        workdir=Path(d),
                        ingest_fault=ingest_fault,
                        tls=tls,
                    )
                    for name in brokers
                }
        if load:
            out["statements"] = load_and_time(
                pair,
                days=days,
                events_per_day=events_per_day,
                schools=load_schools,
                students=students,
                rollups=rollups,
                budget_s=load_minutes * 60,
                rollup_refresh=rollup_refresh,
            )
    finally:
        pair.close()
    return out


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """``qaqpa bench fleet``: the flags are in qaqpa/cli.py."""
    return bench_fleet(
        schools=args.schools,
        brokers=[b for b in args.brokers.split(",") if b],
        ramp=[int(x) for x in args.ramp.split(",") if x],
        compression=args.compression,
        max_compression=args.max_compression,
        min_compression=args.min_compression,
        stage_seconds=args.stage_seconds,
        workers=args.workers,
        broker_port=args.broker_port,
        pg_ports=(args.pg_ports[0], args.pg_ports[1]),
        fleet=not args.no_fleet,
        load=not args.no_load,
        days=args.days,
        events_per_day=args.events_per_day,
        load_schools=args.load_schools or args.schools,
        students=args.students,
        load_minutes=args.load_minutes,
        rollups=not args.no_rollups,
        rollup_refresh=args.rollup_refresh,
        ingest_fault=args.ingest_fault,
        tls=args.tls,
    )
