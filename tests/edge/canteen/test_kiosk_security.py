"""The kiosk's guards, against the real server in the edge's loop and the real store: per-device
sessions (stored hashed, revocable from another process, revoked by a new token, expiring), the
old fixed cookie refused, the ``?token=`` link exchanged for a clean URL, a global throttle on
failed sign-ins whatever the address, CSRF on every write, the console's headers on every
response (the event stream too), and HTTPS with Secure cookies."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.config import ConfigError, load_config
from edge.core.model import Tap
from edge.kiosk.app import COOKIE, CSRF_HEADER, FORM_COOKIE
from edge.kiosk.hub import KioskHub
from edge.kiosk.server import KioskServer
from edge.kiosk.sse import KioskLogin, ScreenStream, sign_in
from edge.pipeline import Pipeline
from edge.store import EdgeStore
from edge.web.guard import SignInThrottle, ThrottleRule, sign_in_delay
from protocol.messages import TerminalKind
from tests.support.canteen_school import SCHOOL, money_invariants, open_school

TOKEN = "kiosk-test-7f3a"
CONSOLE_HEADERS = {  # what server/console/app.py sends
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "cache-control": "no-store",
}


class Kiosk:
    """A school store, its pipeline and hub; ``serve()`` starts a kiosk server on them."""

    def __init__(self, root: Path, store: EdgeStore, hub: KioskHub) -> None:
        self.root, self.store, self.hub = root, store, hub

    def serve(self, token: str = TOKEN, **kw: object) -> KioskServer:
        kw.setdefault("recheck_s", 0.1)
        return KioskServer(self.hub, "127.0.0.1", 0, token, **kw)  # type: ignore[arg-type]

    def config(self) -> Path:
        """An edge.toml of this store, for ``qaqpa edge kiosk-sessions``."""
        path = self.root / "edge.toml"
        path.write_text(
            f'school = "{SCHOOL}"\ndevice = "edge-1"\nstore = "edge.sqlite"\n', encoding="utf-8"
        )
        return path


@pytest.fixture
async def kiosk(tmp_path: Path) -> AsyncIterator[Kiosk]:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            yield Kiosk(tmp_path, store, KioskHub(store, pipeline, ["canteen-1"]))
    finally:
        await store.close()


def client(server: KioskServer, address: str = "127.0.0.1", **kw: object) -> httpx.AsyncClient:
    """A device at ``address`` (any of 127.0.0.0/8: the loopback answers them all)."""
    transport = httpx.AsyncHTTPTransport(local_address=address, **kw)  # type: ignore[arg-type]
    return httpx.AsyncClient(base_url=server.url, transport=transport)


def sessions_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "qaqpa.cli",
            "edge",
            "kiosk-sessions",
            *args,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def tap_pay(hub: KioskHub) -> str:
    outcome = await hub.pipeline.submit(
        Tap(
            at=dt.datetime.now(dt.UTC),
            terminal="canteen-1",
            kind=TerminalKind.CANTEEN,
            credential="UID:04D4E5F6",
        )
    )
    screen = hub.show_tap(outcome)
    assert screen["screen"] == "pay"
    return str(screen["tap_id"])


async def test_the_old_fixed_cookie_no_longer_signs_in(kiosk: Kiosk) -> None:
    """The release before sessions set sha256("qaqpa-kiosk\\0" + token), valid for a year."""
    stolen = hashlib.sha256(b"qaqpa-kiosk\0" + TOKEN.encode()).hexdigest()
    async with kiosk.serve() as server, client(server) as c:
        c.cookies.set(COOKIE, stolen)
        assert (await c.get("/")).status_code == 401
        assert (await c.get("/api/screen", params={"terminal": "canteen-1"})).status_code == 401
        r = await c.post("/api/cancel", json={"terminal": "canteen-1"})
        assert r.status_code == 401


async def test_the_token_link_is_exchanged_for_a_session_and_a_clean_url(kiosk: Kiosk) -> None:
    async with kiosk.serve() as server, client(server) as c:
        r = await c.get("/", params={"token": TOKEN})
        assert (r.status_code, r.headers["location"]) == (303, "/")
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        sid, _, secret = r.cookies[COOKIE].partition(".")
        assert TOKEN not in r.cookies[COOKIE] and len(secret) >= 40
        page = await c.get("/")
        assert page.status_code == 200 and "canteen-1" in page.text

        wrong = await c.get("/", params={"token": "not-the-token"})
        assert (wrong.status_code, wrong.headers["location"]) == (303, "/?failed=1")
    # One session, its secret stored hashed only; the token itself is nowhere in the store.
    (row,) = await kiosk.store.web_sessions()
    stored = await kiosk.store.web_session(sid)
    assert row.id == sid and stored is not None
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    files = b"".join(p.read_bytes() for p in kiosk.root.glob("edge.sqlite*"))
    assert TOKEN.encode() not in files and secret.encode() not in files


async def test_a_revoked_session_is_refused_at_once_and_its_stream_ends(kiosk: Kiosk) -> None:
    """Two devices; the operator revokes one from another process while the kiosk runs."""
    async with kiosk.serve() as server, client(server) as a, client(server) as b:
        login_a, login_b = await sign_in(a, TOKEN), await sign_in(b, TOKEN)
        sid_a, sid_b = (login.cookie.partition(".")[0] for login in (login_a, login_b))
        assert sid_a != sid_b and login_a.csrf != login_b.csrf
        listed = sessions_cli(kiosk.config(), "list")
        assert listed.returncode == 0 and sid_a in listed.stdout and sid_b in listed.stdout

        async with ScreenStream("127.0.0.1", server.port, "canteen-1", login_a.cookie) as stream:
            assert (await stream.next())["screen"] == "idle"
            done = await asyncio.to_thread(sessions_cli, kiosk.config(), "revoke", sid_a)
            assert done.returncode == 0 and f"revoked 1 session(s): {sid_a}" in done.stdout
            assert (await a.get("/api/screen", params={"terminal": "canteen-1"})).status_code == 401
            assert (await a.get("/")).status_code == 401
            with pytest.raises(ConnectionError, match="closed"):
                async with asyncio.timeout(20):
                    await stream.next()
        assert (await b.get("/api/screen", params={"terminal": "canteen-1"})).status_code == 200

        listed = sessions_cli(kiosk.config(), "list", "--all")
        line_a = next(ln for ln in listed.stdout.splitlines() if ln.startswith(sid_a))
        assert "revoked" in line_a and "by an operator" in line_a
        assert sessions_cli(kiosk.config(), "revoke", sid_a).returncode == 1  # not active now
        assert sessions_cli(kiosk.config(), "revoke").returncode == 2  # no id, no --all

        # signing out ends the session on the server, not only in the browser
        r = await b.post("/logout", data={"csrf": login_b.csrf})
        assert r.status_code == 303
        b.cookies.set(COOKIE, login_b.cookie)
        assert (await b.get("/")).status_code == 401


async def test_a_new_staff_token_revokes_every_session_at_start(kiosk: Kiosk) -> None:
    async with kiosk.serve() as server, client(server) as c:
        login = await sign_in(c, TOKEN)
    async with kiosk.serve() as server, client(server) as c:  # a restart, the same token
        c.cookies.set(COOKIE, login.cookie)
        assert (await c.get("/")).status_code == 200
    async with kiosk.serve(token="rotated-token-91") as server, client(server) as c:
        c.cookies.set(COOKIE, login.cookie)
        assert (await c.get("/")).status_code == 401
        with pytest.raises(PermissionError):
            await sign_in(c, TOKEN)
        await sign_in(c, "rotated-token-91")
    (new, old) = await kiosk.store.web_sessions()
    assert (old.revoked_why, new.revoked_ms) == ("token changed", None)


async def test_a_session_expires(kiosk: Kiosk) -> None:
    async with kiosk.serve(session_hours=1 / 3600) as server, client(server) as c:
        login = await sign_in(c, TOKEN)
        (row,) = await kiosk.store.web_sessions()
        while dt.datetime.now(dt.UTC).timestamp() * 1000 < row.expires_ms:
            await asyncio.sleep(0.1)
        c.cookies.set(COOKIE, login.cookie)  # a device that kept the cookie anyway
        assert (await c.get("/api/screen", params={"terminal": "canteen-1"})).status_code == 401


async def test_failed_sign_ins_close_sign_in_for_every_address(kiosk: Kiosk) -> None:
    """Three wrong tokens from three addresses; the right token from a fourth is refused then,
    the form's and the link's sign-ins alike; a device already signed in keeps working."""
    rule = ThrottleRule(free=3, base_s=60.0, cap_s=600.0)
    throttle = SignInThrottle(rule)
    async with kiosk.serve(throttle=throttle) as server, client(server, "127.0.0.9") as staff:
        await sign_in(staff, TOKEN)
        for n in (2, 3, 4):
            async with client(server, f"127.0.0.{n}") as guesser:
                with pytest.raises(PermissionError):
                    await sign_in(guesser, f"guess-{n}-0000")
        async with client(server, "127.0.0.5") as late:
            await late.get("/")
            r = await late.post("/login", data={"token": TOKEN, "csrf": late.cookies[FORM_COOKIE]})
            assert r.status_code == 429 and COOKIE not in r.cookies
            assert 0 < int(r.headers["retry-after"]) <= 60
            assert 'id="throttled"' in r.text
            r = await late.get("/", params={"token": TOKEN})
            assert r.status_code == 429 and COOKIE not in r.cookies
        assert (await staff.get("/api/screen", params={"terminal": "canteen-1"})).is_success
    assert len(await kiosk.store.web_sessions()) == 1


def test_the_delay_grows_to_its_cap_and_failures_are_forgotten() -> None:
    rule = ThrottleRule(free=3, base_s=1.0, cap_s=60.0, window_s=900.0)
    assert [sign_in_delay(n, rule) for n in range(1, 11)] == [
        0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0
    ]  # fmt: skip
    assert sign_in_delay(10_000, rule) == 60.0
    now = [0.0]
    throttle = SignInThrottle(rule, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed()
    assert throttle.wait_s() == 1.0
    now[0] = 1.0
    assert throttle.wait_s() == 0.0
    assert throttle.failed() == 2.0  # the fourth failure in the window
    now[0] = 2000.0  # all forgotten: the next failure is the first again
    assert (throttle.failed(), throttle.recent_failures) == (0.0, 1)


async def test_writes_without_the_csrf_token_are_refused_and_change_nothing(kiosk: Kiosk) -> None:
    async with kiosk.serve() as server, client(server) as c, client(server) as other:
        await sign_in(c, TOKEN)
        other_login: KioskLogin = await sign_in(other, TOKEN)
        tap_id = await tap_pay(kiosk.hub)
        sale = {"terminal": "canteen-1", "tap_id": tap_id, "items": ["soup"]}
        for headers in ({CSRF_HEADER: ""}, {CSRF_HEADER: other_login.csrf}):
            for path, body in (("/api/purchase", sale), ("/api/cancel", sale | {"items": None})):
                body = {k: v for k, v in body.items() if v is not None}
                r = await c.post(path, json=body, headers=headers)
                assert r.status_code == 403, (path, r.text)
        assert await money_invariants(kiosk.store) == {"debits": 0, "debited_tiyn": 0}
        assert kiosk.hub.current("canteen-1")["screen"] == "pay"  # not cancelled either

        # the sign-in form: without its double-submit token no session is made
        sessions = len(await kiosk.store.web_sessions())
        async with client(server) as fresh:
            r = await fresh.post("/login", data={"token": TOKEN})
            assert r.status_code == 403 and COOKIE not in r.cookies
            fresh.cookies.set(FORM_COOKIE, "x" * 32)
            r = await fresh.post("/login", data={"token": TOKEN, "csrf": "y" * 32})
            assert r.status_code == 403 and COOKIE not in r.cookies
        # signing out without the token does not sign out
        assert (await c.post("/logout", data={})).status_code == 403
        assert len(await kiosk.store.web_sessions()) == sessions
        assert all(s.revoked_ms is None for s in await kiosk.store.web_sessions())

        r = await c.post("/api/purchase", json=sale)  # the page's header: sold
        assert r.status_code == 200 and r.json()["screen"] == "served"
    assert await money_invariants(kiosk.store) == {"debits": 1, "debited_tiyn": 30_000}


async def test_every_response_carries_the_consoles_security_headers(kiosk: Kiosk) -> None:
    async with kiosk.serve() as server, client(server) as c:
        anonymous = [
            await c.get("/"),
            await c.get("/", params={"token": "wrong-token-1"}),
            await c.post("/login", data={"token": "x"}),
            await c.get("/healthz"),
            await c.get("/static/kiosk.js"),
            await c.get("/api/screen", params={"terminal": "canteen-1"}),
            await c.get("/no-such-page"),
        ]
        login = await sign_in(c, TOKEN)
        signed_in = [
            await c.get("/"),
            await c.get("/api/screen", params={"terminal": "canteen-1"}),
            await c.get("/api/screen", params={"terminal": "nope"}),
            await c.post("/api/cancel", json={"terminal": "canteen-1"}),
            await c.post("/api/cancel", json={"terminal": "canteen-1"}, headers={CSRF_HEADER: ""}),
            await c.post("/api/purchase", json={"bad": 1}),
        ]
        async with c.stream("GET", "/api/stream", params={"terminal": "canteen-1"}) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            streamed = [sse]
        statuses = [r.status_code for r in anonymous + signed_in]
        assert statuses == [401, 303, 403, 200, 200, 401, 404, 200, 200, 404, 200, 403, 422]
        for r in anonymous + signed_in + streamed:
            assert {k: r.headers.get(k) for k in CONSOLE_HEADERS} == CONSOLE_HEADERS, r.url
        page = await c.get("/")
        assert "<script>" not in page.text and "<style>" not in page.text  # CSP: files only
        assert f'content="{login.csrf}"' in page.text


def self_signed(root: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge.school.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = root / "kiosk.crt", root / "kiosk.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    (tmp_path / "tls").mkdir()
    yield self_signed(tmp_path / "tls")


async def test_https_with_the_schools_certificate_and_secure_cookies(
    kiosk: Kiosk, tls_files: tuple[Path, Path]
) -> None:
    trusted = ssl.create_default_context(cafile=str(tls_files[0]))
    async with kiosk.serve(tls=tls_files) as server:
        assert server.url.startswith("https://127.0.0.1:")
        async with client(server, verify=trusted) as c:
            r = await c.get("/", params={"token": TOKEN})
            assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
            assert (await c.get("/")).status_code == 200
        async with httpx.AsyncClient(base_url=server.url.replace("https", "http")) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/healthz")


def test_tls_settings_are_checked_at_load(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    base = f'school = "S1"\ndevice = "e"\nstore = "s.sqlite"\n[kiosk]\ntoken = "{TOKEN}"\n'
    path = tmp_path / "edge.toml"
    path.write_text(base + f'tls_certfile = "{tls_files[0]}"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="set both or neither"):
        load_config(path)
    path.write_text(
        base + f'tls_certfile = "{tls_files[0]}"\ntls_keyfile = "missing.key"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"kiosk\.tls_keyfile: .*missing\.key is not a file"):
        load_config(path)
    path.write_text(
        base + f'tls_certfile = "{tls_files[0]}"\ntls_keyfile = "{tls_files[1]}"\n'
        "session_hours = 8\n",
        encoding="utf-8",
    )
    kiosk = load_config(path).kiosk
    assert kiosk is not None and kiosk.tls == tls_files and kiosk.session_hours == 8
