"""`make demo` installs no face stack (OpenCV, dlib, face_recognition, scikit-image are the
optional `faces` extra): the daemon, the demo, the console and the CLI must import and run
without them. (numpy is no longer part of that list: the badge module's integrity checks need it,
so it is a core dependency now.) A subprocess where
those modules cannot be imported proves it (this test failed when the daemon imported the camera
module at its top)."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"cv2", "dlib", "face_recognition", "skimage"}:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
import edge.daemon, qaqpa.demo, server.api.app
from qaqpa.cli import build_parser
build_parser().parse_args(["demo", "--duration", "1"])
from server.settings import ServerSettings
app = server.api.app.create_app(ServerSettings(database_url="sqlite:///:memory:"))
from fastapi.testclient import TestClient
r = TestClient(app).get("/reports/evacuation", follow_redirects=False)
assert r.status_code == 303 and r.headers["location"].startswith("/login"), r.status_code
print("ok")
"""


def test_the_daemon_demo_and_console_need_no_face_stack() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
