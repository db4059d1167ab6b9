"""The coverage report as a table of translated text: the page, XLSX and PDF share it."""

from __future__ import annotations

from collections.abc import Callable

from server.equipment.calc import COLUMN_LABELS, COLUMNS, Report
from server.reports.export import Cell, Sheet

N_ = str


def coverage_sheet(report: Report, region_name: str, tr: Callable[[str], str]) -> Sheet:
    rows: list[list[Cell]] = []
    for i, d in enumerate(report.districts, start=1):
        note = tr(N_("flagged, not summed")) if d.flagged else ""
        shown = d.counts if (d.counts.students or not d.flagged) else d.flagged[0].counts
        rows.append([i, d.district, *(getattr(shown, c) for c in COLUMNS), note])
    subtitle = [f"{region_name} · {report.period}"]
    for r in report.flagged:
        subtitle.append(
            f"{tr(N_('Flagged row, not summed'))}: {r.district}"
            + (f" / {r.school_id}" if r.school_id else "")
            + ": "
            + "; ".join(r.problems)
        )
    if report.flagged:
        subtitle.append(
            f"{tr(N_('Total as submitted (with the flagged rows)'))}: "
            + ", ".join(str(v) for v in report.total_as_submitted.as_dict().values())
        )
    return Sheet(
        title=tr(N_("Computer coverage of students")),
        subtitle=subtitle,
        headers=["№", tr(N_("District")), *(tr(COLUMN_LABELS[c]) for c in COLUMNS), ""],
        rows=rows,
        totals=["", tr(N_("Total")), *(getattr(report.total, c) for c in COLUMNS), ""],
        name="coverage",
    )
