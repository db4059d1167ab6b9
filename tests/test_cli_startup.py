"""``qaqpa run`` restarts a school's daemon after a crash or a power cut: building the command
line must not pull in the server's database stack (SQLAlchemy alone cost ~0.4 s of a cold start)."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_command_line_imports_no_server_database_stack() -> None:
    probe = (
        "import sys, qaqpa.cli as c; c.build_parser(); "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'fastapi', 'alembic', 'psycopg'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"imported at start: {out}"
