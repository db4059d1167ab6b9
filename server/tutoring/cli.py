"""``qaqpa server tutoring import|report``: load a project's spreadsheets, print its growth
table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_FILE = 5 * 1024 * 1024 + 1


def _read(path: str) -> tuple[str, bytes]:
    p = Path(path)
    with p.open("rb") as f:
        return p.name, f.read(MAX_FILE)


def _import(args: argparse.Namespace) -> int:
    from server.db import make_engine, session_factory
    from server.tutoring.service import import_project

    files: dict[str, tuple[str, bytes]] = {}
    for table in ("directions", "assignments", "tests"):
        path = getattr(args, table)
        if path:
            try:
                files[table] = _read(path)
            except OSError as err:
                print(f"{path}\t0\t\tcannot read the file: {err.strerror}", file=sys.stderr)
                return 2
    settings = args.settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            result = import_project(
                session,
                None,
                args.project,
                files,
                name=args.name or "",
                status=args.status,
                region_id=args.region,
            )
            if isinstance(result, list):
                session.rollback()
                for p in result:
                    print(f"{p.file}\t{p.line}\t{p.column}\t{p.reason}", file=sys.stderr)
                print(
                    f"qaqpa server tutoring import: refused, {len(result)} problem(s); "
                    "nothing was imported",
                    file=sys.stderr,
                )
                return 1
            session.commit()
    finally:
        engine.dispose()
    print(
        f"project {args.project}: {result.directions} directions, {result.subjects} subjects, "
        f"{result.volunteers} volunteers ({result.assignments} assignments), "
        f"{result.students} students, {result.tests} tests"
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from server.db import make_engine, session_factory
    from server.tutoring.service import get_project, growth_report

    settings = args.settings(args)
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            project = get_project(session, args.project)
            if project is None:
                print(f"qaqpa server tutoring report: no project {args.project}", file=sys.stderr)
                return 2
            rows = growth_report(session, project)
    finally:
        engine.dispose()
    table: list[dict[str, Any]] = [r.as_json() for r in rows]
    if args.json:
        print(json.dumps(table, ensure_ascii=False, indent=2))
        return 0
    cols = ["direction", "hours", "volunteers", "students", "paired", "before", "after", "growth"]
    cols += ["normalised_gain", "growth_ci95"]
    print("\t".join(cols))
    for r in table:
        print("\t".join("" if r[c] is None else str(r[c]) for c in cols))
    return 0


def add_commands(
    subparsers: Any, common: argparse.ArgumentParser, settings: Callable[[argparse.Namespace], Any]
) -> None:
    """``settings(args)``: the server's settings (``server.cli`` passes its own reader)."""
    tut = subparsers.add_parser("tutoring", help="tutoring projects (import, growth table)")
    sub = tut.add_subparsers(dest="tutoring_command", required=True)
    p = sub.add_parser(
        "import", parents=[common], help="load a project from CSV/XLSX files (all or nothing)"
    )
    p.add_argument("--project", required=True, help="the project's code (new)")
    p.add_argument("--name", default="", help="the project's name")
    p.add_argument("--status", choices=["finished", "live"], default="finished")
    p.add_argument("--region", default=None, help="region id")
    p.add_argument("--directions", required=True, help="directions file: direction, hours, subject")
    p.add_argument("--assignments", default=None, help="volunteer, direction, subject, name")
    p.add_argument("--tests", default=None, help="student, direction, test, score")
    p.set_defaults(func=_import, settings=settings)
    p = sub.add_parser("report", parents=[common], help="the growth table of a project")
    p.add_argument("--project", required=True)
    p.add_argument("--json", action="store_true", help="a JSON array, one object per direction")
    p.set_defaults(func=_report, settings=settings)
