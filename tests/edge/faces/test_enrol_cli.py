"""`qaqpa edge enrol-face` as a staff member runs it: refused without biometric consent, and the
photo file is read only when the consent is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from edge.faces.lawful import astronaut


def _school(tmp: Path) -> Path:
    roster = {
        "school": "S1",
        "students": [
            {
                "id": "s1",
                "grade": 5,
                "class": "5A",
                "shift": 1,
                "cards": ["EM:0000000011"],
                "consent": {"data": True, "biometric": True},
            },
            {
                "id": "s2",
                "grade": 5,
                "class": "5A",
                "shift": 1,
                "cards": ["EM:0000000012"],
                "consent": {"data": True, "biometric": False},
            },
        ],
    }
    (tmp / "roster.json").write_text(json.dumps(roster))
    cfg = tmp / "edge.toml"
    cfg.write_text(
        'school = "S1"\ndevice = "d1"\nstore = "edge.sqlite"\nface_key_file = "face.key"\n'
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "qaqpa.cli",
            "edge",
            "import-roster",
            "--config",
            str(cfg),
            "--roster",
            str(tmp / "roster.json"),
        ],
        check=True,
        capture_output=True,
    )
    return cfg


def _enrol(cfg: Path, student: str, photo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "qaqpa.cli",
            "edge",
            "enrol-face",
            "--config",
            str(cfg),
            "--student",
            student,
            "--photo",
            str(photo),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_enrol_face_needs_biometric_consent(tmp_path: Path) -> None:
    cfg = _school(tmp_path)
    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut()).save(photo)
    refused = _enrol(cfg, "s2", photo)
    assert refused.returncode == 2
    assert "refused (no_consent)" in refused.stderr
    done = _enrol(cfg, "s1", photo)
    assert done.returncode == 0, done.stderr
    assert "enrolled a face for s1: 1 template(s)" in done.stdout
    import sqlite3

    db = sqlite3.connect(tmp_path / "edge.sqlite")
    rows = db.execute("SELECT student_id FROM face_templates").fetchall()
    assert rows == [("s1",)]
