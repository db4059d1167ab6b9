"""``qaqpa server`` commands through server.cli.main (the console script calls add_commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sqlalchemy import select

from edge.sync import add_commands as edge_add_commands
from server.cli import main
from server.db import make_engine
from server.devices import token_hash
from server.models import Device


def test_migrate_and_device_add(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    monkeypatch.setenv("QAQPA_SERVER_DATABASE_URL", url)
    assert main(["migrate"]) == 0
    assert main(["device", "add", "--school", "S1", "--device", "d1"]) == 0
    token = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert main(["device", "add", "--school", "S1", "--device", "d1"]) == 2  # exists
    engine = make_engine(url)
    with engine.connect() as c:
        row = c.execute(select(Device.enrol_token_hash, Device.enrol_token_used)).one()
    engine.dispose()
    assert row.enrol_token_hash == token_hash(token) and not row.enrol_token_used
    assert token not in (tmp_path / "s.db").read_bytes().decode("latin-1")


def test_edge_enrol_command_is_registered() -> None:
    parser = argparse.ArgumentParser(prog="qaqpa edge")
    edge_add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        ["enrol", "--server", "http://x", "--token", "t", "--device", "d1", "--key-dir", "k"]
    )
    # no port given: 1883, or 8883 with --mqtt-ca-file (decided by edge.sync.enrol)
    assert callable(args.func) and args.mqtt_port is None
