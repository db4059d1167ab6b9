"""An upgrade in the field: an edge of the previous release, with events still in its outbox, is
upgraded in place while taps continue; nothing is lost, and the server takes both releases'
edges during the rollout.

The previous release is the code of ``PREVIOUS_RELEASE`` (``git archive`` of the repository's own
history; the last commit before edge store migration 6, found with ``git log --
edge/store/migrations.py``): its ``qaqpa run`` and ``qaqpa edge import-roster`` run from that
tree. The server (ingest) is this release's.

1. Two edges of one school run the previous release: ``edge-1`` (to be upgraded) and ``edge-2``
   (upgraded later: it keeps running the old code throughout).
2. ``edge-1``'s link goes down (a TCP proxy cut): it journals taps offline, then is stopped with
   its outbox holding them; its store is at schema version 5.
3. Taps go on arriving at ``edge-1``'s readers while no daemon runs; this release's daemon starts
   on the same store (migrates it to this release's version, the outbox intact) and decides
   them and more; the link comes back.
4. The server ends with every journaled event of both edges exactly once, gap-free, as
   journaled; every actuation of ``edge-1`` (both releases) has its record, no meal twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge.store import SCHEMA_VERSION
from server.db import make_engine, session_factory
from server.ingest import IngestWorker
from server.settings import ServerSettings
from simulators.bench_crash import BROKEN, CrashSchool, Taps, count, server_events
from tests.support.services import SYSTEM_BROKER
from tests.support.sync import enrolled_device, write_key_dir
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
# main just before the merge that added edge store migration 6 (its stores are at version 5)
PREVIOUS_RELEASE = "05336a95a62d031ed595133a23f171d9be13e845"
PREVIOUS_SCHEMA = 5


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's code, from this repository's history."""
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0 and os.environ.get("QAQPA_REQUIRE_HISTORY") != "1":
        # a tarball or a shallow clone has no previous release to run; a full clone always has
        pytest.skip(
            f"the previous release {PREVIOUS_RELEASE[:7]} is not in this checkout's history "
            "(a shallow clone or no git); set QAQPA_REQUIRE_HISTORY=1 to make this a failure"
        )
    root = tmp_path_factory.mktemp("previous-release")
    packages = ["protocol", "hardware", "edge", "server", "qaqpa", "simulators"]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, *packages],
        capture_output=True,
        check=False,
    )
    assert archive.returncode == 0, (
        f"the previous release {PREVIOUS_RELEASE[:7]} is not in this checkout's history "
        f"(a shallow clone?): {archive.stderr.decode()[:300]}"
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def qaqpa(*args: str) -> list[str]:
    """A ``qaqpa`` command, of the release in the working directory it is run in."""
    return [sys.executable, "-m", "qaqpa.cli", *args]


def env_for(code: Path) -> dict[str, str]:
    # -m runs from the working directory first: the release's own packages, not this checkout's
    return {**os.environ, "PYTHONPATH": str(code)}


@contextlib.contextmanager
def daemon(code: Path, school: CrashSchool) -> Iterator[subprocess.Popen[bytes]]:
    log = open(school.root / "daemon.log", "ab")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        qaqpa("run", "--config", str(school.config)),
        cwd=code,
        env=env_for(code),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        finally:
            log.close()
        assert rc == 0, (school.root / "daemon.log").read_text()[-2000:]


def user_version(school: CrashSchool) -> int:
    with contextlib.closing(sqlite3.connect(school.store)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def backlog(school: CrashSchool) -> int:
    with contextlib.closing(sqlite3.connect(school.store)) as db:
        (acked,) = db.execute("SELECT value FROM meta WHERE key = 'acked_through'").fetchone()
        (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
    return int(last) - int(acked)


def tap_and_settle(school: CrashSchool, taps: Taps, n: int) -> None:
    for _ in range(n):
        taps.random_tap()
    wait_until(
        lambda: len(school.actuation_lines()) == taps.offered,
        60,
        f"{school.device} deciding every tap",
    )


def server_has_all(url: str, school: CrashSchool) -> bool:
    with contextlib.closing(sqlite3.connect(f"file:{school.store}?mode=ro", uri=True)) as db:
        (last,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()
    stored = server_events(url, "S1", school.device)
    return sorted(stored) == list(range(1, int(last) + 1))


def test_previous_release_upgraded_in_place_while_taps_continue(
    pg_url: str,
    make_settings: Callable[..., ServerSettings],
    prefix: str,
    tmp_path: Path,
    previous_release: Path,
) -> None:
    settings = make_settings(pg_url)
    engine = make_engine(pg_url)
    proxy = TcpProxy(("127.0.0.1", SYSTEM_BROKER[1]))  # edge-1's link to the centre
    schools: dict[str, CrashSchool] = {}
    for device, port in (("edge-1", proxy.port), ("edge-2", SYSTEM_BROKER[1])):
        with session_factory(engine)() as s:
            key, _, _ = enrolled_device(s, settings, "S1", device)
        write_key_dir(tmp_path / device / "keys", key, "S1", device, port, prefix)
        school = CrashSchool(tmp_path / device / "school", students=40, device=device)
        school.write_files(tmp_path / device / "keys")
        # the store is created by the previous release, as it was in the field
        files = ["--config", str(school.config), "--roster", str(school.root / "roster.json")]
        subprocess.run(
            qaqpa("edge", "import-roster", *files, "--policy", str(school.root / "policy.toml")),
            cwd=previous_release,
            env=env_for(previous_release),
            check=True,
            capture_output=True,
        )
        assert user_version(school) == PREVIOUS_SCHEMA
        schools[device] = school
    one, two = schools["edge-1"], schools["edge-2"]
    rng = random.Random(18)
    taps1, taps2 = Taps(one, rng), Taps(two, rng)
    try:
        with IngestWorker(settings, engine), daemon(previous_release, two):
            with daemon(previous_release, one):
                tap_and_settle(one, taps1, 20)
                tap_and_settle(two, taps2, 20)
                wait_until(lambda: server_has_all(pg_url, one), 30, "edge-1's first taps stored")
                proxy.cut()  # the school's link goes down
                tap_and_settle(one, taps1, 30)
                tap_and_settle(two, taps2, 10)
            # the previous release stopped, its outbox holding the offline taps
            assert user_version(one) == PREVIOUS_SCHEMA
            held = backlog(one)
            assert held >= 30
            for _ in range(10):  # students keep tapping while the edge is being upgraded
                taps1.random_tap()
            with daemon(ROOT, one):
                wait_until(
                    lambda: len(one.actuation_lines()) == taps1.offered,
                    60,
                    "the upgraded edge deciding the taps made during the upgrade",
                )
                assert user_version(one) == SCHEMA_VERSION
                tap_and_settle(one, taps1, 20)
                tap_and_settle(two, taps2, 10)  # the other edge, still the previous release
                assert backlog(one) >= held  # nothing left the outbox while the link is down
                proxy.restore()
                wait_until(lambda: server_has_all(pg_url, one), 60, "edge-1's outbox drained")
                wait_until(lambda: server_has_all(pg_url, two), 60, "edge-2's outbox drained")
                wait_until(lambda: backlog(one) == 0, 30, "edge-1's outbox acknowledged")
    finally:
        taps1.close()
        taps2.close()
        proxy.close()
    counts = count(one, server_events(pg_url, "S1", "edge-1"), taps1.pairs)
    print(f"\nedge-1 (upgraded): {counts}")
    assert counts["actuations"] == taps1.offered == 80
    broken = {k: counts[k] for k in BROKEN if counts[k]}
    assert not broken, broken
    assert counts["server_events"] == counts["journal_events"] >= 80
    assert sorted(server_events(pg_url, "S1", "edge-2")) == list(range(1, 41))
    engine.dispose()
