"""Reading an aggregate coverage report (CSV or XLSX). Pure apart from parsing bytes.

Columns (a header row, any order; names as in ``seed000.HEADER``): ``district``, ``school_id``
(empty for a district's summary of schools not in the system), ``schools`` (1 for a school's row),
then the counts. A CSV is UTF-8 (with or without BOM) or Windows-1251, separated by commas,
semicolons or tabs. Every problem is collected with its row; the import then changes nothing.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Any

from server.equipment.calc import COLUMNS, Counts
from server.spreadsheets import restore_cell

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
MAX_XLSX_INFLATED = 30 * 1024 * 1024
REQUIRED = ("district", *COLUMNS[1:])


class ImportFailed(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors[:5]))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    district: str
    school_id: str | None
    counts: Counts


def read_table(name: str, data: bytes) -> list[list[str]]:
    if len(data) > MAX_BYTES:
        raise ImportFailed([f"the file is larger than {MAX_BYTES} bytes"])
    if data.startswith(b"PK\x03\x04"):
        return _xlsx(data)
    if name.lower().endswith((".xlsx", ".xls")):
        raise ImportFailed(["not a readable XLSX workbook"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1251")
    first = text.split("\n", 1)[0]
    delim = max((";", ",", "\t"), key=first.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delim))
    except csv.Error as err:
        raise ImportFailed([f"not a CSV table ({err})"]) from err
    return [[restore_cell(c.strip()) for c in r] for r in rows[: MAX_ROWS + 2]]


def _xlsx(data: bytes) -> list[list[str]]:
    import openpyxl

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_XLSX_INFLATED:
                raise ImportFailed(["the workbook inflates beyond the limit"])
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ImportFailed:
        raise
    except Exception as err:  # openpyxl raises many kinds for a damaged workbook
        raise ImportFailed(["not a readable XLSX workbook"]) from err
    try:
        out: list[list[str]] = []
        ws = wb.worksheets[0]
        for values in ws.iter_rows(max_col=16, max_row=MAX_ROWS + 2, values_only=True):
            out.append([_text(v) for v in values])
        return out
    finally:
        wb.close()


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return restore_cell(str(v).strip())


def parse_rows(table: list[list[str]]) -> list[ImportRow]:
    """Rows of the table; every problem named with its line, all at once (ImportFailed)."""
    body = [(i + 1, r) for i, r in enumerate(table) if any(c.strip() for c in r)]
    if not body:
        raise ImportFailed(["the file is empty"])
    header = [c.strip().lower() for c in body[0][1]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFailed([f"line {body[0][0]}: missing columns {', '.join(missing)}"])
    if len(body) - 1 > MAX_ROWS:
        raise ImportFailed([f"more than {MAX_ROWS} rows"])
    col = {name: header.index(name) for name in header if name}
    errors: list[str] = []
    out: list[ImportRow] = []
    for line, cells in body[1:]:

        def cell(name: str, cells: list[str] = cells) -> str:
            i = col.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        district = cell("district")
        if not district or len(district) > 100:
            errors.append(f"line {line}: a district name of 1-100 characters")
            continue
        school = cell("school_id") or None
        if school is not None and len(school) > 64:
            errors.append(f"line {line}: school_id longer than 64 characters")
            continue
        nums: dict[str, int] = {}
        for c in COLUMNS:
            raw = cell(c).replace("\u00a0", "").replace(" ", "")
            if c == "schools" and raw == "":
                raw = "1" if school is not None else ""
            try:
                nums[c] = int(raw)
            except ValueError:
                errors.append(f"line {line}: {c} is not a whole number ({raw[:20]!r})")
                continue
            if abs(nums[c]) > 100_000_000:
                errors.append(f"line {line}: {c} is out of range")
        if school is not None and nums.get("schools", 1) != 1:
            errors.append(f"line {line}: a school's own row counts one school")
        if len(nums) == len(COLUMNS):
            out.append(ImportRow(line, district, school, Counts(**nums)))
    if errors:
        raise ImportFailed(errors)
    return out
