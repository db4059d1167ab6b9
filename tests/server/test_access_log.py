"""Invitation tokens stay out of the access log: the real ``qaqpa server api`` (uvicorn) serves
an invitation link and the token is not in what it logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from server.log_filters import RedactSecrets, redact
from tests.support.services import free_port, wait_port

TOKEN = "Zq8-invitation-token-that-must-not-be-logged-0123"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_the_access_log_has_no_invitation_token(tmp_path: Path) -> None:
    qaqpa = str(Path(sys.executable).parent / "qaqpa")
    env = {**os.environ, "QAQPA_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 's.db'}"}
    subprocess.run([qaqpa, "server", "migrate"], env=env, check=True, capture_output=True)
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [qaqpa, "server", "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_port(port, 30)
            assert _get(f"http://127.0.0.1:{port}/invite/{TOKEN}") == 410
            assert _get(f"http://127.0.0.1:{port}/login?next=/&token={TOKEN}") == 200
        finally:
            proc.terminate()
            proc.wait(10)
    text = log.read_text()
    assert "GET /invite/… HTTP/1.1" in text, text[-2000:]
    assert TOKEN not in text


def test_the_filter_redacts_paths_and_queries() -> None:
    assert redact(f"/invite/{TOKEN}") == "/invite/…"
    assert redact(f"/login?next=/x&token={TOKEN}&b=1") == "/login?next=/x&token=…&b=1"
    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s %s"', ("1.2.3.4", "GET", f"/invite/{TOKEN}"), None
    )
    RedactSecrets().filter(record)
    assert TOKEN not in record.getMessage()
