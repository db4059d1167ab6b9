"""`qaqpa demo` opens the console with the simulated school alive in it: the printed URL and
demo accounts work, and the school's taps reach the server while the console is up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server.demo_seed import DEMO_PASSWORD

CSRF = re.compile(r'name="csrf" value="([^"]*)"')
FIFTEEN_THOUSAND = "15\u00a0000,00\u00a0₸"


def _sign_in(client: httpx.Client, login: str) -> None:
    page = client.get("/login")
    token = CSRF.search(page.text)
    assert token is not None
    r = client.post(
        "/login", data={"login": login, "password": DEMO_PASSWORD, "csrf": token.group(1)}
    )
    assert r.status_code == 303, r.text


def test_demo_console_shows_the_living_school(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qaqpa.cli",
            "demo",
            "--duration",
            "25",
            "--students",
            "80",
            "--console-port",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        lines = []
        deadline = time.monotonic() + 60
        assert proc.stderr is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            m = re.search(r"Qaqpa console: (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
        assert url is not None, "".join(lines[-30:])
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as admin:
            _sign_in(admin, "admin")
            home = admin.get("/")
            assert home.status_code == 200 and "Demo admin" in home.text
            assert admin.get("/users").status_code == 200
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as gifted:
            _sign_in(gifted, "gifted")  # the registry's coordinator: 3 children with roadmaps
            assert 'id="total">3<' in gifted.get("/gifted").text
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as operator:
            _sign_in(operator, "operator")  # the statistics cover both demo regions
            stats = operator.get("/gifted/statistics").text
            assert "Demo region" in stats and "Demo region 2" in stats
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as parent:
            _sign_in(parent, "parent")
            assert parent.get("/users").status_code == 403
            # the first student's 15,000 tenge was booked at the server and the school has
            # taken it (the time of its last sync is shown next to the balance)
            page = ""
            deadline = time.monotonic() + 30
            while "<time>" not in page and time.monotonic() < deadline:
                page = parent.get("/canteen/parent").text
                time.sleep(0.5)
            assert FIFTEEN_THOUSAND in page and "<time>" in page, page[-2000:]
            # the book the librarian handed to the child by card tap at the school's desk
            # before the first lesson reached the server with the school's sync
            items = ""
            deadline = time.monotonic() + 30
            while "B-0002" not in items and time.monotonic() < deadline:
                items = parent.get("/equipment/parent").text
                time.sleep(0.5)
            assert "B-0002" in items, items[-2000:]
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as librarian:
            _sign_in(librarian, "librarian")  # the console's lending page of the child's class
            desk = librarian.get("/equipment/school/DEMO/desk")
            assert desk.status_code == 200 and "B-0002" in desk.text
        with httpx.Client(base_url=url, follow_redirects=False, timeout=10) as canteen:
            _sign_in(canteen, "canteen")  # the menu the kiosk sells is the console's
            menu = canteen.get("/canteen/menu").text
            assert "plov" in menu and "shai" in menu
            assert FIFTEEN_THOUSAND in canteen.get("/canteen").text
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["events_stored_at_server"] == summary["events_journaled"] > 0
