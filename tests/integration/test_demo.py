"""`qaqpa demo --duration` runs a school day through the real daemon path and sums it up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qaqpa.cli", "demo", "--duration", "8", "--students", "120"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    # the output a person reads: no INFO log lines (alembic, fontTools, HTTP) burying the URLs,
    # and the day in a few lines at the end, besides the JSON
    assert " INFO " not in proc.stderr, proc.stderr[:2000]
    human = proc.stderr.split("The day in numbers:", 1)[1]
    assert f"taps decided      {summary['taps']}:" in human
    assert f"free {summary['free_meals']}, paid {summary['paid_meals']}" in human
    assert (
        "(each exactly once)" in human
        and "on the console and the parent's page (the same)" in human
    )
    # every tap is journaled once, after the cards the school bound at its desk (and blocked)
    assert summary["desk_card_events"] > 0
    # ... and the library desk's acts (below)
    assert (
        summary["taps"] + summary["desk_card_events"] + summary["desk_lending_acts"]
        == summary["events_journaled"]
    )
    # a paying student's tap (PAY) is neither a grant nor a refusal
    assert summary["grants"] + summary["denials"] + summary["pay_taps"] == summary["taps"]
    assert "pay" not in summary["denials_by_reason"]
    assert summary["manual_passes"] == 3  # three lost cards, each let in by the class teacher
    # ... from the staff page: her card at the turnstile's reader, her PIN, the student picked
    assert summary["manual_passes_from_staff_page"] == 3, summary["staff_page_failures"]
    assert summary["denials_by_reason"]["card_blocked"] >= 3
    assert summary["free_meals"] > 0 and summary["entries"] > 0
    # each granted card at a turnstile, and each manual pass, released its relay once, through
    # the real relay driver
    assert summary["gate_releases"] == (
        summary["entries"] + summary["exits"] + summary["manual_passes"]
    )
    assert (tmp_path / "var" / "demo" / "edge.sqlite").exists()
    # synced through the embedded broker into the server's database, each event once
    assert summary["events_unsent"] == 0
    assert summary["events_stored_at_server"] == summary["events_journaled"]
    # the top-ups were booked at the server and reached the school by the downlink: after the
    # last sync the server's ledger and the school hold the same balance for every student
    assert summary["canteen_balance_at_server_tiyn"] > 0
    assert summary["canteen_balances_differing"] == 0
    assert summary["canteen_unexplained_differences"] == 0  # the reconciliation agrees
    assert summary["canteen_balance_at_server_tiyn"] == summary["canteen_balance_at_school_tiyn"]
    assert summary["child_balance_at_school_tiyn"] == summary["child_balance_at_server_tiyn"] > 0
    # the librarian handed over a device of the approved list and a library book at the desk
    # by card tap (staff page, reader claim, journal); synced, the server applied both once
    assert summary["desk_failures"] == []
    lent = summary["desk_lent"]
    assert len(lent) == 2 and lent[0].startswith("NB-") and lent[1] == "B-0002"
    assert summary["desk_lending_acts"] == 2
    assert [inv for inv, _ in summary["desk_loans_at_server"]] == lent
