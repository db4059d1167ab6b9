"""The coverage report and a campaign's final report as tables of translated text: the page,
XLSX and PDF share them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


# The final report's lines, in the page's order: (label, key in ``service.final_report``, money).
FINAL_LINES: tuple[tuple[str, str, bool], ...] = (
    (N_("Devices delivered"), "delivered", False),
    (N_("Accepted"), "accepted", False),
    (N_("Refused at acceptance"), "rejected", False),
    (N_("Children on approved lists"), "children_listed", False),
    (N_("Children holding a device"), "children_with_device", False),
    (N_("Children still uncovered"), "children_uncovered", False),
    (N_("Money raised"), "raised_tiyn", True),
    (N_("Money spent"), "spent_tiyn", True),
)


def final_sheet(
    final: dict[str, Any], region_name: str, tr: Callable[[str], str], signal_labels: dict[str, str]
) -> Sheet:
    """A campaign's final report: counts as integers, money in tenge (numbers a spreadsheet
    can add), the risk signals below."""
    rows: list[list[Cell]] = []
    for label, key, money in FINAL_LINES:
        value = final[key]
        rows.append([tr(label), round(value / 100, 2) if money else int(value)])
    subtitle = [f"{region_name} · {final['campaign']} · {final['period']}"]
    subtitle += [f"{tr(signal_labels[s])}: {detail}" for s, detail in final["signals"]]
    return Sheet(
        title=tr(N_("Final report")),
        subtitle=subtitle,
        headers=["", tr(N_("Value (money in tenge)"))],
        rows=rows,
        name="final",
    )
