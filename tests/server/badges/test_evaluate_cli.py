"""``qaqpa server badges evaluate --journal FILE.json --today YYYY-MM-DD``: one JSON object on
stdout; bad input exits 2 with the field named on stderr and nothing on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.cli import main

START = date(2025, 9, 1)


def complete_bronze() -> dict[str, Any]:
    def weekly(direction: str) -> list[dict[str, Any]]:
        return [
            {
                "direction": direction,
                "date": (START + timedelta(weeks=i)).isoformat(),
                "hours": 1,
                "status": "confirmed",
            }
            for i in range(13)
        ]

    entries = weekly("sport") + weekly("talents") + weekly("volunteering") + weekly("heritage")
    entries += [
        {
            "direction": "reading",
            "date": "2025-10-01",
            "book": b,
            "section": s,
            "status": "confirmed",
        }
        for b, s in [("Абай жолы", "kazakh"), ("Hamlet", "world"), ("Faust", "world")]
    ]
    entries.append({"direction": "trip", "date": "2025-10-10", "days": 2, "status": "confirmed"})
    return {
        "participant": "p-17",
        "birth_date": "2011-03-01",
        "level": "bronze",
        "start": "2025-09-01",
        "plan": {"heritage": {"mode": "weeks", "months": 3}},
        "entries": entries,
    }


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journal.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_main_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, json.dumps(complete_bronze()))
    code = main(["badges", "evaluate", "--journal", str(path), "--today", "2026-11-30"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.count("\n") == 1
    report = json.loads(out)
    assert report == {
        "participant": "p-17",
        "level": "bronze",
        "eligible_age": True,
        "directions": {
            d: 100.0 for d in ["sport", "talents", "volunteering", "reading", "heritage", "trip"]
        },
        "rating": 100.0,
        "complete": True,
    }
    # today before the trip: nothing of it counts yet
    main(["badges", "evaluate", "--journal", str(path), "--today", "2025-10-09"])
    report = json.loads(capsys.readouterr().out)
    assert report["directions"]["trip"] == 0.0 and report["complete"] is False


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", "journal"),
        ('{"participant": NaN}', "journal"),
        (json.dumps(complete_bronze() | {"level": "platinum"}), "level"),
        (json.dumps(complete_bronze() | {"start": "20250901"}), "start"),
        (json.dumps(complete_bronze() | {"extra": 1}), "extra"),
        (
            json.dumps(complete_bronze()).replace('"hours": 1,', '"hours": -1,', 1),
            "entries[0].hours",
        ),
    ],
)
def test_bad_journal_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, field: str
) -> None:
    path = write(tmp_path, text)
    code = main(["badges", "evaluate", "--journal", str(path), "--today", "2026-11-30"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert f"{field}:" in err


@pytest.mark.parametrize("today", ["20261130", "2026-W49-1", "2026-02-30", "tomorrow"])
def test_bad_today_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], today: str) -> None:
    path = write(tmp_path, json.dumps(complete_bronze()))
    code = main(["badges", "evaluate", "--journal", str(path), "--today", today])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "--today:" in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["badges", "evaluate", "--journal", str(tmp_path / "no.json"), "--today", "2026-11-30"]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "--journal:" in err


def test_invalid_utf8_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.json"
    path.write_bytes(b'{"participant": "\xff"}')
    code = main(["badges", "evaluate", "--journal", str(path), "--today", "2026-11-30"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert "journal:" in err


def test_the_installed_command(tmp_path: Path) -> None:
    """Through the ``qaqpa`` entry point, as an operator runs it."""
    qaqpa = Path(sys.executable).with_name("qaqpa")
    good = write(tmp_path, json.dumps(complete_bronze()))
    env = os.environ | {"PYTHONIOENCODING": "utf-8"}
    done = subprocess.run(
        [
            str(qaqpa),
            "server",
            "badges",
            "evaluate",
            "--journal",
            str(good),
            "--today",
            "2026-11-30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["complete"] is True
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(complete_bronze() | {"level": "gold"}), encoding="utf-8")
    done = subprocess.run(
        [
            str(qaqpa),
            "server",
            "badges",
            "evaluate",
            "--journal",
            str(bad),
            "--today",
            "2026-11-30",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "plan.long:" in done.stderr
