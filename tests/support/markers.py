"""Every test that needs a real service carries its marker (``-m 'not pcscd'`` deselects exactly
those that need pcscd), and the suite checks it.

- ``mark_by_fixtures`` (called at collection by ``tests/conftest.py``) adds the marker of each
  service whose fixtures a test uses, directly or through other fixtures, and ``browser`` to
  everything under ``tests/browser``.
- A guard records a service touched by a test that lacks its marker (a PostgreSQL database made,
  a connection to Mosquitto's or vpcd's port, a private broker or Chromium started); the test
  then fails at teardown with the marker it needs. A module whose tests reach a service without
  a fixture says so with ``pytestmark``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

SERVICES = ("postgres", "mosquitto", "pcscd", "browser", "rabbitmq")

# fixtures (from tests/conftest.py and the folders' conftests) that start or reach a service
SERVICE_FIXTURES: dict[str, frozenset[str]] = {
    "postgres": frozenset({"pg_url", "pg_console_url"}),
    "mosquitto": frozenset({"private_broker"}),
    "pcscd": frozenset({"vpcd_readers"}),
    "rabbitmq": frozenset({"rabbit_cluster"}),
}
# TCP ports on 127.0.0.1 whose connection means the service (PostgreSQL is reached from C, see
# ``require`` in tests/support/services.py)
SERVICE_PORTS = {
    1883: "mosquitto",
    35963: "pcscd",
    **{port: "rabbitmq" for port in (8891, 8892, 8893, 5681, 5682, 5683, 5691, 5692, 5693)},
}
BROWSER_DIR = Path(__file__).resolve().parents[1] / "browser"


# ``make test`` runs the suite in two phases: first every test not marked ``serial`` on several
# pytest-xdist workers side by side (fresh databases, private topic prefixes and brokers, free
# ports: nothing shared), then the ``serial`` ones one at a time. ``serial`` is added here to
# what must not share the machine: the tests of real processes, devices and browsers that keep
# time (tests/integration, tests/hardware, tests/browser: their deadlines are for a machine not
# loaded by other tests), and what one machine has only one of: the vpcd reader pcscd serves,
# the RabbitMQ test cluster, a test's own PostgreSQL on fixed ports (``pytest.mark.exclusive``).
TESTS_DIR = Path(__file__).resolve().parents[1]
SERIAL_DIRS = tuple(TESTS_DIR / d for d in ("integration", "hardware", "browser"))
SERIAL_MARKERS = ("pcscd", "rabbitmq", "exclusive")


def mark_serial(items: Iterable[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("serial") is not None:
            continue
        parents = Path(str(item.path)).parents
        if any(d in parents for d in SERIAL_DIRS) or any(
            item.get_closest_marker(m) is not None for m in SERIAL_MARKERS
        ):
            item.add_marker(pytest.mark.serial)


def mark_by_fixtures(items: Iterable[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for service, fixtures in SERVICE_FIXTURES.items():
            if used & fixtures and item.get_closest_marker(service) is None:
                item.add_marker(getattr(pytest.mark, service))
        if BROWSER_DIR in Path(str(item.path)).parents and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.browser)


class Guard:
    """The test running now and the services it touched without their marker."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.unmarked: set[str] = set()
        self._lock = threading.Lock()

    def require(self, service: str) -> None:
        item = self.item
        if item is not None and item.get_closest_marker(service) is None:
            with self._lock:
                self.unmarked.add(service)

    def start(self, item: pytest.Item) -> None:
        self.item, self.unmarked = item, set()

    def finish(self) -> list[str]:
        missing, self.item, self.unmarked = sorted(self.unmarked), None, set()
        return missing


GUARD = Guard()
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _check_address(address: Any) -> None:
    if (
        isinstance(address, tuple)
        and len(address) >= 2
        and address[1] in SERVICE_PORTS
        and address[0] in ("127.0.0.1", "localhost", "::1")
    ):
        GUARD.require(SERVICE_PORTS[address[1]])


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _connect_ex(self, address)


def install_socket_guard() -> None:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
