"""``qaqpa server equipment ...``: the coverage report (JSON, XLSX, PDF), importing aggregate
reports, and overdue reminders."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def _session(args: argparse.Namespace) -> Any:
    from server.db import make_engine, session_factory
    from server.settings import ServerSettings

    url = args.database_url or ServerSettings().database_url
    engine = make_engine(url)
    return engine, session_factory(engine)()


def _coverage(args: argparse.Namespace) -> int:
    from server.clock import Clock
    from server.console.i18n import gettext
    from server.equipment.calc import report_json
    from server.equipment.export import coverage_sheet
    from server.equipment.service import coverage_report
    from server.models import Region
    from server.reports.export import to_pdf, to_xlsx

    engine, db = _session(args)
    try:
        region = db.get(Region, args.region)
        if region is None:
            print(
                f"qaqpa server equipment coverage: unknown region {args.region!r}", file=sys.stderr
            )
            return 2
        report = coverage_report(db, region.id, args.period, Clock().today_in(None))
        sheet = coverage_sheet(report, region.name, lambda m: gettext(m, args.lang))
    finally:
        db.close()
        engine.dispose()
    if args.xlsx:
        Path(args.xlsx).write_bytes(to_xlsx([sheet]))
    if args.pdf:
        logging.getLogger("fontTools").setLevel(logging.WARNING)  # a line per subset glyph table
        Path(args.pdf).write_bytes(to_pdf([sheet], subject=region.name))
    if args.json or not (args.xlsx or args.pdf):
        print(json.dumps(report_json(report), ensure_ascii=False, indent=1))
    return 0


def _import(args: argparse.Namespace) -> int:
    from server.clock import now_ms
    from server.equipment.importer import ImportFailed, parse_rows, read_table
    from server.equipment.service import import_reports

    path = Path(args.file)
    engine, db = _session(args)
    try:
        rows = parse_rows(read_table(path.name, path.read_bytes()[: 2 * 1024 * 1024 + 1]))
        n, flagged = import_reports(
            db, None, args.region, args.period, rows, source=path.name, now=now_ms()
        )
        db.commit()
    except ImportFailed as err:
        db.rollback()
        for e in err.errors:
            print(f"qaqpa server equipment import: {e}", file=sys.stderr)
        return 2
    finally:
        db.close()
        engine.dispose()
    print(f"{n} rows imported, {flagged} flagged (kept, not summed)")
    return 0


def _remind(args: argparse.Namespace) -> int:
    from server.clock import Clock, now_ms
    from server.equipment.service import send_overdue_reminders

    engine, db = _session(args)
    try:
        n = send_overdue_reminders(db, Clock().today_in(None), now_ms())
        db.commit()
    finally:
        db.close()
        engine.dispose()
    print(f"{n} reminders queued")
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    eq = subparsers.add_parser("equipment", help="the equipment module (seed 000)")
    sub = eq.add_subparsers(dest="equipment_command", required=True)
    p = sub.add_parser("coverage", parents=[common], help="the coverage report of a region")
    p.add_argument("--region", required=True)
    p.add_argument("--period", required=True, help="e.g. 2020")
    p.add_argument("--json", action="store_true", help="print JSON (the default)")
    p.add_argument("--xlsx", default=None, help="write an XLSX file")
    p.add_argument("--pdf", default=None, help="write a PDF file")
    p.add_argument("--lang", default="en", choices=("kk", "ru", "en"))
    p.set_defaults(func=_coverage)
    p = sub.add_parser("import", parents=[common], help="import aggregate reports (CSV/XLSX)")
    p.add_argument("--region", required=True)
    p.add_argument("--period", required=True)
    p.add_argument("file")
    p.set_defaults(func=_import)
    p = sub.add_parser("remind", parents=[common], help="queue reminders of overdue items")
    p.set_defaults(func=_remind)
