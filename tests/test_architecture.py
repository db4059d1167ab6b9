"""The layers of DESIGN.md (invariant 9) hold: import-linter's contracts in pyproject.toml
(``[tool.importlinter]``) are kept by the code, and each kind of crossing import breaks one.

qaqpa > simulators > edge | server > hardware > protocol; edge and server independent; the server
uses no hardware; no import circles inside protocol, hardware, edge, simulators and qaqpa, and no
new ones inside server. The second test copies the packages, adds one forbidden import and checks
that the contracts catch it, so a contract that silently stopped matching fails here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "hardware", "edge", "server", "simulators", "qaqpa")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages under ``root`` (they shadow the installed ones)."""
    return subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_are_kept() -> None:
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the daemon leaning on a test fake (edge -> simulators)
        ("edge/daemon.py", "import simulators.school", "Layers"),
        # the server wiring the demo's sinks itself (server -> simulators)
        ("server/embedded.py", "import simulators.notify_sinks", "Layers"),
        # edge and server are independent
        ("edge/config.py", "import server.settings", "Layers"),
        ("server/settings.py", "import edge.config", "Layers"),
        # anything importing the composition root
        ("simulators/school.py", "import qaqpa.bench", "Layers"),
        # a driver reaching up, and the wire format reaching out
        ("hardware/base.py", "import edge.config", "Layers"),
        ("protocol/messages.py", "import hardware.base", "Layers"),
        ("server/db.py", "import hardware.base", "The server drives no hardware"),
        # circles: the decision core back into the daemon; the base models into a module
        ("edge/core/model.py", "import edge.daemon", "No import circles inside protocol"),
        ("server/models.py", "import server.people.service", "No new import circles"),
    ],
)
def test_a_crossing_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")

    proc = lint_imports(tmp_path)

    assert proc.returncode != 0, proc.stdout[-4000:]
    broken = [row for row in proc.stdout.splitlines() if " BROKEN" in row]
    assert any(row.startswith(contract) for row in broken), proc.stdout[-4000:]


def test_no_module_imports_itself_through_others() -> None:
    """No circle between any two modules of ours, at any depth (grimp's graph holds every
    import, including those inside functions): the sub-package contracts above allow a few
    older circles between the server's sub-packages, never one between modules."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    circles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.append(" -> ".join((module, *back)))
    assert circles == []
