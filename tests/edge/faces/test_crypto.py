from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from edge.faces.crypto import (
    FaceKeyError,
    TemplateCipher,
    TemplateIntegrityError,
    load_or_create_key,
)
from tests.support.faces import unit_encoding


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "face.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["face.key"]  # no temporary left behind


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "face.key"
    load_or_create_key(path)
    os.chmod(path, mode)
    with pytest.raises(FaceKeyError, match="group/others"):
        TemplateCipher.from_key_file(path)


def test_key_file_of_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "face.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"short")
    os.close(fd)
    with pytest.raises(FaceKeyError, match="5 bytes"):
        load_or_create_key(path)


def test_round_trip_and_binding_to_the_student(tmp_path: Path) -> None:
    c = TemplateCipher.from_key_file(tmp_path / "k")
    enc = unit_encoding(1)
    blob = c.encrypt("st-1", enc)
    assert enc.tobytes() not in blob and enc.astype(np.float32).tobytes() not in blob
    assert np.array_equal(c.decrypt("st-1", blob), enc)
    with pytest.raises(TemplateIntegrityError):
        c.decrypt("st-2", blob)  # moved to another student
    other = TemplateCipher.from_key_file(tmp_path / "k2")
    with pytest.raises(TemplateIntegrityError):
        other.decrypt("st-1", blob)  # another school's key


@pytest.mark.parametrize("where", [0, 5, 20, -1])
def test_any_flipped_byte_is_refused(tmp_path: Path, where: int) -> None:
    c = TemplateCipher.from_key_file(tmp_path / "k")
    blob = bytearray(c.encrypt("st-1", unit_encoding(2)))
    blob[where] ^= 0x01
    with pytest.raises(TemplateIntegrityError):
        c.decrypt("st-1", bytes(blob))
    with pytest.raises(TemplateIntegrityError):
        c.decrypt("st-1", bytes(blob[:-1]))


def test_only_finite_128d_encodings_are_accepted(tmp_path: Path) -> None:
    c = TemplateCipher.from_key_file(tmp_path / "k")
    with pytest.raises(ValueError):
        c.encrypt("st-1", np.zeros(64))
    with pytest.raises(ValueError):
        c.encrypt("st-1", np.full(128, np.nan))
