"""Sign-in, sessions, CSRF, invitations, first-login password change, lockout, language."""

from __future__ import annotations

from sqlalchemy import select

from server.accounts import passwords
from server.accounts.models import User
from tests.support.console import Browser, World, password_of


def test_sign_in_out_and_pages_need_a_session(browser: Browser, world: World) -> None:
    r = browser.get("/users")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/users"
    browser.login("admin1")
    r = browser.get("/users")
    assert r.status_code == 200 and "admin1" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    r = browser.post("/logout")
    assert r.status_code == 303
    assert browser.get("/users").status_code == 303


def test_login_form_needs_its_csrf_cookie(browser: Browser, world: World) -> None:
    r = browser.client.post(
        "/login",
        data={"login": "admin1", "password": password_of("admin1"), "csrf": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403


def test_write_without_csrf_token_is_refused_and_changes_nothing(
    browser: Browser, world: World, db
) -> None:  # type: ignore[no-untyped-def]
    browser.login("admin1")
    r = browser.client.post(
        "/users",
        data={"login": "evil", "full_name": "X", "role": "duty_deputy", "school_id": "S1"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert db.execute(select(User).where(User.login == "evil")).first() is None


def test_open_redirect_is_refused(browser: Browser, world: World) -> None:
    browser.get("/login")
    r = browser.post(
        "/login",
        {"login": "admin1", "password": password_of("admin1"), "next": "//evil.example/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_invitation_first_login_and_password_change(make_browser, world: World, db) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = admin.post(
        "/users",
        {"login": "newduty", "full_name": "New Duty", "role": "duty_deputy", "school_id": "S1"},
    )
    assert r.status_code == 200, r.text
    link = r.text.split('id="invite-url">')[1].split("<")[0]
    path = link[link.index("/invite/") :]
    invited = make_browser()
    invited.get(path)
    r = invited.post(path, {"password": "short", "password2": "short"})
    assert r.status_code == 400
    r = invited.post(path, {"password": "Str0ng-enough", "password2": "Str0ng-enough"})
    assert r.status_code == 303
    # The link works once.
    assert make_browser().get(path).status_code == 410
    again = make_browser()
    again.login("newduty", "Str0ng-enough")
    assert again.get("/").status_code == 200


def test_a_school_admin_cannot_grant_roles_in_another_school(
    make_browser, world: World, db
) -> None:  # type: ignore[no-untyped-def]
    admin = make_browser("admin1")
    r = admin.post(
        "/users", {"login": "x3", "full_name": "X", "role": "duty_deputy", "school_id": "S3"}
    )
    assert r.status_code == 403
    r = admin.post(
        "/users", {"login": "x4", "full_name": "X", "role": "school_admin", "school_id": "S1"}
    )
    assert r.status_code == 403
    assert db.execute(select(User).where(User.login.in_(["x3", "x4"]))).first() is None


def test_language_choice_kazakh_by_default(make_browser, world: World) -> None:  # type: ignore[no-untyped-def]
    anon = make_browser()
    assert "Кіру" in anon.get("/login").text
    anon.post("/lang", {"lang": "ru", "next": "/login"})
    assert "Войти" in anon.get("/login").text
    user = make_browser("admin1")
    user.post("/lang", {"lang": "en", "next": "/"})
    assert "Sign out" in user.get("/").text


def test_the_language_chosen_on_the_sign_in_page_stays_after_signing_in(
    make_browser, world: World
) -> None:  # type: ignore[no-untyped-def]
    b = make_browser()
    b.post("/lang", {"lang": "en", "next": "/login"})
    assert "Sign in" in b.get("/login").text
    b.login("teacher1")  # whose account says Kazakh
    assert "Sign out" in b.get("/").text
    again = make_browser()  # another day, another browser: the account remembers
    again.login("teacher1")
    assert "Sign out" in again.get("/").text


def test_production_hashes_passwords_with_argon2id_at_rfc_9106_cost() -> None:
    """The suite hashes cheaply (tests/conftest.py); the server's own hasher does not."""
    from tests.conftest import PRODUCTION_HASHER

    stored = PRODUCTION_HASHER.hash("a-long-pass-42")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(stored, "a-long-pass-42")  # the cheap one reads its cost
