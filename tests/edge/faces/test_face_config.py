"""Face terminal configuration: modes, camera, the template key file the daemon needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

BASE = """
school = "S1"
device = "d1"
store = "edge.sqlite"
{top}
[[terminal]]
id = "gate-1-in"
kind = "turnstile"
direction = "in"
{term}
"""
READER = 'reader = { type = "line", path = "/tmp/r" }'


def write(tmp_path: Path, top: str = "", term: str = READER) -> Path:
    p = tmp_path / "edge.toml"
    p.write_text(BASE.format(top=top, term=term), encoding="utf-8")
    return p


def test_card_only_is_the_default(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path))
    t = cfg.terminals[0]
    assert t.face_mode == "card_only" and not t.uses_faces and cfg.face_key_file is None
    assert (t.face_tolerance, t.face_margin) == (0.5, 0.06)


def test_face_terminals_need_a_key_file_and_a_camera(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="face_key_file: required"):
        load_config(write(tmp_path, term=f'{READER}\nface_mode = "card_and_face"\ncamera = "0"'))
    with pytest.raises(ConfigError, match="camera: required"):
        load_config(
            write(tmp_path, 'face_key_file = "face.key"', f'{READER}\nface_mode = "card_and_face"')
        )
    with pytest.raises(ConfigError, match="reader"):
        load_config(
            write(
                tmp_path, 'face_key_file = "face.key"', 'face_mode = "card_and_face"\ncamera = "0"'
            )
        )


def test_face_only_needs_no_reader_and_paths_resolve(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, 'face_key_file = "face.key"', 'face_mode = "face_only"\ncamera = "frames"')
    )
    t = cfg.terminals[0]
    assert t.reader is None and t.uses_faces
    assert cfg.face_key_file == tmp_path / "face.key"
    assert t.camera == str(tmp_path / "frames")
    url = load_config(
        write(tmp_path, 'face_key_file = "k"', 'face_mode = "face_only"\ncamera = "rtsp://cam/1"')
    )
    assert url.terminals[0].camera == "rtsp://cam/1"


def test_bad_face_values_are_refused(tmp_path: Path) -> None:
    for bad in ('face_mode = "face_maybe"', "face_tolerance = 0", "face_margin = 1.5"):
        with pytest.raises(ConfigError):
            load_config(write(tmp_path, 'face_key_file = "k"', f'{READER}\ncamera = "0"\n{bad}'))
