"""``qaqpa bench ...``: the registry of benchmarks. Each lives in ``simulators/`` and is imported
only when it runs (so ``qaqpa --help`` stays fast); each prints JSON and compares with a baseline
measured in the same run."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

Bench = Callable[[argparse.Namespace], dict[str, Any]]


def _delegate(module: str, func: str = "bench") -> Bench:
    def run(args: argparse.Namespace) -> dict[str, Any]:
        fn = getattr(importlib.import_module(module), func)
        result: dict[str, Any] = fn(args)
        return result

    return run


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.bench_ingest import bench_ingest, bench_ingest_small

    big = bench_ingest(workers=args.workers, mqtt_port=args.mqtt_port)
    big["small_messages"] = bench_ingest_small(workers=args.workers, mqtt_port=args.mqtt_port)
    return big


def drain(args: argparse.Namespace) -> dict[str, Any]:
    from simulators.bench_drain import bench_drain

    return bench_drain(mqtt_port=args.mqtt_port)


BENCHES: dict[str, Bench] = {
    "edge": _delegate("simulators.bench_edge"),
    "osdp": _delegate("simulators.bench_osdp"),
    "face": _delegate("simulators.bench_face"),
    "ingest": ingest,
    "drain": drain,
    "notify": _delegate("simulators.bench_notify"),
    "canteen": _delegate("simulators.bench_canteen"),
    "standby": _delegate("simulators.bench_standby"),
    "fleet": _delegate("simulators.bench_fleet"),
    "crash": _delegate("simulators.bench_crash"),
    "brokers": _delegate("simulators.bench_brokers"),
    "rollups": _delegate("simulators.bench_rollups"),
    "soak": _delegate("simulators.bench_soak"),
}
