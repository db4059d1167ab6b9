"""``qaqpa server backup dump`` and ``check``: a dump of a seeded database restores into an empty
database with every table's row count and the events' checksum equal to what the dump's own
snapshot held (events written after the dump do not confuse it); a dump missing the events'
rows is caught, table named, exit 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from server.backup.core import manifest_of, tool
from server.cli import main as server_cli
from tests.support.console import World
from tests.support.event_rows import DAY, at, insert_events


def seed(db: Session) -> None:
    entries = [("entry", at(DAY, "07:50") + i, {"student_id": "s1-3a-1"}) for i in range(40)]
    meal = {"student_id": "s1-3a-2", "period": "lunch", "local_date": DAY.isoformat()}
    insert_events(db, "S1", [*entries, ("meal_served", at(DAY, "12:10"), meal)])
    db.commit()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = server_cli(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_a_dump_restores_into_an_empty_database_with_every_row(
    db: Session,
    world: World,
    pg_console_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    seed(db)
    out = tmp_path / "qaqpa.dump"
    code, made = run(capsys, "backup", "dump", "--database-url", pg_console_url, "--out", str(out))
    assert code == 0 and made["events"] == 41 and made["tables"] > 20
    manifest = json.loads(manifest_of(out).read_text())
    assert manifest["tables"]["events"] == 41 and manifest["tables"]["students"] == 12

    # Events keep arriving after the dump: the check compares with the dump's own snapshot.
    insert_events(db, "S2", [("entry", at(DAY, "07:55"), {"student_id": "s2-3a-1"})])
    db.commit()
    code, report = run(
        capsys, "backup", "check", "--database-url", pg_console_url, "--dump", str(out)
    )
    assert code == 0, report
    assert report["ok"] and report["differences"] == [] and report["events"] == 41
    assert report["events_checksum_equal"] and report["tables"] == made["tables"]
    # Against the live database (no manifest) the later event shows as a difference.
    manifest_of(out).rename(tmp_path / "elsewhere.json")
    code, report = run(
        capsys, "backup", "check", "--database-url", pg_console_url, "--dump", str(out)
    )
    assert (
        code == 1 and {"table": "events", "expected": 42, "restored": 41} in report["differences"]
    )

    # A dump missing the events' rows (as one cut short would be) fails against its manifest.
    bad = tmp_path / "bad.dump"  # the rows of events and its monthly partitions missing
    uri = pg_console_url.replace("postgresql+psycopg://", "postgresql://")
    subprocess.run(
        [tool("pg_dump"), "-Fc", "--exclude-table-data=events*", "-f", str(bad), "-d", uri],
        check=True,
    )
    code, report = run(
        capsys,
        "backup", "check", "--database-url", pg_console_url, "--dump", str(bad),
        "--manifest", str(tmp_path / "elsewhere.json"),
    )  # fmt: skip
    assert code == 1 and not report["ok"] and not report["events_checksum_equal"]
    assert {"table": "events", "expected": 41, "restored": 0} in report["differences"]
    assert {"table": "events", "checksum": "differs"} in report["differences"]
