"""The console in a real browser (headless Chromium): sign in, language, sign out."""

from __future__ import annotations

from typing import Any

from tests.browser.live import chromium, needs_chromium, serve
from tests.support.console import World, password_of

pytestmark = needs_chromium


def test_sign_in_choose_language_and_sign_out(app: Any, world: World) -> None:
    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/users")
        # Not signed in: the sign-in page, in Kazakh by default.
        assert page.url.startswith(f"{url}/login")
        assert page.locator("h1").inner_text() == "Кіру"
        page.fill("input[name=login]", "admin1")
        page.fill("input[name=password]", "wrong-password-1")
        page.click("button[type=submit]")
        assert "Логин немесе құпиясөз қате." in page.locator("[role=alert]").inner_text()
        page.fill("input[name=login]", "admin1")
        page.fill("input[name=password]", password_of("admin1"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/users")
        assert page.locator("h1").inner_text() == "Пайдаланушылар"
        # The language menu submits itself (console.js) and the choice sticks to the account.
        page.select_option("select[name=lang]", "ru")
        page.wait_for_function("document.querySelector('h1').innerText === 'Пользователи'")
        page.goto(f"{url}/")
        assert "Здравствуйте" in page.locator("h1").inner_text()
        page.click("button:has-text('Выйти')")
        page.wait_for_url(f"{url}/login")
        page.goto(f"{url}/users")
        assert page.url.startswith(f"{url}/login")
