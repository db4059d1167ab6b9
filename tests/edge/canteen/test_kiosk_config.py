"""``[kiosk]`` and ``[canteen]`` in edge.toml: checked at start, with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

BASE = """
school = "S1"
device = "edge-1"
store = "edge.sqlite"

[[terminal]]
id = "canteen-1"
kind = "canteen"
reader = { type = "line", path = "/dev/null" }

[[terminal]]
id = "gate-1"
kind = "turnstile"
direction = "in"
reader = { type = "line", path = "/dev/null" }
"""


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return path


def test_defaults_bind_localhost_and_show_every_canteen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[kiosk]\ntoken = "k1t-canteen-9"\n'))
    assert cfg.kiosk is not None
    assert (cfg.kiosk.host, cfg.kiosk.port) == ("127.0.0.1", 8080)
    assert cfg.kiosk_terminals == ["canteen-1"]
    assert cfg.canteen.overdraft_tiyn == 0
    assert "k1t-canteen-9" not in repr(cfg)  # the token never shows in a log of the config


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('[kiosk]\ntoken = "changeme"\n', "kiosk.token"),
        ('[kiosk]\ntoken = "short"\n', "kiosk.token"),
        ('[kiosk]\ntoken = "aaaaaaaaaa"\n', "kiosk.token"),
        ('[kiosk]\ntoken = "k1t-canteen-9"\nlisten = "8080"\n', "kiosk.listen"),
        ('[kiosk]\ntoken = "k1t-canteen-9"\nterminals = ["gate-1"]\n', "kiosk.terminals.0"),
        ('[kiosk]\ntoken = "k1t-canteen-9"\ncolour = "red"\n', "kiosk.colour"),
        ("[kiosk]\n", "kiosk.token"),
        ("[canteen]\noverdraft_tiyn = -1\n", "canteen.overdraft_tiyn"),
        ("[canteen]\noverdraft_tiyn = 1000000\n", "canteen.overdraft_tiyn"),
    ],
)
def test_bad_kiosk_or_canteen_settings_are_refused(
    tmp_path: Path, extra: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        load_config(write(tmp_path, extra))
