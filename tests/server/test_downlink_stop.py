"""``qaqpa server downlink`` started while the database is away waits for it; SIGTERM (a
``systemctl stop``, a container stop) must end that wait, not hang until SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from server.centre_key import temporary_key_file
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The first line the test waits for before SIGTERM: the downlink's own wait, or the due-policy
# job's first failure, which may come before the downlink has begun (CI once sent SIGTERM then
# and the process died of it, rc -15, because the signals were caught only after the job began).
@pytest.mark.parametrize("line", [b"downlink: the database", b"due policies: the database"])
def test_sigterm_ends_a_downlink_still_waiting_for_the_database(
    tmp_path: Path, line: bytes
) -> None:
    log = tmp_path / "downlink.log"
    with temporary_key_file() as key_file, log.open("wb") as err:
        env = {
            **os.environ,
            "QAQPA_SERVER_DATABASE_URL": (
                f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/nowhere"
            ),
            "QAQPA_SERVER_CENTRE_KEY_FILE": str(key_file),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "qaqpa.cli", "server", "downlink"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_until(
                lambda: line + b" is unreachable" in log.read_bytes() or proc.poll() is not None,
                30,
                "the downlink waits for the database",
            )
            assert proc.poll() is None, log.read_text()  # waiting, not exited
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)  # a deadline for a hang, not a timing figure
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert rc == 0, text
    assert "downlink: stopped while waiting for the database" in text
