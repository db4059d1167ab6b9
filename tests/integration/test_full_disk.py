"""A full disk at the school (README, "Full disk"): the real daemon with its store on a small
filesystem of its own (a tmpfs), filled while taps go on.

Record before act: a tap the store cannot record is refused, with the reason said, and nothing
is actuated. When space returns the daemon carries on by itself: the next taps are granted, the
journal's sequence has no gap, nothing is journaled twice, and the outage itself is journaled
(``store_full``, with how many taps were refused) once it can be."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.messages import AlarmCode, AlarmEvent, EntryEvent, LibraryVisitEvent
from tests.support.edge_harness import School
from tests.support.inproc_daemon import running
from tests.support.wait import wait_until_async


@contextlib.contextmanager
def small_filesystem(at: Path, size: str) -> Iterator[Path]:
    at.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (needs root): {done.stderr!r}")
    try:
        yield at
    finally:
        subprocess.run(["umount", "-l", str(at)], check=False)


def fill(fs: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@pytest.mark.timeout(180)
async def test_a_full_disk_refuses_what_it_cannot_record_and_recovers_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    school = School(tmp_path / "school", students=40)
    school.write()
    with small_filesystem(tmp_path / "fs", "4m") as fs:
        store = fs / "edge.sqlite"
        shutil.move(school.root / "edge.sqlite", store)
        for extra in ("-wal", "-shm"):
            old = school.root / f"edge.sqlite{extra}"
            if old.exists():
                shutil.move(old, fs / old.name)
        key = school.root / "card.key"  # stays on the roomy disk, beside the config
        text = school.config.read_text().replace(
            'store = "edge.sqlite"', f'store = "{store}"\ncard_key_file = "{key}"'
        )
        school.config.write_text(text)

        caplog.set_level(logging.ERROR, logger="edge")
        async with running(school, store=store) as d:
            for i in range(5):  # a normal morning
                assert isinstance(await d.tap_and_record("gate-1", school.card(i)), EntryEvent)

            filler = fill(fs)
            refused: list[int] = []
            for i in range(5, 40):  # until the store cannot write: each tap refused, not opened
                before_lines = len(school.actuation_lines())
                before_events = len(d.journal())
                caplog.clear()
                d.tap("lib-1", school.card(i))
                await wait_until_async(
                    lambda b=before_events: (
                        len(d.journal()) > b  # type: ignore[misc]
                        or "tap refused" in caplog.text
                    ),
                    15,
                    "the tap recorded or refused",
                )
                if "tap refused" in caplog.text:
                    refused.append(i)
                    assert "full" in caplog.text  # "database or disk is full": the reason
                    assert len(school.actuation_lines()) == before_lines  # nothing actuated
                    assert len(d.journal()) == before_events
                    if len(refused) == 3:
                        break
            assert len(refused) == 3, "the filled disk never refused a tap"

            os.unlink(filler)  # the technician makes space
            # the same students tap again: granted now, by themselves (no restart)
            for i in refused:
                assert isinstance(
                    await d.tap_and_record("lib-1", school.card(i)), LibraryVisitEvent
                )
            await wait_until_async(
                lambda: [
                    e
                    for e in d.journal()
                    if isinstance(e, AlarmEvent) and e.code is AlarmCode.STORE_FULL
                ],
                10,
                "the outage journaled",
            )
        journal = d.journal()
        lines = school.actuation_lines()

    seqs = [e.seq for e in journal]
    assert seqs == list(range(1, len(seqs) + 1)), "a gap in the journal's sequence"
    by_seq = {e.seq: e for e in journal}
    assert all(seq in by_seq and by_seq[seq].terminal == t for t, seq, _ in lines)
    assert len({seq for _, seq, _ in lines}) == len(lines)  # nothing actuated twice
    visits = [e.student_id for e in journal if isinstance(e, LibraryVisitEvent)]
    assert len(visits) == len(set(visits)), "a tap journaled twice"
    assert {f"s{i}" for i in refused} <= set(visits)
    outage = [e for e in journal if isinstance(e, AlarmEvent) and e.code is AlarmCode.STORE_FULL]
    assert [e.active for e in outage] == [True, False]
    assert outage[0].detail.startswith(f"{len(refused)} taps refused")
