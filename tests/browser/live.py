"""A live console for browser tests: uvicorn serving the real app on a free port in a thread, and
headless Chromium (Debian's, driven by Playwright) with the flags ENV-NOTES asks for."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from tests.support.markers import GUARD
from tests.support.wait import wait_until

CHROMIUM = os.environ.get("QAQPA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

FOUND = shutil.which(CHROMIUM) is not None or os.path.exists(CHROMIUM)
NOT_FOUND = f"Chromium not found at {CHROMIUM} (make test installs Debian's chromium)"
# Skipped on a developer's machine without Chromium; under CI=true the tests run and fail.
needs_chromium = pytest.mark.skipif(
    not FOUND and os.environ.get("CI", "").lower() != "true", reason=NOT_FOUND
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 20, "the console starts")
    if not server.started:
        raise RuntimeError("the console did not start (its thread ended)")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser on Debian's Chromium (Playwright gives it a fresh empty profile).
    ``browser.new_page()`` opens a page in a context of its own: two users, two sessions."""
    from playwright.sync_api import sync_playwright

    GUARD.require("browser")
    if not FOUND:
        pytest.fail(f"{NOT_FOUND}; CI=true needs it")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
