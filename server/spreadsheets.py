"""Neutralising spreadsheet cells in every export (CSV and XLSX), against formula injection.

A surname such as ``=HYPERLINK("http://x","y")`` must reach a spreadsheet as text, never as a
live formula. As OWASP recommends, a text cell that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading apostrophe; numbers (and text that is only a number,
such as ``-12.5`` or ``+77010000000``) are kept as they are. The roster import strips that one
apostrophe again (``restore_cell``), so an exported roster reads back the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def safe_cell(value: Any) -> Any:
    """The value to write into a cell: text that a spreadsheet would evaluate is prefixed."""
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def restore_cell(text: str) -> str:
    """What ``safe_cell`` wrote, back as it was (an imported cell)."""
    if text.startswith("'") and text[1:].startswith(TRIGGERS):
        return text[1:]
    return text


def neutralise_workbook(wb: Any) -> Any:
    """Every cell of an openpyxl workbook (write mode) made safe before it is saved. openpyxl
    stores a string starting with ``=`` as a formula: such cells become text again here."""
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                value = cell.value
                if isinstance(value, str):
                    safe = safe_cell(value)
                    if safe is not value:
                        cell.value = safe
                        cell.data_type = "s"
    return wb
