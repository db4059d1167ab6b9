"""edge.toml: ``edge.config.load_config`` and ``qaqpa run --config`` on bad files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config
from edge.core.reasons import Lang
from protocol.messages import Direction, TerminalKind
from qaqpa.cli import main

BIN = Path(sys.executable).parent / "qaqpa"
COMMAND = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "qaqpa.cli"]

GOOD = """\
school = "S1"
device = "edge-1"
store = "var/edge.sqlite"
policy = "policy.toml"
outbox_capacity = 5000
language = "ru"

[[terminal]]
id = "gate-1-in"
kind = "turnstile"
direction = "in"
reader = { type = "line", path = "/dev/ttyUSB0" }
gate = { type = "log", path = "gate-1.log" }
passage_timeout = 7.5

[[terminal]]
id = "canteen-1"
kind = "canteen"
reader = { type = "line", path = "/dev/ttyUSB1", default_prefix = "MF" }
"""


@pytest.fixture(autouse=True)
def _no_edge_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables of whoever runs the tests must not leak into the configuration."""
    for name in list(os.environ):
        if name.startswith("QAQPA_EDGE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    return message


def test_good_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert (cfg.school, cfg.device, cfg.outbox_capacity, cfg.language) == (
        "S1",
        "edge-1",
        5000,
        Lang.RU,
    )
    # Relative paths are relative to the file, not to the working directory.
    assert cfg.store == tmp_path / "var" / "edge.sqlite"
    assert cfg.policy == tmp_path / "policy.toml"
    gate, canteen = cfg.terminals
    assert (gate.id, gate.kind, gate.direction, gate.passage_timeout) == (
        "gate-1-in",
        TerminalKind.TURNSTILE,
        Direction.IN,
        7.5,
    )
    assert gate.reader.path == Path("/dev/ttyUSB0") and gate.reader.default_prefix == "EM"
    assert gate.gate is not None and gate.gate.path == Path("gate-1.log")
    assert (canteen.kind, canteen.direction, canteen.gate) == (TerminalKind.CANTEEN, None, None)
    assert canteen.reader.default_prefix == "MF"


def test_defaults_and_absolute_paths(tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "edge.sqlite"
    cfg = load_config(write(tmp_path, f'school = "S1"\ndevice = "d"\nstore = "{store}"\n'))
    assert cfg.store == store
    assert (cfg.policy, cfg.terminals, cfg.language, cfg.outbox_capacity) == (
        None,
        [],
        Lang.KK,
        100_000,
    )


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """edge/config.py: 'a TOML file, overridable by QAQPA_EDGE_* variables'."""
    monkeypatch.setenv("QAQPA_EDGE_DEVICE", "edge-9")
    monkeypatch.setenv("QAQPA_EDGE_OUTBOX_CAPACITY", "2000")
    cfg = load_config(write(tmp_path, GOOD))
    assert (cfg.device, cfg.outbox_capacity, cfg.school) == ("edge-9", 2000, "S1")


def test_environment_fills_a_missing_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QAQPA_EDGE_SCHOOL", "S7")
    cfg = load_config(write(tmp_path, GOOD.replace('school = "S1"\n', "")))
    assert cfg.school == "S7"


def test_bad_environment_value_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QAQPA_EDGE_OUTBOX_CAPACITY", "lots")
    assert "outbox_capacity" in error(write(tmp_path, GOOD))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('school = "S1"\ndevice = ', "not valid TOML: "),
        ('school = "S1"\nschool = "S2"\n', "not valid TOML: "),
        ("[[terminal]\n", "not valid TOML: "),
    ],
)
def test_malformed_toml(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in error(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (GOOD + 'colour = "red"\n', "terminal.1.colour"),  # after a table: lands in it
        ('colour = "red"\n' + GOOD, "colour"),
        (GOOD.replace("passage_timeout = 7.5", "timeout = 7.5"), "terminal.0.timeout"),
        (GOOD.replace('path = "/dev/ttyUSB0"', 'path = "/dev/ttyUSB0", baud = 9600'), "baud"),
    ],
)
def test_unknown_field(tmp_path: Path, text: str, field: str) -> None:
    message = error(write(tmp_path, text))
    assert f"{field}: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("outbox_capacity = 5000", 'outbox_capacity = "lots"', "outbox_capacity"),
        ("outbox_capacity = 5000", "outbox_capacity = 10", "outbox_capacity"),  # below 1000
        ('language = "ru"', 'language = "fr"', "language"),
        ('school = "S1"', "school = 1", "school"),
        ('store = "var/edge.sqlite"', "store = [1]", "store"),
        ('kind = "turnstile"', 'kind = "lift"', "terminal.0.kind"),
        ('direction = "in"', 'direction = "up"', "terminal.0.direction"),
        ("passage_timeout = 7.5", "passage_timeout = 0", "terminal.0.passage_timeout"),
        ("passage_timeout = 7.5", 'passage_timeout = "soon"', "terminal.0.passage_timeout"),
        ('type = "line", path = "/dev/ttyUSB0"', 'type = "magic"', "terminal.0.reader"),
        ('reader = { type = "line", path = "/dev/ttyUSB0" }', "reader = 5", "terminal.0.reader"),
        (
            'gate = { type = "log", path = "gate-1.log" }',
            'gate = { type = "log" }',
            "terminal.0.gate.log.path",
        ),
    ],
)
def test_wrong_type_names_the_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in GOOD
    message = error(write(tmp_path, GOOD.replace(old, new)))
    assert f": {field}" in message, message


@pytest.mark.parametrize("missing", ["school", "device", "store"])
def test_missing_required_field(tmp_path: Path, missing: str) -> None:
    text = "".join(ln + "\n" for ln in GOOD.splitlines() if not ln.startswith(f"{missing} ="))
    assert f"{missing}: Field required" in error(write(tmp_path, text))


def test_turnstile_without_direction(tmp_path: Path) -> None:
    text = GOOD.replace('direction = "in"\n', "")
    message = error(write(tmp_path, text))
    assert "terminal.0.direction: a turnstile reader needs in or out" in message
    # The index names the right terminal.
    second = GOOD + '\n[[terminal]]\nid = "gate-2"\nkind = "turnstile"\n'
    second += 'reader = { type = "line", path = "/dev/ttyUSB2" }\n'
    assert "terminal.2.direction" in error(write(tmp_path, second))


def test_terminal_ids_repeat(tmp_path: Path) -> None:
    text = GOOD.replace('id = "canteen-1"', 'id = "gate-1-in"')
    assert "terminal: ids repeat" in error(write(tmp_path, text))


def test_unreadable_files(tmp_path: Path) -> None:
    assert "cannot read: No such file or directory" in error(tmp_path / "missing.toml")
    assert "cannot read" in error(tmp_path)  # a directory
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'school = "\xc9cole"\n')
    assert "not UTF-8" in error(path)


# ------------------------------------------------------------------------------------ the CLI


def test_run_with_a_bad_config_exits_2_with_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('direction = "in"\n', ""), "bad.toml")
    done = subprocess.run(
        [*COMMAND, "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"qaqpa run: {path}: terminal.0.direction: a turnstile reader needs in or out\n"
    )
    assert done.stdout == ""
    assert not (tmp_path / "var").exists()  # no store was created for a config it refused


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("school = ", "not valid TOML"),
        (GOOD + "colour = 1\n", "terminal.1.colour: Extra inputs are not permitted"),
        (GOOD.replace("outbox_capacity = 5000", 'outbox_capacity = "x"'), "outbox_capacity"),
    ],
)
def test_run_and_import_roster_report_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, needle: str
) -> None:
    path = write(tmp_path, text, "bad.toml")
    assert main(["run", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"qaqpa run: {path}: ") and needle in err
    assert out == ""
    roster = write(tmp_path, '{"school": "S1"}', "roster.json")
    assert main(["edge", "import-roster", "--config", str(path), "--roster", str(roster)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"qaqpa edge import-roster: {path}: ") and needle in err


def test_run_with_a_missing_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read: No such file or directory" in capsys.readouterr().err


def test_terminal_id_must_fit_the_wire(tmp_path: Path) -> None:
    """A terminal id travels in every event: one the wire refuses is a config error at start,
    not a crash at the first tap."""
    cfg = tmp_path / "edge.toml"
    cfg.write_text(
        'school = "S1"\ndevice = "d1"\nstore = "edge.sqlite"\n'
        '[[terminal]]\nid = "асхана 1"\nkind = "library"\n'
        f'reader = {{ type = "line", path = "{tmp_path / "r"}" }}\n'
    )
    with pytest.raises(ConfigError, match=r"edge.toml: terminal.0.id: String should match"):
        load_config(cfg)


# ------------------------------------------------------------------------------ MQTT over TLS


def test_tls_files_resolve_against_the_file_and_load(tmp_path: Path) -> None:
    from tests.support.tls import ThrowawayCA

    ca = ThrowawayCA(tmp_path, "centre")
    client = ca.issue("S1.edge-1", server=False)
    path = write(
        tmp_path,
        GOOD.replace(
            'language = "ru"\n',
            'language = "ru"\nmqtt_ca_file = "centre-ca.pem"\n'
            f'mqtt_cert_file = "{client.cert_file.name}"\nmqtt_key_file = "{client.key_file}"\n',
        ),
    )
    cfg = load_config(path)
    assert cfg.mqtt_ca_file == ca.ca_file
    assert cfg.mqtt_cert_file == client.cert_file and cfg.mqtt_key_file == client.key_file
    assert cfg.mqtt_allow_plain is False


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ('mqtt_ca_file = "nope.pem"', "mqtt_ca_file: {d}/nope.pem: cannot read: No such file"),
        ('mqtt_ca_file = "edge.toml"', "mqtt_ca_file: {d}/edge.toml: not a PEM CA certificate"),
        ('mqtt_ca_file = "."', "mqtt_ca_file: {d}: cannot read"),
        ('mqtt_cert_file = "c.pem"\nmqtt_key_file = "k.pem"', "mqtt_cert_file: a client"),
        ('mqtt_ca_file = "centre-ca.pem"\nmqtt_cert_file = "c.pem"', "set both or neither"),
        (
            'mqtt_ca_file = "centre-ca.pem"\nmqtt_cert_file = "centre-ca.pem"\n'
            'mqtt_key_file = "centre-ca.pem"',
            "not a PEM certificate and its unencrypted key",
        ),
        ("mqtt_allow_plain = 3", "mqtt_allow_plain"),
        ('mqtt_ca_path = "x"', "mqtt_ca_path: Extra inputs are not permitted"),
    ],
)
def test_bad_tls_settings_name_the_file_and_field(tmp_path: Path, lines: str, needle: str) -> None:
    from tests.support.tls import ThrowawayCA

    ThrowawayCA(tmp_path, "centre")
    path = write(tmp_path, GOOD.replace('language = "ru"\n', f'language = "ru"\n{lines}\n'))
    assert needle.format(d=tmp_path) in error(path)


def test_run_with_a_bad_ca_file_exits_2(tmp_path: Path) -> None:
    path = write(
        tmp_path, GOOD.replace('language = "ru"\n', 'language = "ru"\nmqtt_ca_file = "ca.pem"\n')
    )
    done = subprocess.run(
        [*COMMAND, "run", "--config", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"qaqpa run: {path}: mqtt_ca_file: {tmp_path}/ca.pem: cannot read: "
        "No such file or directory\n"
    )
    assert not (tmp_path / "var").exists()
