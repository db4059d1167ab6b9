"""Reading a roster file and checking its rows: pure functions, no database, ``today`` passed in.

A file becomes a ``ParsedRoster`` (``parse_file``): its encoding, its rows as text cells with
their line numbers, and every problem found as (line, column, reason). ``check_rows`` then turns
the cells into typed ``RosterRow``s against the school's classes. Reasons are English msgids
(marked with ``N_``) with ``{name}`` arguments, translated when shown.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from server.spreadsheets import neutralise_workbook, restore_cell, safe_cell
from server.text_safety import hidden_at

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 5000
# An XLSX is a zip: refuse one that inflates beyond this (a zip bomb), before openpyxl reads it.
MAX_XLSX_INFLATED = 60 * 1024 * 1024
# A sheet is read at most this wide and this deep; a sheet that declares more (its <dimension>,
# e.g. A1:XFD1048576) is refused before a row is read, since openpyxl pads every row to the
# declared width and fills the declared depth with empty rows.
MAX_XLSX_COLUMNS = 64
MAX_XLSX_SCAN_ROWS = 20 * MAX_ROWS

COLUMNS = (
    "student_ref",
    "surname",
    "given_name",
    "patronymic",
    "birth_date",
    "class",
    "grade",
    "shift",
    "guardian_name",
    "guardian_phone",
    "guardian_email",
    "consent_given_by",
    "consent_document",
    "consent_date",
)
REQUIRED = (
    "surname",
    "given_name",
    "class",
    "consent_given_by",
    "consent_document",
    "consent_date",
)
CONSENT_COLUMNS = ("consent_given_by", "consent_document", "consent_date")
MAX_LEN = {
    "student_ref": 64,
    "surname": 100,
    "given_name": 100,
    "patronymic": 100,
    "class": 16,
    "guardian_name": 200,
    "guardian_email": 200,
    "consent_given_by": 200,
    "consent_document": 200,
}


def N_(message: str) -> str:
    """Marks an English msgid for the catalogues; translated when shown."""
    return message


# ----------------------------------------------------------------------------------- errors

E_TOO_LARGE = N_("The file is larger than 5 MB: split it or remove unused sheets.")
E_TOO_MANY_ROWS = N_("The file has more than 5,000 rows: import it in parts.")
E_NOT_TABULAR = N_("Not a CSV or XLSX file.")
E_OLD_XLS = N_("An old Excel .xls file: save it as .xlsx or as CSV.")
E_ENCODING = N_("The text is neither UTF-8 nor Windows-1251 / KZ-1048: save the file as UTF-8 CSV.")
E_UTF16 = N_("The text is UTF-16: save the file as UTF-8 CSV.")
E_MIXED_ENCODING = N_(
    "The file mixes encodings: line {at_line}, character {at_column} is not UTF-8 while the rest "
    "of the file is. Correct that character, or save the file again as UTF-8 CSV."
)
E_HIDDEN_CHAR = N_(
    "an invisible or text-direction character at position {at}: retype the text without it"
)
E_BAD_XLSX = N_("The XLSX file cannot be read (damaged, encrypted or not a workbook).")
E_XLSX_DIMENSION = N_(
    "The sheet {sheet} declares {rows} rows and {columns} columns; at most {max_rows} rows and "
    "{max_columns} columns are read: copy the student lines into a new sheet."
)
E_EMPTY = N_("The file is empty: the first line must name the columns.")
E_NO_ROWS = N_("The file has no student lines under the column names.")
E_UNKNOWN_COLUMN = N_("unknown column")
# Card numbers stay at the school (DESIGN invariant 5): a roster carrying them is refused whole,
# so that no number is read here, with where the file goes instead.
E_CARD_COLUMN = N_(
    "Card numbers are bound at the school, not here: at the school's edge, tap the card at the desk (staff page, Cards) or import the file there with: qaqpa edge cards import FILE.csv"
)
CARD_COLUMNS = frozenset(
    {
        "card",
        "cards",
        "card_number",
        "card_no",
        "credential",
        "rfid",
        "uid",
        "карта",
        "карты",
        "номер_карты",
        "карта_нөмірі",
        "карточка",
    }
)
E_MISSING_COLUMN = N_("required column is missing")
E_DUP_COLUMN = N_("the column appears twice")
E_EXTRA_CELLS = N_("more cells than there are columns")
E_REQUIRED = N_("required field is empty")
E_NO_CONSENT = N_(
    "no written data consent: a student's data enters the system only with a parent's consent"
)
E_TOO_LONG = N_("too long (at most {max} characters)")
E_DATE = N_("not a date (write YYYY-MM-DD or DD.MM.YYYY)")
E_FUTURE = N_("the date is in the future")
E_BIRTH_RANGE = N_("a student's birth date must give an age of 3 to 25 years")
E_INT = N_("not a whole number")
E_GRADE = N_("grade must be 0 to 12")
E_SHIFT = N_("shift must be 1 to 3")
E_CLASS_NAME = N_("a class name is a grade and a letter, e.g. 3A")
E_CLASS_UNKNOWN = N_(
    "class {cls} does not exist: create it on the Classes page or fill grade and shift"
)
E_CLASS_GRADE = N_("grade {grade} does not match class {cls} (grade {expected})")
E_CLASS_SHIFT = N_("shift {shift} does not match class {cls} (shift {expected})")
E_CLASS_NAME_GRADE = N_("grade {grade} does not match the class name {cls}")
E_CLASS_CONFLICT = N_("class {cls} has another grade or shift on line {other}")
E_DUP_REF = N_("duplicate student: the same student_ref as line {other}")
E_DUP_PERSON = N_("duplicate student: the same name and birth date as line {other}")
E_REF_FORMAT = N_("student_ref may hold only Latin letters, digits and _ . : - (at most 64)")
E_REF_IIN = N_("student_ref looks like an IIN: use the school's own number, never an IIN")
E_PHONE = N_("not a Kazakhstan phone number (+7 and 10 digits)")
E_EMAIL = N_("not an e-mail address")
E_GUARDIAN_NAME = N_("a guardian's phone or e-mail needs guardian_name")
# Found against the database (server.roster.service)
# Says only that the id is taken, never where: another school's students are not this user's
# business (ids are unique across all schools, so a taken one cannot be given again).
E_REF_OTHER_SCHOOL = N_("student_ref {ref} cannot be used: leave it empty or give another")
E_AMBIGUOUS = N_("several students of the school have this name and birth date: give student_ref")
E_WITHDRAWN = N_("the data consent was withdrawn on {date}: a consent signed after that is needed")


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem: ``line`` 1 is the header (0: the file as a whole); ``column`` a column name
    or "" for the whole line; ``reason`` an English msgid formatted with ``args``."""

    line: int
    column: str
    reason: str
    args: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return self.reason.format(**dict(self.args))

    def localized(self, translate: Any) -> str:
        return str(translate(self.reason)).format(**dict(self.args))

    def as_tuple(self) -> tuple[int, str, str]:
        return (self.line, self.column, self.text)


def row_error(line: int, column: str, reason: str, **args: object) -> RowError:
    return RowError(line, column, reason, tuple((k, str(v)) for k, v in args.items()))


@dataclass(frozen=True, slots=True)
class RawRow:
    line: int
    cells: Mapping[str, str]


@dataclass(slots=True)
class ParsedRoster:
    """A file read as text rows (before the rows are checked)."""

    name: str
    sha256: str
    kind: str  # "csv" | "xlsx" | ""
    encoding: str  # "UTF-8", "UTF-8 with BOM", "Windows-1251", "KZ-1048", "" (XLSX)
    columns: list[str] = field(default_factory=list)
    rows: list[RawRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # A file-level or header problem: its rows are not looked at.
    refused: bool = False


# ---------------------------------------------------------------------------------- reading


def parse_file(name: str, data: bytes) -> ParsedRoster:
    """Reads a CSV (UTF-8 with or without BOM, or Windows-1251; comma or semicolon) or an XLSX
    (its first sheet). Never raises for bad input: problems are in ``errors``."""
    out = ParsedRoster(name=name, sha256=hashlib.sha256(data).hexdigest(), kind="", encoding="")
    if len(data) > MAX_BYTES:
        return _refuse(out, E_TOO_LARGE)
    lower = name.lower()
    if data.startswith(b"\xd0\xcf\x11\xe0") or lower.endswith(".xls"):
        return _refuse(out, E_OLD_XLS)
    table: list[tuple[int, list[str]]] | None
    if data.startswith(b"PK\x03\x04"):
        out.kind = "xlsx"
        table = _read_xlsx(data, out)
    elif lower.endswith(".xlsx"):
        return _refuse(out, E_BAD_XLSX)
    elif lower.endswith((".csv", ".txt")):
        out.kind = "csv"
        table = _read_csv(data, out)
    else:
        return _refuse(out, E_NOT_TABULAR)
    if table is None:
        return out
    _take_table(table, out)
    return out


def _refuse(out: ParsedRoster, reason: str, line: int = 0) -> ParsedRoster:
    out.errors.append(row_error(line, "", reason))
    out.refused = True
    return out


_KZ1048_ONLY = frozenset(b"\x8d\x8e\x9d\x9e\xa1\xa2\xa3\xa5\xaa\xaf\xb4\xba\xbc\xbd\xbe\xbf")


def _utf16(data: bytes) -> bool:
    return data.startswith((b"\xff\xfe", b"\xfe\xff"))


_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _mixed_utf8(data: bytes, err: UnicodeDecodeError) -> tuple[int, int] | None:
    """(line, character) of the first byte that is not UTF-8 in a file that is otherwise UTF-8
    (one Latin-1 or Windows byte pasted into a UTF-8 file), or None for a file in another
    encoding. A Windows-1251 text has few byte pairs that happen to be valid UTF-8 and many
    that are not; a UTF-8 text with a stray byte the other way round."""
    valid = len(_UTF8_MULTIBYTE.findall(data))
    invalid = data.decode("utf-8", errors="replace").count("\ufffd")
    if valid == 0 or invalid * 4 > valid:
        return None
    start = err.start
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, start) + 1, column


def _read_csv(data: bytes, out: ParsedRoster) -> list[tuple[int, list[str]]] | None:
    if _utf16(data):
        _refuse(out, E_UTF16)
        return None
    text: str
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            text = data[3:].decode("utf-8")
        except UnicodeDecodeError:
            _refuse(out, E_ENCODING)
            return None
        out.encoding = "UTF-8 with BOM"
    else:
        try:
            text = data.decode("utf-8")
            out.encoding = "UTF-8"
        except UnicodeDecodeError as err:
            mixed = _mixed_utf8(data, err)
            if mixed is not None:
                out.errors.append(
                    row_error(mixed[0], "", E_MIXED_ENCODING, at_line=mixed[0], at_column=mixed[1])
                )
                out.refused = True
                return None
            # Windows-1251 cannot hold the Kazakh letters; Windows in a Kazakh locale writes
            # KZ-1048, which differs only where 1251 has Ukrainian and Serbian letters.
            kazakh = any(b in _KZ1048_ONLY for b in data)
            try:
                text = data.decode("kz1048" if kazakh else "cp1251")
            except UnicodeDecodeError:
                _refuse(out, E_ENCODING)
                return None
            out.encoding = "KZ-1048" if kazakh else "Windows-1251"
    if "\x00" in text:
        _refuse(out, E_NOT_TABULAR)
        return None
    first = text.split("\n", 1)[0]
    # Excel in a Russian or Kazakh locale writes ';'; elsewhere ','.
    delimiter = ";" if first.count(";") > first.count(",") else ","
    if first.count("\t") > max(first.count(";"), first.count(",")):
        delimiter = "\t"
    # Excel's "sep=;" line names the separator; it is not the header.
    sep_line = re.fullmatch(r"sep=(.)", first.strip(), re.IGNORECASE)
    if sep_line is not None:
        delimiter = sep_line.group(1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    table: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            table.append((start, cells))
            start = reader.line_num + 1
            if len(table) > MAX_ROWS + 1 and any(c.strip() for c in cells):
                _refuse(out, E_TOO_MANY_ROWS)
                return None
    except csv.Error:
        _refuse(out, E_NOT_TABULAR, reader.line_num)
        return None
    return table[1:] if sep_line is not None else table


def _read_xlsx(data: bytes, out: ParsedRoster) -> list[tuple[int, list[str]]] | None:
    import openpyxl  # imported here: only an XLSX upload needs it

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            inflated = sum(i.file_size for i in z.infolist())
            if "xl/workbook.xml" not in z.namelist():
                _refuse(out, E_BAD_XLSX)
                return None
    except zipfile.BadZipFile:
        _refuse(out, E_BAD_XLSX)
        return None
    if inflated > MAX_XLSX_INFLATED:
        _refuse(out, E_TOO_LARGE)
        return None
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged workbook
        _refuse(out, E_BAD_XLSX)
        return None
    try:
        return _read_sheet(wb.worksheets[0], out)
    except Exception:
        _refuse(out, E_BAD_XLSX)
        return None
    finally:
        wb.close()


def _read_sheet(ws: Any, out: ParsedRoster) -> list[tuple[int, list[str]]] | None:
    """Streams the sheet's rows (read-only mode), never wider than ``MAX_XLSX_COLUMNS`` and
    never deeper than ``MAX_XLSX_SCAN_ROWS``; empty rows past ``MAX_ROWS`` are not kept."""
    rows, columns = ws.max_row or 0, ws.max_column or 0  # the declared <dimension>, if any
    if rows > MAX_XLSX_SCAN_ROWS or columns > MAX_XLSX_COLUMNS:
        out.errors.append(
            row_error(
                0,
                "",
                E_XLSX_DIMENSION,
                sheet=str(ws.title)[:40],
                rows=rows,
                columns=columns,
                max_rows=MAX_XLSX_SCAN_ROWS,
                max_columns=MAX_XLSX_COLUMNS,
            )
        )
        out.refused = True
        return None
    table: list[tuple[int, list[str]]] = []
    width = max(1, min(columns or MAX_XLSX_COLUMNS, MAX_XLSX_COLUMNS))
    for n, values in enumerate(ws.iter_rows(max_col=width, values_only=True), start=1):
        if n > MAX_XLSX_SCAN_ROWS:
            _refuse(out, E_TOO_MANY_ROWS)
            return None
        cells = [_cell_text(v) for v in values]
        if len(table) > MAX_ROWS:
            if any(cells):
                _refuse(out, E_TOO_MANY_ROWS)
                return None
            continue  # trailing empty rows: read past, not kept
        table.append((n, cells))
    return table


def _cell_text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # a phone or a grade typed as a number
    return str(v)


# Column names a school's own spreadsheet may already use (Russian, Kazakh), besides the
# template's English ones.
ALIASES: dict[str, tuple[str, ...]] = {
    "surname": ("фамилия", "тегі"),
    "given_name": ("имя", "аты"),
    "patronymic": ("отчество", "әкесінің аты"),
    "birth_date": ("дата рождения", "туған күні"),
    "class": ("класс", "сынып"),
    "grade": ("параллель", "сынып деңгейі"),
    "shift": ("смена", "ауысым"),
    "guardian_name": ("родитель", "ата-ана"),
    "guardian_phone": ("телефон родителя", "ата-ананың телефоны"),
    "guardian_email": ("почта родителя", "ата-ананың поштасы"),
    "consent_given_by": ("согласие дал", "келісім берген"),
    "consent_document": ("документ согласия", "келісім құжаты"),
    "consent_date": ("дата согласия", "келісім күні"),
}


def column_name(h: str) -> str:
    """A header cell as a column name: case, spaces and the Russian / Kazakh aliases folded."""
    return _norm_header(h)


def _norm_header(h: str) -> str:
    name = re.sub(r"[\s_]+", "_", h.strip().lstrip("\ufeff").strip().lower())
    return _ALIAS_OF.get(name, name)


_ALIAS_OF = {
    re.sub(r"[\s_]+", "_", alias): column for column, names in ALIASES.items() for alias in names
}


def _take_table(table: list[tuple[int, list[str]]], out: ParsedRoster) -> None:
    # The header is the first non-empty line, or a later one of the first few that names
    # columns (a school's sheet often starts with a title such as "3A class list").
    while table and not any(c.strip() for c in table[0][1]):
        table.pop(0)
    if not table:
        _refuse(out, E_EMPTY)
        return
    for i, (_line, cells) in enumerate(table[:10]):
        if sum(_norm_header(c) in REQUIRED for c in cells) >= 2:
            del table[:i]
            break
    header_line, header = table[0]
    while header and not header[-1].strip():
        header.pop()
    names = [_norm_header(h) for h in header]
    seen: set[str] = set()
    if any(name in CARD_COLUMNS for name in names):
        card = next(name for name in names if name in CARD_COLUMNS)
        out.errors.append(row_error(header_line, card, E_CARD_COLUMN))
        out.refused = True
        return
    for name in names:
        if name not in COLUMNS:
            out.errors.append(row_error(header_line, name or "?", E_UNKNOWN_COLUMN))
        elif name in seen:
            out.errors.append(row_error(header_line, name, E_DUP_COLUMN))
        seen.add(name)
    for name in REQUIRED:
        if name not in seen:
            out.errors.append(row_error(header_line, name, E_MISSING_COLUMN))
    out.columns = names
    if out.errors:
        # Cells cannot be read against a broken header.
        out.refused = True
        return
    for line, cells in table[1:]:
        if not any(c.strip() for c in cells):
            continue
        extra = [c for c in cells[len(names) :] if c.strip()]
        if extra:
            out.errors.append(row_error(line, "", E_EXTRA_CELLS))
        # restore_cell: an exported roster's neutralised cells ('=...) read back as they were.
        row = {
            n: (restore_cell(cells[i].strip()) if i < len(cells) else "")
            for i, n in enumerate(names)
        }
        out.rows.append(RawRow(line, row))
    if not out.rows:
        _refuse(out, E_NO_ROWS)
        return
    if len(out.rows) > MAX_ROWS:
        out.errors.clear()
        out.rows = []
        _refuse(out, E_TOO_MANY_ROWS)


# --------------------------------------------------------------------------------- checking

REF_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Cyrillic letters that look like Latin ones: "3А" and "3A" are one class.
_LOOKALIKE = str.maketrans("АВЕКМНОРСТХ", "ABEKMHOPCTX")


def class_key(name: str) -> str:
    """How class names compare: case, spaces, dashes and look-alike letters ignored."""
    return re.sub(r"[\s\-]", "", name).upper().translate(_LOOKALIKE)


def clean_class_name(name: str) -> str:
    return re.sub(r"[\s\-]", "", name).upper()


def person_key(surname: str, given: str, patronymic: str, birth: dt.date | None) -> str:
    return "|".join(
        (
            surname.casefold(),
            given.casefold(),
            patronymic.casefold(),
            birth.isoformat() if birth else "",
        )
    )


def parse_date(text: str) -> dt.date | None:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def normalize_phone(text: str) -> str | None:
    """ "8 (701) 234-56-78", "+7 701 2345678", "7012345678" -> "+77012345678"; None if not one."""
    digits = re.sub(r"[\s()\-.]", "", text)
    if digits.startswith("+"):
        digits = digits[1:]
        if not (digits.startswith("7") and len(digits) == 11):
            return None
    elif len(digits) == 11 and digits[0] in "78":
        digits = "7" + digits[1:]
    elif len(digits) == 10:
        digits = "7" + digits
    else:
        return None
    if not digits.isascii() or not digits.isdigit() or len(digits) != 11:
        return None
    return "+" + digits


@dataclass(frozen=True, slots=True)
class ClassInfo:
    name: str
    grade: int
    shift: int


@dataclass(frozen=True, slots=True)
class RosterRow:
    """A checked row: what the import writes for one student."""

    line: int
    ref: str  # "" = not given (matched by name and birth date, else a new ref is made)
    surname: str
    given_name: str
    patronymic: str
    birth_date: dt.date | None
    class_name: str
    grade: int | None
    shift: int | None
    guardian_name: str
    guardian_phone: str
    guardian_email: str
    consent_given_by: str
    consent_document: str
    consent_date: dt.date

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "ref": self.ref,
            "surname": self.surname,
            "given_name": self.given_name,
            "patronymic": self.patronymic,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "class_name": self.class_name,
            "grade": self.grade,
            "shift": self.shift,
            "guardian_name": self.guardian_name,
            "guardian_phone": self.guardian_phone,
            "guardian_email": self.guardian_email,
            "consent_given_by": self.consent_given_by,
            "consent_document": self.consent_document,
            "consent_date": self.consent_date.isoformat(),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RosterRow:
        birth = d.get("birth_date")
        return cls(
            line=int(d["line"]),
            ref=str(d["ref"]),
            surname=str(d["surname"]),
            given_name=str(d["given_name"]),
            patronymic=str(d["patronymic"]),
            birth_date=dt.date.fromisoformat(birth) if birth else None,
            class_name=str(d["class_name"]),
            grade=d.get("grade"),
            shift=d.get("shift"),
            guardian_name=str(d["guardian_name"]),
            guardian_phone=str(d["guardian_phone"]),
            guardian_email=str(d["guardian_email"]),
            consent_given_by=str(d["consent_given_by"]),
            consent_document=str(d["consent_document"]),
            consent_date=dt.date.fromisoformat(d["consent_date"]),
        )

    @property
    def person(self) -> str:
        return person_key(self.surname, self.given_name, self.patronymic, self.birth_date)


@dataclass(slots=True)
class CheckedRoster:
    rows: list[RosterRow]
    errors: list[RowError]
    # class key -> the class the file creates (name, grade, shift)
    new_classes: dict[str, ClassInfo]


def _int(cells: Mapping[str, str], col: str, line: int, errors: list[RowError]) -> int | None:
    text = cells.get(col, "").strip()
    if not text:
        return None
    if not text.isascii() or not text.lstrip("-").isdigit():
        errors.append(row_error(line, col, E_INT))
        return None
    return int(text)


def check_row(
    raw: RawRow, classes: Mapping[str, ClassInfo], today: dt.date
) -> tuple[RosterRow | None, list[RowError]]:
    """One row against the school's existing classes (keyed by ``class_key``)."""
    c, line = raw.cells, raw.line
    errors: list[RowError] = []

    def text(col: str) -> str:
        value = c.get(col, "").strip()
        at = hidden_at(value)
        if at is not None:
            errors.append(row_error(line, col, E_HIDDEN_CHAR, at=at))
        limit = MAX_LEN.get(col)
        if limit is not None and len(value) > limit:
            errors.append(row_error(line, col, E_TOO_LONG, max=limit))
        return value

    for col in ("surname", "given_name", "class"):
        if not c.get(col, "").strip():
            errors.append(row_error(line, col, E_REQUIRED))
    missing = [col for col in CONSENT_COLUMNS if not c.get(col, "").strip()]
    if len(missing) == len(CONSENT_COLUMNS):  # no consent at all: one message, not three
        errors.append(row_error(line, CONSENT_COLUMNS[0], E_NO_CONSENT))
    else:  # a consent written down in part: which field is missing
        errors.extend(row_error(line, col, E_REQUIRED) for col in missing)

    ref = text("student_ref")
    if ref:
        if not REF_RE.match(ref):
            errors.append(row_error(line, "student_ref", E_REF_FORMAT))
        elif re.fullmatch(r"\d{12}", ref):
            errors.append(row_error(line, "student_ref", E_REF_IIN))

    surname, given, patronymic = text("surname"), text("given_name"), text("patronymic")

    birth: dt.date | None = None
    if c.get("birth_date", "").strip():
        birth = parse_date(c["birth_date"])
        if birth is None:
            errors.append(row_error(line, "birth_date", E_DATE))
        elif not birth_date_ok(birth, today):
            errors.append(row_error(line, "birth_date", E_BIRTH_RANGE))

    consent_date: dt.date | None = None
    if c.get("consent_date", "").strip():
        consent_date = parse_date(c["consent_date"])
        if consent_date is None:
            errors.append(row_error(line, "consent_date", E_DATE))
        elif consent_date > today:
            errors.append(row_error(line, "consent_date", E_FUTURE))
    given_by, document = text("consent_given_by"), text("consent_document")

    grade = _int(c, "grade", line, errors)
    if grade is not None and not 0 <= grade <= 12:
        errors.append(row_error(line, "grade", E_GRADE))
        grade = None
    shift = _int(c, "shift", line, errors)
    if shift is not None and not 1 <= shift <= 3:
        errors.append(row_error(line, "shift", E_SHIFT))
        shift = None

    cls_name = clean_class_name(text("class"))
    if cls_name:
        known = classes.get(class_key(cls_name))
        if known is not None:
            cls_name = known.name
            if grade is not None and grade != known.grade:
                errors.append(
                    row_error(
                        line,
                        "grade",
                        E_CLASS_GRADE,
                        grade=grade,
                        cls=known.name,
                        expected=known.grade,
                    )
                )
            if shift is not None and shift != known.shift:
                errors.append(
                    row_error(
                        line,
                        "shift",
                        E_CLASS_SHIFT,
                        shift=shift,
                        cls=known.name,
                        expected=known.shift,
                    )
                )
        else:
            m = re.match(r"^(\d{1,2})\D", cls_name + "_")
            if not re.fullmatch(r"\d{1,2}[^\W\d_]{0,3}\d?", cls_name):
                errors.append(row_error(line, "class", E_CLASS_NAME))
            elif grade is None or shift is None:
                if not any(e.column in ("grade", "shift") for e in errors):
                    errors.append(row_error(line, "class", E_CLASS_UNKNOWN, cls=cls_name))
            elif m is not None and int(m.group(1)) != grade:
                errors.append(
                    row_error(line, "grade", E_CLASS_NAME_GRADE, grade=grade, cls=cls_name)
                )

    g_name = text("guardian_name")
    g_phone_text = c.get("guardian_phone", "").strip()
    g_phone = ""
    if g_phone_text:
        found = normalize_phone(g_phone_text)
        if found is None:
            errors.append(row_error(line, "guardian_phone", E_PHONE))
        else:
            g_phone = found
    g_email = text("guardian_email")
    if g_email and not EMAIL_RE.match(g_email):
        errors.append(row_error(line, "guardian_email", E_EMAIL))
    if (g_phone_text or g_email) and not g_name:
        errors.append(row_error(line, "guardian_name", E_GUARDIAN_NAME))

    if errors or consent_date is None:
        return None, errors
    return (
        RosterRow(
            line=line,
            ref=ref,
            surname=surname,
            given_name=given,
            patronymic=patronymic,
            birth_date=birth,
            class_name=cls_name,
            grade=grade,
            shift=shift,
            guardian_name=g_name,
            guardian_phone=g_phone,
            guardian_email=g_email.lower(),
            consent_given_by=given_by,
            consent_document=document,
            consent_date=consent_date,
        ),
        [],
    )


def birth_date_ok(birth: dt.date, today: dt.date) -> bool:
    """A school student is 3 to 25 years old (pre-school classes to evening school)."""
    return _years_before(today, 25) <= birth <= _years_before(today, 3)


def _years_before(today: dt.date, years: int) -> dt.date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def check_rows(
    raws: Iterable[RawRow], classes: Mapping[str, ClassInfo], today: dt.date
) -> CheckedRoster:
    """Every row, then what only the whole file shows: duplicates and conflicting new classes."""
    rows: list[RosterRow] = []
    errors: list[RowError] = []
    new_classes: dict[str, ClassInfo] = {}
    new_class_line: dict[str, int] = {}
    refs: dict[str, int] = {}
    people: dict[str, tuple[int, str]] = {}  # name and birth date -> (line, student id)
    for raw in raws:
        row, errs = check_row(raw, classes, today)
        errors.extend(errs)
        if row is None:
            continue
        dup = False
        if row.ref:
            if row.ref in refs:
                errors.append(row_error(row.line, "student_ref", E_DUP_REF, other=refs[row.ref]))
                dup = True
            refs.setdefault(row.ref, row.line)
        # Two rows with different student ids are two people, even with the same name and birth
        # date (twins named alike, namesakes): the school's own export carries them so. Name and
        # birth date identify a student only where a row has no id.
        earlier = people.get(row.person)
        if earlier is not None and not (row.ref and earlier[1]):
            errors.append(row_error(row.line, "surname", E_DUP_PERSON, other=earlier[0]))
            dup = True
        people.setdefault(row.person, (row.line, row.ref))
        key = class_key(row.class_name)
        if key not in classes and row.grade is not None and row.shift is not None:
            info = ClassInfo(row.class_name, row.grade, row.shift)
            seen = new_classes.get(key)
            if seen is None:
                new_classes[key] = info
                new_class_line[key] = row.line
            elif (seen.grade, seen.shift) != (info.grade, info.shift):
                errors.append(
                    row_error(
                        row.line,
                        "class",
                        E_CLASS_CONFLICT,
                        cls=row.class_name,
                        other=new_class_line[key],
                    )
                )
                dup = True
            else:
                row = _with_class_name(row, seen.name)
        if not dup:
            rows.append(row)
    errors.sort(key=lambda e: (e.line, COLUMNS.index(e.column) if e.column in COLUMNS else -1))
    return CheckedRoster(rows=rows, errors=errors, new_classes=new_classes)


def _with_class_name(row: RosterRow, name: str) -> RosterRow:
    d = row.to_json()
    d["class_name"] = name
    return RosterRow.from_json(d)


# --------------------------------------------------------------------------------- template

TEMPLATE_ROWS = [
    {
        "student_ref": "",
        "surname": "Ахметов",
        "given_name": "Айдос",
        "patronymic": "Серікұлы",
        "birth_date": "2016-04-12",
        "class": "3A",
        "grade": "3",
        "shift": "1",
        "guardian_name": "Ахметова Гүлнар",
        "guardian_phone": "+77010000000",
        "guardian_email": "",
        "consent_given_by": "Ахметова Гүлнар (анасы)",
        "consent_document": "Өтініш №12",
        "consent_date": "2025-09-01",
    }
]


def to_csv(rows: Iterable[Mapping[str, str]]) -> bytes:
    """Rows in the import's own format (what ``parse_file`` reads back the same)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\r\n")
    w.writeheader()
    w.writerows({k: safe_cell(v) for k, v in r.items()} for r in rows)
    # A BOM, so that Excel opens the Cyrillic text as UTF-8.
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def template_csv() -> bytes:
    return to_csv(TEMPLATE_ROWS)


def template_xlsx() -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "roster"
    ws.append(list(COLUMNS))
    for row in TEMPLATE_ROWS:
        ws.append([row[c] for c in COLUMNS])
    buf = io.BytesIO()
    neutralise_workbook(wb).save(buf)
    return buf.getvalue()


def rows_digest(rows: Iterable[RosterRow]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(repr(sorted(r.to_json().items())).encode())
    return h.hexdigest()


def search_key(text: str) -> str:
    """``text`` as searches compare it: NFC, case-folded (Unicode, not ASCII-only), one space
    between words. Kazakh letters fold like any other: "ӘЛИЯ" -> "әлия"."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())
