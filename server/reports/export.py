"""Reports as files: XLSX (openpyxl) and PDF (fpdf2 with a Unicode TTF, so Kazakh letters such
as Ә Ғ Қ Ң Ө Ұ Ү Һ І render). A report is one or more ``Sheet``s of already translated text."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fpdf import FPDF
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.styles import Font

from server.spreadsheets import neutralise_workbook

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

Cell = str | int | float | None

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF_TYPE = "application/pdf"


class FontMissing(RuntimeError):
    """The PDF needs a Unicode TrueType font; the message says which file and how to get it."""


@dataclass(slots=True)
class Sheet:
    title: str
    subtitle: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    totals: list[Cell] | None = None
    signatures: list[str] = field(default_factory=list)  # "Director" -> a line to sign
    name: str = ""  # the XLSX tab (max 31 characters)


def filename(*parts: str, ext: str) -> str:
    """An ASCII-safe download name: ``attendance_S1_3A_2026-11-20.xlsx`` (a part with no ASCII
    letters, such as a Cyrillic class name, is left out here; ``disposition`` keeps it)."""
    safe = [re.sub(r"[^A-Za-z0-9.-]+", "-", p).strip("-") for p in parts if p]
    return "_".join(p for p in safe if p) + f".{ext}"


def disposition(*parts: str, ext: str) -> str:
    """``attachment`` with the ASCII name and the full UTF-8 name (RFC 6266 / 5987)."""
    full = "_".join(re.sub(r"[\\/:*?\"<>|\s]+", "-", p) for p in parts if p) + f".{ext}"
    return f"attachment; filename=\"{filename(*parts, ext=ext)}\"; filename*=UTF-8''{quote(full)}"


# ------------------------------------------------------------------------------------ XLSX


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    wb = Workbook()
    first = True
    bold = Font(bold=True)
    for i, sh in enumerate(sheets):
        ws = wb.active if first else wb.create_sheet()
        first = False
        assert ws is not None
        ws.title = _tab(sh.name or sh.title, i)
        ws.append([sh.title])
        ws.cell(row=1, column=1).font = Font(bold=True, size=13)
        for line in sh.subtitle:
            ws.append([line])
        ws.append([])
        ws.append(list(sh.headers))
        for c in ws[ws.max_row]:
            c.font = bold
        for row in sh.rows:
            ws.append(list(row))
        if sh.totals is not None:
            ws.append(list(sh.totals))
            for c in ws[ws.max_row]:
                c.font = bold
        if sh.signatures:
            ws.append([])
            for s in sh.signatures:
                ws.append([s, "", "_______________________"])
        for col, header in enumerate(sh.headers, start=1):
            width = max(
                [len(str(header))] + [len(str(r[col - 1] or "")) for r in sh.rows if len(r) >= col]
            )
            ws.column_dimensions[ws.cell(row=1, column=col).column_letter].width = min(
                max(8, width + 2), 48
            )
    buf = io.BytesIO()
    neutralise_workbook(wb).save(buf)
    return buf.getvalue()


def _tab(text: str, i: int) -> str:
    clean = re.sub(r"[\[\]:*?/\\]", " ", text).strip()[:28] or "Sheet"
    return f"{clean}" if i == 0 else f"{clean[:26]} {i + 1}"


# ------------------------------------------------------------------------------------- PDF


def _font_check() -> None:
    if not FONT.is_file():
        raise FontMissing(
            f"PDF export needs the DejaVu Sans font at {FONT} (Debian/Ubuntu: "
            "apt-get install fonts-dejavu-core); without it Kazakh letters cannot be drawn"
        )


def to_pdf(sheets: Sequence[Sheet], subject: str = "") -> bytes:
    """``subject`` goes into the document's metadata too (the school's name: searchable)."""
    _font_check()
    wide = any(len(sh.headers) > 6 for sh in sheets)
    pdf = FPDF(orientation="L" if wide else "P", unit="mm", format="A4")
    pdf.set_subject(subject)
    pdf.set_creator("Qaqpa")
    pdf.set_title(sheets[0].title if sheets else "")
    pdf.add_font("DejaVu", "", str(FONT))
    pdf.add_font("DejaVu", "B", str(FONT_BOLD if FONT_BOLD.is_file() else FONT))
    pdf.set_auto_page_break(True, margin=12)
    for sh in sheets:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 13)
        pdf.multi_cell(0, 7, sh.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 10)
        for line in sh.subtitle:
            pdf.multi_cell(0, 5.5, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        if sh.headers:
            size = 9 if len(sh.headers) <= 8 else 7
            pdf.set_font("DejaVu", "", size)
            numeric = [
                all(
                    isinstance(r[i], int | float) or r[i] in (None, "")
                    for r in sh.rows
                    if len(r) > i
                )
                and any(isinstance(r[i], int | float) for r in sh.rows if len(r) > i)
                for i in range(len(sh.headers))
            ]
            align = tuple("RIGHT" if n else "LEFT" for n in numeric)
            with pdf.table(
                headings_style=FontFace(emphasis="BOLD"),
                text_align=align,
                line_height=size * 0.5 + 1.5,
                repeat_headings=1,
            ) as table:
                table.row([str(h) for h in sh.headers])
                for r in sh.rows:
                    table.row([_text(c) for c in r])
                if sh.totals is not None:
                    table.row([_text(c) for c in sh.totals], style=FontFace(emphasis="BOLD"))
        if sh.signatures:
            pdf.ln(8)
            pdf.set_font("DejaVu", "", 10)
            for s in sh.signatures:
                pdf.cell(80, 9, s)
                pdf.cell(
                    0,
                    9,
                    "_______________________  /_______________/",
                    new_x="LMARGIN",
                    new_y="NEXT",
                )
    out = pdf.output()
    return bytes(out)


def _text(c: Cell) -> str:
    return "" if c is None else str(c)
