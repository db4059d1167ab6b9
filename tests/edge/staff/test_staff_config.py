"""The [staff] section of edge.toml: defaults, the readers staff sign in at, the PIN key file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

BASE = """school = "S1"
device = "edge-1"
store = "edge.sqlite"
[[terminal]]
id = "gate-1-in"
kind = "turnstile"
direction = "in"
reader = { type = "line", path = "gate.fifo" }
[[terminal]]
id = "canteen-1"
kind = "canteen"
reader = { type = "line", path = "canteen.fifo" }
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(BASE + extra)
    return path


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[staff]\n"))
    assert cfg.staff is not None and (cfg.staff.host, cfg.staff.port) == ("127.0.0.1", 8090)
    assert cfg.staff_sign_in_terminals == ["gate-1-in", "canteen-1"]
    assert cfg.staff.session_minutes == 30
    assert cfg.staff_pin_key_file == tmp_path / "staff-pin.key"


def test_sign_in_readers_must_be_terminals_with_a_reader(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[staff]\nsign_in_terminals = ["gate-1-in"]\n'))
    assert cfg.staff_sign_in_terminals == ["gate-1-in"]
    with pytest.raises(ConfigError, match=r"staff\.sign_in_terminals\.0"):
        load_config(write(tmp_path, '[staff]\nsign_in_terminals = ["gate-9"]\n'))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ('[staff]\nlisten = "8090"\n', "host:port"),
        ("[staff]\nsession_minutes = 0\n", "session_minutes"),
        ('[staff]\ntls_certfile = "a.crt"\n', "tls_certfile and tls_keyfile"),
        ('[staff]\ntoken = "x"\n', "token"),
    ],
)
def test_refusals(tmp_path: Path, extra: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, extra))
