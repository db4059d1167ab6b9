"""Request bodies are limited per route while they are read: an over-limit body, declared or
streamed without a length, is answered 413 and the server does not hold it. The streamed case
runs the real ``qaqpa server api`` (uvicorn) in its own process and reads its resident memory."""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.http_limits import LIMITS, MIB
from tests.support.services import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
STREAMED = 96 * MIB
CHUNK = 256 * 1024
FORM = {"content-type": "application/x-www-form-urlencoded"}


@contextlib.contextmanager
def api_process(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """``qaqpa server api`` on a free port; yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "QAQPA_SERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'server.db'}",
        "QAQPA_CANTEEN_PROVIDER_SECRET": "callback-secret-for-the-body-limit-test-0123",
    }
    qaqpa = Path(sys.executable).parent / "qaqpa"
    proc = subprocess.Popen(
        [str(qaqpa), "server", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, 30)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert m is not None
    return int(m.group(1)) * 1024


def stream_chunked(port: int, path: str, total: int) -> tuple[int, bytes, int]:
    """POST ``total`` bytes with chunked transfer encoding (no Content-Length), stopping when
    the server answers; returns (status, response, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b'{"token": "' + b"a" * (CHUNK - 11) + b"\r\n"
        answered = False
        while sent < total:
            ready, _w, _x = select.select([s], [], [], 0.02)
            if ready:
                answered = True
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        if not answered:
            with contextlib.suppress(OSError):
                s.sendall(b"0\r\n\r\n")
        s.settimeout(30)
        response = b""
        with contextlib.suppress(ConnectionResetError):
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                part = s.recv(65536)
                if not part:
                    break
                response += part
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response, sent


@pytest.mark.parametrize("path", ["/api/v1/enrol", "/canteen/api/payments/callback"])
def test_a_streamed_body_over_the_limit_is_refused_while_read(tmp_path: Path, path: str) -> None:
    with api_process(tmp_path) as (port, pid):
        # Warm up: the first request imports and builds what the route needs.
        stream_chunked(port, path, 1)
        before = rss_bytes(pid)
        status, response, sent = stream_chunked(port, path, STREAMED)
        grown = rss_bytes(pid) - before
    # The server stopped reading early: it neither received nor holds the streamed size.
    assert sent < STREAMED // 4, f"the client could send {sent} bytes"
    assert grown < STREAMED // 4, f"the server grew by {grown / MIB:.0f} MiB"
    assert status == 413, response[:300]
    assert b"too large" in response and str(LIMITS.for_path(path)).encode() in response


def test_a_declared_length_over_the_limit_is_refused_before_reading(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/enrol",
            content=b"{}" + b" " * 5000,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]
        # Within the limit the route answers as before.
        ok = client.post("/api/v1/enrol", json={"token": "x" * 8, "device": "d", "public_key": ""})
        assert ok.status_code in (403, 422)


def test_limits_per_route(app) -> None:  # type: ignore[no-untyped-def]
    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n // 65536):
            yield b"x" * 65536

    with TestClient(app) as client:
        # The default (forms): 2 MiB streamed without a length is refused.
        r = client.post("/login", content=chunks(2 * MIB), headers=FORM)
        assert r.status_code == 413
        # The roster import takes a larger body, but not 7 MiB.
        big = client.post("/roster/import", content=chunks(7 * MIB), headers=FORM)
        assert big.status_code == 413 and str(6 * MIB) in big.json()["detail"]
        small = client.post("/roster/import", content=chunks(2 * MIB), headers=FORM)
        assert small.status_code != 413


def test_the_reverse_proxy_has_the_same_limits() -> None:
    conf = (ROOT / "deploy" / "nginx" / "qaqpa.conf").read_text()
    default = re.search(r"^\s*client_max_body_size\s+(\d+);", conf, re.MULTILINE)
    assert default is not None and int(default.group(1)) == LIMITS.default
    for path, limit in LIMITS.routes.items():
        block = re.search(
            rf"location\s+=\s+{re.escape(path)}\s*\{{[^}}]*client_max_body_size\s+(\d+);", conf
        )
        assert block is not None, f"no location = {path} in the nginx config"
        assert int(block.group(1)) == limit, path
