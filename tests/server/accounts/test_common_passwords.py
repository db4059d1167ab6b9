"""Common passwords (zxcvbn's list of 30,000 and a few local ones) are refused, also with digits
or symbols added at the end; an uncommon one of letters and digits is accepted."""

from __future__ import annotations

import pytest

from server.accounts.passwords import WeakPassword, check_strength
from tests.support.console import Browser, World, password_of


@pytest.mark.parametrize(
    "password", ["password12", "Password123!", "qwerty12345", "1q2w3e4r5t", "parol12345"]
)
def test_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_strength(password)


@pytest.mark.parametrize("password", ["Str0ng-enough", "kettle-7-orbit", password_of("admin1")])
def test_uncommon_passwords_pass(password: str) -> None:
    check_strength(password)


def test_a_password_change_to_a_common_password_is_refused(browser: Browser, world: World) -> None:
    browser.login("admin1")
    browser.get("/account/password")
    r = browser.post(
        "/account/password",
        {"current": password_of("admin1"), "password": "password12", "password2": "password12"},
    )
    assert r.status_code == 400
