"""A lost card at a real school, end to end in headless Chromium:

the school admin sets the class teacher's PIN in the console (it reaches the edge sealed to
its box key; the centre keeps no PIN); the edge daemon (a child process: the real config, the
EM-Marine driver reading a simulated reader on a pty, the relay driver releasing the turnstile
through a simulated relay board, sync over Mosquitto) serves the staff page; the teacher signs
in there with her own card at the turnstile's reader and her PIN, picks the child of her
class, and the turnstile opens once; the manual pass, naming her, reaches the server and the
parent's SMS goes out; she blocks the lost card and the block reaches the centre's card record.

(The PIN on an OSDP reader's keypad is tested through the daemon's real OSDP path in
``tests/integration/test_staff_keypad.py``: a libosdp reader on a pty shares the machine's
two cores badly with Chromium, and its secure channel then drops.)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from edge.sync import enrol_device
from protocol.messages import PolicySet
from server.cards.models import Card
from server.devices import add_device
from server.ingest.worker import IngestWorker
from server.models import Device, StoredEvent
from server.roster.service import save_staff
from server.settings import ServerSettings
from server.staffpins.models import EdgeBoxKey, SealedPinDelivery
from server.sync.changelog import append_changes
from server.sync.service import DownlinkService
from simulators.notify_sinks import demo_notifications
from simulators.serial_sim import EmMarineSim, RelayBoardSim
from tests.browser.live import chromium, needs_chromium, serve
from tests.support.consents import give
from tests.support.console import World, password_of
from tests.support.school_sim import ALL_DAY
from tests.support.wait import wait_until

pytestmark = [needs_chromium, pytest.mark.mosquitto]
TEACHER = 4_000_007_001  # EM-Marine card numbers
CHILD = 4_000_001_234
PIN = "480913"


def cred(card: int) -> str:
    return f"EM:{card:010d}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def edge_config(root: Path, reader_port: Path, relay_port: Path, staff_port: int) -> Path:
    config = root / "edge.toml"
    config.write_text(
        "\n".join(
            [
                'school = "S1"',
                'device = "edge-1"',
                'store = "edge.sqlite"',
                'sync_key_dir = "keys"',
                "[[terminal]]",
                'id = "gate-1-in"',
                'kind = "turnstile"',
                'direction = "in"',
                "passage_timeout = 2.0",
                f'gate = {{ type = "relay_serial", port = "{relay_port}", pulse_ms = 20 }}',
                f'reader = {{ type = "em_marine", reader_id = "gate-1-in", port = "{reader_port}" }}',
                "[staff]",
                f'listen = "127.0.0.1:{staff_port}"',
                'language = "kk"',
            ]
        )
        + "\n"
    )
    return config


def sign_in_console(page: Any, url: str, login: str, then: str) -> None:
    page.goto(f"{url}/login?next={then}")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password_of(login))
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{then}")


def staff_sign_in(page: Any, staff_url: str, reader: EmMarineSim, pin: str) -> None:
    """The form, then the card at the turnstile's reader until the page answers: the page
    waits for the card only after the button is pressed (a card before that is a tap)."""
    page.goto(staff_url)
    page.select_option("#reader", "gate-1-in")
    page.fill("#pin", pin)
    page.click("#sign-in", no_wait_after=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.7)
        reader.present_card(TEACHER)
        try:
            page.wait_for_selector("#who", timeout=2500)
            return
        except Exception:
            if page.locator("#refusal").count():
                raise AssertionError(page.locator("#refusal").inner_text()) from None
    raise AssertionError("the staff page did not sign the teacher in")


EDGE_CARDS = [sys.executable, "-m", "qaqpa.cli", "edge", "cards"]


def test_a_teacher_lets_a_child_in_after_a_lost_card(
    app: Any, world: World, settings: ServerSettings, db: Session, tmp_path: Path, make_browser: Any
) -> None:
    append_changes(db, "S1", [PolicySet(policy=ALL_DAY)])
    teacher = save_staff(
        db,
        "S1",
        ref="t-1",
        full_name="Гүлнар Ахметова",
        position="сынып жетекшісі",
        roles=["class_teacher"],
        class_pks=[world.classes["S1/3A"]],
    )
    db.commit()
    child_pk = world.students["s1-3a-1"]
    admin_api = make_browser("admin1")
    assert give(admin_api, child_pk).status_code == 200
    assert give(admin_api, child_pk, kind="notifications").status_code == 200
    root = tmp_path / "edge"
    root.mkdir()
    engine_settings = settings
    with (
        serve(app) as url,
        IngestWorker(engine_settings),
        DownlinkService(engine_settings),
        demo_notifications(settings.database_url) as (sms, _smtp),
        chromium() as browser,
    ):
        token = add_device(db, settings, "S1", "edge-1")
        db.commit()
        enrol_device(
            url,
            token,
            "edge-1",
            root / "keys",
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
        )
        reader = EmMarineSim(root / "gate-1-in.reader")
        reader.plug()
        relay = RelayBoardSim(root / "gate-1-in.relay")
        relay.plug()
        staff_port = free_port()
        config = edge_config(root, reader.path, relay.path, staff_port)
        log = (root / "daemon.log").open("wb")

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "qaqpa.cli", "run", "--config", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

        daemon = start()
        try:
            staff_url = f"http://127.0.0.1:{staff_port}/"

            def edge_ready() -> bool:
                db.expire_all()
                device = db.execute(select(Device).where(Device.device_id == "edge-1")).scalar_one()
                return db.get(EdgeBoxKey, device.pk) is not None and device.applied_version >= 1

            wait_until(edge_ready, 60, "the edge announces its box key and syncs", interval=0.3)

            # 0. the cards are bound at the school (card numbers never go to the centre): the
            # daemon stops, the school's tool binds both, the daemon starts again
            daemon.terminate()
            daemon.wait(timeout=20)
            for who, card in (("--student=s1-3a-1", CHILD), ("--staff=t-1", TEACHER)):
                bound = subprocess.run(
                    [*EDGE_CARDS, "issue", "--config", str(config), who, "--card", cred(card)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert bound.returncode == 0, bound.stderr
            daemon = start()

            def records() -> int:
                db.expire_all()
                return len(db.execute(select(Card)).scalars().all())

            wait_until(lambda: records() == 2, 60, "the card records reach the centre", 0.3)
            assert cred(CHILD) not in str([c.__dict__ for c in db.execute(select(Card)).scalars()])

            # 1. the school admin sets the teacher's PIN in the console
            admin = browser.new_page()
            sign_in_console(admin, url, "admin1", f"/staff/{teacher.pk}/pin")
            admin.fill("input[name=pin]", PIN)
            admin.fill("input[name=pin_again]", PIN)
            admin.click(f"form[action='/staff/{teacher.pk}/pin'] button")
            admin.wait_for_selector("#flash")  # redirected to the PIN page, which says it

            def delivered() -> bool:
                db.expire_all()
                row = db.execute(select(SealedPinDelivery)).scalar_one_or_none()
                return row is not None and row.acked_at_ms is not None and bool(row.opened)

            wait_until(delivered, 30, "the edge receives and opens the sealed PIN", interval=0.3)
            assert db.execute(select(SealedPinDelivery)).scalar_one().ct is None

            # 2. the teacher signs in at the staff page: her card at the turnstile, her PIN
            page = browser.new_page()
            staff_sign_in(page, staff_url, reader, PIN)
            assert "Гүлнар Ахметова" in page.locator("#who").inner_text()

            # 3. she picks the child of her class and the turnstile opens once
            page.click("#nav-pass")
            page.wait_for_selector("#child-s1-3a-1")
            assert page.locator("#child-s1-3a-2").count() == 0  # no data consent: not at the school
            relay.poll()  # forget earlier switching
            child = page.locator("#child-s1-3a-1")
            child.locator("select.terminal").select_option("gate-1-in")
            child.locator("button.open").click()
            page.wait_for_selector("#result")
            assert "ok" in (page.locator("#result").get_attribute("class") or "")
            switched = relay.wait_switches(2, timeout=10)  # closed, then open again: once
            assert [on for _at, _ch, on in switched] == [True, False]

            # 4. the manual pass, naming her, reaches the server; the parent's SMS goes out
            def stored() -> StoredEvent | None:
                db.expire_all()
                return db.execute(
                    select(StoredEvent).where(StoredEvent.kind == "manual_pass")
                ).scalar_one_or_none()

            ev = wait_until(stored, 30, "the manual pass reaches the server", interval=0.3)
            assert ev.student_id == "s1-3a-1" and ev.payload["authorised_by"] == "t-1"
            sms_sent = sms.wait_for(1, timeout=60)
            assert sms_sent and "s1-3a-1" not in sms_sent[0].message

            # 5. the lost card is blocked from the same page; the centre's record follows
            page.locator("#child-s1-3a-1 button.block").click()
            page.wait_for_selector("#result")

            def blocked() -> bool:
                db.expire_all()
                card = db.execute(select(Card).where(Card.student_pk == child_pk)).scalar_one()
                return card.status == "blocked"

            wait_until(blocked, 30, "the block reaches the centre's card record", interval=0.3)

            # 6. signing out ends her session on this device
            page.click("#sign-out")
            page.wait_for_selector("#sign-in")
            page.goto(staff_url + "pass/")
            assert page.locator("#sign-in").count() == 1
        finally:
            daemon.terminate()
            try:
                daemon.wait(timeout=20)
            finally:
                log.close()
                reader.close()
                relay.close()
        text = (root / "daemon.log").read_text(errors="replace")
        assert PIN not in text  # no PIN in the daemon's log
