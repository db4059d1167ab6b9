"""An XLSX upload cannot exhaust the server's memory: a sheet declaring an absurd size is refused
before a row is read, and a sheet of many empty rows is streamed, not kept. The bound is on
memory (tracemalloc's peak), generous beside what the unbounded reader took."""

from __future__ import annotations

import io
import re
import tracemalloc
import zipfile

import openpyxl
import pytest

from server.roster import rules
from server.roster.rules import parse_file

# Measured here: 40,000 empty rows of a 64-column sheet peaked at 30 MB before the fix, 7 MB
# after; the bound sits between, generous to the bounded reader.
PEAK_LIMIT = 15 * 1024 * 1024


def _workbook(sheet_title: str = "Roster") -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet_title
    ws.append(list(rules.COLUMNS))
    ws.append(["s1", "Ахметов", "Айдос", "", "2016-04-12", "3A"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _patch_sheet(data: bytes, dimension: str, rows: str) -> bytes:
    """The workbook with sheet1's <dimension> replaced and ``rows`` added at the end."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                xml = body.decode()
                xml = re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="{dimension}"/>', xml)
                xml = xml.replace("</sheetData>", rows + "</sheetData>")
                body = xml.encode()
            dst.writestr(info.filename, body)
    return out.getvalue()


def _peak(data: bytes) -> tuple[rules.ParsedRoster, int]:
    tracemalloc.start()
    try:
        parsed = parse_file("roster.xlsx", data)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return parsed, peak


def test_absurd_declared_dimension_is_refused_before_reading() -> None:
    data = _patch_sheet(_workbook("Class 3A"), "A1:XFD1048576", "")
    assert len(data) < 10_000
    parsed, peak = _peak(data)
    assert parsed.refused
    [err] = parsed.errors
    assert err.reason == rules.E_XLSX_DIMENSION
    # The message names the sheet, what it declares and the limits.
    assert "Class 3A" in err.text and "1048576" in err.text and "16384" in err.text
    assert str(rules.MAX_XLSX_SCAN_ROWS) in err.text and str(rules.MAX_XLSX_COLUMNS) in err.text
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"


def test_wide_declared_dimension_alone_is_refused() -> None:
    data = _patch_sheet(_workbook(), "A1:ZZ3", "")
    parsed = parse_file("roster.xlsx", data)
    assert parsed.refused and parsed.errors[0].reason == rules.E_XLSX_DIMENSION


def test_many_empty_rows_are_streamed_not_kept() -> None:
    # 40,000 empty (formatted) rows after the data, inside the declared size: the file is read
    # and accepted, and the empty rows are not kept.
    last = 40_000
    empty = "".join(f'<row r="{n}"><c r="A{n}" s="0"/></row>' for n in range(3, last + 1))
    data = _patch_sheet(_workbook(), f"A1:BL{last}", empty)
    parsed, peak = _peak(data)
    assert not parsed.refused, parsed.errors
    assert [r.cells["surname"] for r in parsed.rows] == ["Ахметов"]
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"


def test_a_data_row_past_the_limit_is_still_refused() -> None:
    far = rules.MAX_ROWS + 50
    tail = f'<row r="{far}"><c r="B{far}" t="inlineStr"><is><t>Late</t></is></c></row>'
    data = _patch_sheet(_workbook(), f"A1:N{far}", tail)
    parsed = parse_file("roster.xlsx", data)
    assert parsed.refused and parsed.errors[0].reason == rules.E_TOO_MANY_ROWS


def test_rows_beyond_the_scan_limit_are_refused_without_a_dimension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No <dimension> at all: the reader still stops at its own depth (lowered to keep it quick).
    monkeypatch.setattr(rules, "MAX_XLSX_SCAN_ROWS", rules.MAX_ROWS + 2000)
    far = rules.MAX_XLSX_SCAN_ROWS + 10
    empty = "".join(f'<row r="{n}"/>' for n in range(3, far))
    data = _patch_sheet(_workbook(), "A1:N2", empty)
    data = _strip_dimension(data)
    parsed, peak = _peak(data)
    assert parsed.refused and parsed.errors[0].reason == rules.E_TOO_MANY_ROWS
    assert peak < PEAK_LIMIT, f"peak {peak / 1e6:.1f} MB"


def _strip_dimension(data: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                body = re.sub(rb"<dimension[^>]*/>", b"", body)
            dst.writestr(info.filename, body)
    return out.getvalue()
