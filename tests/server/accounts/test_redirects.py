"""The sign-in redirect goes to a local path only: ``next`` values that a browser reads as
another site (``//evil``, ``/\\evil``, tabs, encoded forms) fall back to ``/``."""

from __future__ import annotations

import pytest

from server.accounts.routes import _safe_next
from tests.support.console import Browser, World, password_of

EVIL = [
    "//evil.example/x",
    "/\\evil.example/x",
    "/\\\\evil.example/x",
    "\\\\evil.example/x",
    "/%5Cevil.example/x",
    "/%5cevil.example/x",
    "/%2F%2Fevil.example/x",
    "%2F%2Fevil.example/x",
    "/%252F%252Fevil.example/x",
    "/\t/evil.example/x",
    "/%09/evil.example/x",
    "/\n/evil.example",
    "https://evil.example/x",
    "javascript:alert(1)",
    "evil.example",
]


@pytest.mark.parametrize("target", EVIL)
def test_other_sites_fall_back_to_home(target: str) -> None:
    assert _safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/users", "/reports/attendance?school=S1&day=2026-11-20"])
def test_local_paths_are_kept(target: str) -> None:
    assert _safe_next(target) == target


def test_sign_in_with_a_backslash_next_lands_home(browser: Browser, world: World) -> None:
    browser.get("/login")
    r = browser.post(
        "/login",
        {"login": "admin1", "password": password_of("admin1"), "next": "/\\evil.example/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
