"""The suite's own rules: service markers are applied by fixture and checked at run time."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.markers import BROWSER_DIR, GUARD, mark_by_fixtures


def test_a_test_using_a_postgres_fixture_carries_the_marker(
    request: pytest.FixtureRequest, pg_url: str
) -> None:
    assert request.node.get_closest_marker("postgres") is not None


def test_markers_follow_fixtures_and_the_browser_folder() -> None:
    class Item:
        def __init__(self, path: Path, fixturenames: list[str]) -> None:
            self.path, self.fixturenames = path, fixturenames
            self.marks: list[str] = []

        def get_closest_marker(self, name: str) -> str | None:
            return name if name in self.marks else None

        def add_marker(self, mark: Any) -> None:
            self.marks.append(mark.name)

    here = Path(__file__)
    items = [
        Item(here, ["settings", "pg_console_url"]),
        Item(here, ["private_broker", "tmp_path"]),
        Item(here, ["vpcd_readers"]),
        Item(BROWSER_DIR / "test_x.py", ["app"]),
        Item(here, ["tmp_path"]),
    ]
    mark_by_fixtures(items)  # type: ignore[arg-type]
    assert [i.marks for i in items] == [["postgres"], ["mosquitto"], ["pcscd"], ["browser"], []]


def test_serial_marks_timed_folders_and_machine_wide_resources() -> None:
    """make test runs ``not serial`` on several workers: what keeps time against real processes
    and what holds a machine-wide resource must be ``serial``; the rest must not be."""
    from tests.support.markers import TESTS_DIR, mark_serial

    class Item:
        def __init__(self, path: Path, marks: list[str]) -> None:
            self.path, self.marks = path, marks

        def get_closest_marker(self, name: str) -> str | None:
            return name if name in self.marks else None

        def add_marker(self, mark: Any) -> None:
            self.marks.append(mark.name)

    items = [
        Item(TESTS_DIR / "integration" / "sync" / "test_x.py", []),
        Item(TESTS_DIR / "hardware" / "test_x.py", []),
        Item(TESTS_DIR / "browser" / "test_x.py", ["browser"]),
        Item(TESTS_DIR / "server" / "replica" / "test_x.py", ["postgres", "exclusive"]),
        Item(TESTS_DIR / "edge" / "test_x.py", ["pcscd"]),
        Item(TESTS_DIR / "server" / "test_x.py", ["rabbitmq"]),
        Item(TESTS_DIR / "server" / "console" / "test_x.py", ["postgres"]),
        Item(TESTS_DIR / "edge" / "test_x.py", ["mosquitto"]),
        Item(TESTS_DIR / "protocol" / "test_x.py", []),
    ]
    mark_serial(items)  # type: ignore[arg-type]
    assert ["serial" in i.marks for i in items] == [True] * 6 + [False] * 3


def test_the_guard_catches_an_unmarked_use_of_a_service() -> None:
    with socket.socket() as s:
        s.settimeout(1)
        s.connect_ex(("127.0.0.1", 1883))  # refused or accepted: either way the test touched it
    try:
        assert GUARD.unmarked == {"mosquitto"}
    finally:
        GUARD.unmarked.clear()  # this test is meant to break the rule: do not fail it
