"""The kiosk in a real browser against a running edge daemon with a real card path: headless
Chromium (Playwright driving Debian's /usr/bin/chromium) shows what a virtual contactless card
tapped on pcscd's vpcd reader decided, in large type and colour, and staff sell a paid meal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from edge.store import EdgeStore
from simulators.vpcd_card import VirtualCard, wait_card_state
from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.support.canteen_school import (
    SCHOOL,
    money_delta,
    money_invariants,
    qr,
    snapshot,
    voucher_delta,
)
from tests.support.wait import wait_until_async

READER = "Virtual PCD 00 01"
TOKEN = "browser-kiosk-5c1d"

pytestmark = [pytest.mark.pcscd, needs_chromium]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_vpcd() -> None:
    try:
        from smartcard.scard import (
            SCARD_S_SUCCESS,
            SCARD_SCOPE_USER,
            SCardEstablishContext,
            SCardListReaders,
            SCardReleaseContext,
        )
    except ImportError:
        pytest.fail("pyscard is not installed: pip install '.[pcsc]'")
    hresult, ctx = SCardEstablishContext(SCARD_SCOPE_USER)
    if hresult != SCARD_S_SUCCESS:
        pytest.fail("pcscd is not running: start it with deploy/start-services.sh")
    hresult, names = SCardListReaders(ctx, [])
    SCardReleaseContext(ctx)
    if READER not in (names if hresult == SCARD_S_SUCCESS else []):
        pytest.fail(f"the vpcd reader {READER!r} is absent: install vsmartcard-vpcd, restart pcscd")


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    require_vpcd()
    store = await EdgeStore.open(tmp_path / "edge.sqlite", school=SCHOOL, device="edge-1")
    await store.apply_snapshot(snapshot())
    await store.close()
    port = free_port()
    config = tmp_path / "edge.toml"
    config.write_text(
        f'school = "{SCHOOL}"\ndevice = "edge-1"\nstore = "edge.sqlite"\n'
        "[[terminal]]\n"
        'id = "canteen-1"\nkind = "canteen"\n'
        f'reader = {{ type = "pcsc", reader_id = "canteen-1", reader_name = "{READER}" }}\n'
        f'[kiosk]\nlisten = "127.0.0.1:{port}"\ntoken = "{TOKEN}"\n',
        encoding="utf-8",
    )
    delta = tmp_path / "delta.json"
    delta.write_text(money_delta().model_dump_json(by_alias=True), encoding="utf-8")
    cli = [sys.executable, "-m", "qaqpa.cli"]
    applied = subprocess.run(
        [*cli, "edge", "apply-delta", "--config", str(config), "--delta", str(delta)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    # the social wallet's public key and a small card voucher of s-allergy (the QR test)
    vouchers = tmp_path / "vouchers.json"
    vouchers.write_text(
        voucher_delta(version=3, amount=1_000, student_id="s-allergy").model_dump_json(
            by_alias=True
        ),
        encoding="utf-8",
    )
    applied = subprocess.run(
        [*cli, "edge", "apply-delta", "--config", str(config), "--delta", str(vouchers)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [*cli, "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        async with httpx.AsyncClient() as client:

            async def healthy() -> bool:
                assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
                try:
                    return (await client.get(url + "healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until_async(healthy, 20, "the daemon answers /healthz", interval=0.1)
        yield url, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert code == 0, text
    assert "canteen kiosk at" in text
    for personal in ("Айгерім", "Нұрлан", "04A1B2C3", "04D4E5F6", TOKEN):  # children's data
        assert personal not in text


async def present(uid: str) -> None:
    """Put a card on the reader until the daemon has read it, then take it off."""
    card = VirtualCard(bytes.fromhex(uid))
    await asyncio.to_thread(card.insert, 1)
    try:
        assert await asyncio.to_thread(wait_card_state, READER, True)
        await wait_until_async(lambda: card.apdus, 5, "the daemon reads the card's UID")
    finally:
        await asyncio.to_thread(card.remove)
        assert await asyncio.to_thread(wait_card_state, READER, False)


async def test_kiosk_in_chromium_with_the_virtual_card(daemon: tuple[str, Path]) -> None:
    from playwright.async_api import async_playwright, expect

    url, root = daemon
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.fill("#token", "wrong-token-1")
            await page.click("#sign-in")
            await expect(page.locator("#failed")).to_be_visible()
            await page.fill("#token", TOKEN)
            await page.click("#sign-in")
            panel = page.locator("#panel")
            await expect(panel).to_have_attribute("data-screen", "idle")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "open")

            # a free meal (grade 2): green, Kazakh by default, initials for the consented photo
            await present("04A1B2C3")
            await expect(panel).to_have_attribute("data-screen", "free_meal")
            await expect(panel).to_have_class("green")
            await expect(page.locator("#headline")).to_have_text("ТЕГІН ТАМАҚ")
            await expect(page.locator("#at")).to_have_text(re.compile(r"^\d\d:\d\d$"))
            await expect(page.locator("#name")).to_have_text("Айгерім Сейітова")
            await expect(page.locator("#photo")).to_have_text("АС")

            # the same student again: ALREADY SERVED with when and where, in Russian
            await page.click("[data-lang=ru]")
            await present("04A1B2C3")
            await expect(panel).to_have_attribute("data-screen", "already_served")
            await expect(page.locator("#headline")).to_have_text("УЖЕ ВЫДАНО")
            await expect(page.locator("#detail")).to_contain_text("canteen-1")

            # a paying student: the menu, two items, confirm -> debit -> receipt
            await page.click("[data-lang=en]")
            await present("04D4E5F6")
            await expect(panel).to_have_attribute("data-screen", "pay")
            await expect(page.locator("#headline")).to_have_text("PAY")
            await expect(page.locator("#photo")).to_have_text("НӘ")  # no photo: the initials
            await expect(page.locator("#at")).to_have_text(re.compile(r"^\d\d:\d\d$"))
            # allergens by name in the page's language, not as codes
            await expect(page.locator("[data-item=porridge] .allergens")).to_have_text("milk")
            await page.click("[data-lang=kk]")
            await expect(page.locator("[data-item=porridge] .allergens")).to_have_text("сүт")
            await expect(page.locator("[data-item=bun] .allergens")).to_have_text("глютен, жаңғақ")
            await page.click("[data-lang=en]")
            await page.click("[data-item=soup]")
            await page.click("[data-item=tea]")
            await expect(page.locator("#cart li")).to_have_count(2)
            await page.click("#confirm")
            await expect(panel).to_have_attribute("data-screen", "served")
            await expect(page.locator("#headline")).to_have_text("PAID")
            await expect(page.locator("#receipt-total")).to_contain_text("350,00")
            await expect(page.locator("#receipt-total")).to_contain_text("650,00")

            # a parent's allergen block: the dish cannot be chosen
            await present("0433BB44")
            await expect(panel).to_have_attribute("data-screen", "pay")
            await expect(page.locator("[data-item=porridge]")).to_be_disabled()

            # too little money; a blocked card
            await present("0411AA22")
            await expect(panel).to_have_attribute("data-screen", "insufficient_balance")
            await expect(panel).to_have_class("red")
            await expect(page.locator("#headline")).to_have_text("INSUFFICIENT BALANCE")
            await present("04DEAD00")
            await expect(panel).to_have_attribute("data-screen", "blocked_card")
            await expect(page.locator("#headline")).to_have_text("BLOCKED CARD")
            await page.click("[data-lang=kk]")
            await expect(page.locator("#headline")).to_have_text("КАРТА БҰҒАТТАЛҒАН")
        finally:
            await browser.close()
    await asyncio.sleep(0)
    store = await EdgeStore.open(root / "edge.sqlite", school=SCHOOL, device="edge-1")
    try:
        assert await money_invariants(store) == {"debits": 1, "debited_tiyn": 35_000}
    finally:
        await store.close()


async def test_the_token_link_signs_in_to_a_clean_url_and_revoking_signs_out(
    daemon: tuple[str, Path],
) -> None:
    """The link `qaqpa demo` prints opens the kiosk at a URL without the token; revoking the
    device's session from the command line sends the open page back to the sign-in form."""
    from playwright.async_api import async_playwright, expect

    url, root = daemon
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}?token={TOKEN}")
            assert page.url == url
            await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
            revoke = [sys.executable, "-m", "qaqpa.cli", "edge", "kiosk-sessions", "revoke"]
            done = await asyncio.to_thread(
                subprocess.run,
                [*revoke, "--all", "--config", str(root / "edge.toml")],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0 and "revoked 1 session(s)" in done.stdout, done.stderr
            await expect(page.locator("#sign-in")).to_be_visible(timeout=20_000)
            assert page.url == url
        finally:
            await browser.close()


async def test_a_qr_voucher_scanned_at_the_kiosk_pays_once(daemon: tuple[str, Path]) -> None:
    """The worker scans the parent's QR voucher (the scanner types its text and Enter): the
    child's menu with the voucher, a dish, SERVED; the same code again is refused."""
    from playwright.async_api import async_playwright, expect

    url, root = daemon
    code = qr("Q-browser", student_id="s-allergy", amount=20_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{url}?token={TOKEN}")
            await expect(page.locator("#conn")).to_have_attribute("data-state", "open")
            await page.click("[data-lang=en]")
            panel = page.locator("#panel")
            await page.fill("#voucher-qr", code)
            await page.press("#voucher-qr", "Enter")
            await expect(panel).to_have_attribute("data-screen", "pay")
            await expect(page.locator("#name")).to_have_text("Мадина Оспанова")
            await expect(page.locator("#detail")).to_contain_text("Voucher: 210,00")  # QR + card
            await page.click("[data-item=soup]")
            await page.click("#confirm")
            await expect(panel).to_have_attribute("data-screen", "served")
            await expect(page.locator("#detail")).to_contain_text("Voucher: 210,00")
            await page.fill("#voucher-qr", code)
            await page.press("#voucher-qr", "Enter")
            await expect(panel).to_have_attribute("data-reason", "voucher_used")
            await expect(page.locator("#message")).to_have_text(
                "This voucher has already been used"
            )
        finally:
            await browser.close()
    store = await EdgeStore.open(root / "edge.sqlite", school=SCHOOL, device="edge-1")
    try:
        # soup 300,00: the QR paid 200,00, the card voucher 10,00, the balance 90,00
        assert await money_invariants(store) == {"debits": 1, "debited_tiyn": 9_000}
        assert store.state.balance("s-allergy") == 100_000 - 9_000
    finally:
        await store.close()
