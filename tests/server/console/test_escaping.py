"""Text a user typed is escaped wherever the console shows it, error pages included."""

from __future__ import annotations

from tests.support.console import Browser, World


def test_error_page_escapes_what_the_user_typed(browser: Browser, world: World) -> None:
    browser.login("admin1")
    r = browser.get("/reports/attendance?day=<script>x")
    assert r.status_code == 400
    assert "<script>x" not in r.text
    assert "&lt;script&gt;" in r.text


def test_translated_text_from_a_variable_is_escaped() -> None:
    from server.console.web import env

    html = env.from_string("{{ _(m) }}|{{ m | t }}").render(m="<b>x</b>")
    assert html == "&lt;b&gt;x&lt;/b&gt;|&lt;b&gt;x&lt;/b&gt;"
