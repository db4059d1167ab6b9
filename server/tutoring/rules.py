"""Reading a project's spreadsheets: pure (no database, no clock).

Three tables, each a CSV (UTF-8, or KZ-1048 / Windows-1251 as the roster reader decides:
Windows-1251 only for a file without Kazakh letters) or an XLSX (its first sheet), read through
the roster's bounded reader (size, rows, columns, zip bombs):

- directions: ``direction``, ``hours`` and an optional ``subject`` (one row per subject; the
  rows of one direction agree on its hours);
- assignments: ``volunteer`` (the project's code for them), ``direction``, optional ``subject``
  and ``name``;
- tests: ``student`` (a roster student's ref in a live project, a pseudonymous code in a
  finished one), ``direction``, ``test`` (pre or post), ``score`` (0-100, decimal comma or
  point), optional ``district``, ``grade`` and ``low_income`` (yes/no).

Every problem is an ``ImportError_`` (file, line, column, reason); one problem refuses the whole
import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from server.roster.rules import (
    E_EMPTY,
    E_NOT_TABULAR,
    E_OLD_XLS,
    E_TOO_LARGE,
    MAX_BYTES,
    ParsedRoster,
    _read_csv,
    _read_xlsx,
)
from server.spreadsheets import restore_cell

from .calc import POST, PRE

MAX_TEXT = 200
CODE_RE = re.compile(r"^[\w.:/-]{1,64}$")


@dataclass(frozen=True, slots=True, order=True)
class ImportProblem:
    """One problem: ``line`` 1 is the header, 0 the file as a whole."""

    file: str
    line: int
    column: str
    reason: str

    def as_tuple(self) -> tuple[str, int, str, str]:
        return (self.file, self.line, self.column, self.reason)


@dataclass(frozen=True, slots=True)
class DirectionRow:
    name: str
    hours: int
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AssignmentRow:
    volunteer: str
    direction: str
    subject: str | None
    name: str


@dataclass(frozen=True, slots=True)
class TestRow:
    __test__ = False  # not a pytest class

    student: str
    direction: str
    phase: str
    score_centi: int
    district: str
    grade: int | None
    low_income: bool


@dataclass(slots=True)
class ProjectFiles:
    directions: list[DirectionRow] = field(default_factory=list)
    assignments: list[AssignmentRow] = field(default_factory=list)
    tests: list[TestRow] = field(default_factory=list)
    # volunteer code -> their own training test (before, after), hundredths of a percent
    training: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    problems: list[ImportProblem] = field(default_factory=list)


TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # table -> (required columns, optional columns)
    "directions": (("direction", "hours"), ("subject",)),
    "assignments": (
        ("volunteer", "direction"),
        ("subject", "name", "training_pre", "training_post"),
    ),
    "tests": (("student", "direction", "test", "score"), ("district", "grade", "low_income")),
}
ALIASES = {
    "направление": "direction",
    "бағыт": "direction",
    "часы": "hours",
    "сағат": "hours",
    "предмет": "subject",
    "пән": "subject",
    "волонтер": "volunteer",
    "волонтёр": "volunteer",
    "имя": "name",
    "аты-жөні": "name",
    "ученик": "student",
    "оқушы": "student",
    "тест": "test",
    "балл": "score",
    "ұпай": "score",
    "район": "district",
    "аудан": "district",
    "класс": "grade",
    "сынып": "grade",
    "малообеспеченный": "low_income",
    "аз_қамтылған": "low_income",
}
PHASES = {
    "pre": PRE,
    "before": PRE,
    "до": PRE,
    "входной": PRE,
    "бастапқы": PRE,
    "post": POST,
    "after": POST,
    "после": POST,
    "итоговый": POST,
    "қорытынды": POST,
}
YES = {"yes", "y", "1", "true", "да", "иә", "ия"}
NO = {"no", "n", "0", "false", "нет", "жоқ", ""}


def key(text: str) -> str:
    """A name as compared: case and spaces folded."""
    return " ".join(text.split()).casefold()


def _header(h: str) -> str:
    name = re.sub(r"[\s_]+", "_", h.strip().lstrip("\ufeff").strip().lower())
    return ALIASES.get(name, name)


def parse_score(text: str) -> int | None:
    """A score 0-100 with a decimal comma or point (at most two decimals) in hundredths, or
    None when it is not one."""
    t = text.strip().replace(" ", "").replace("\u00a0", "").rstrip("%")
    if t.count(",") + t.count(".") > 1:
        return None
    t = t.replace(",", ".")
    if not re.fullmatch(r"\d{1,3}(?:\.\d{1,2})?", t):
        return None
    try:
        d = Decimal(t)
    except InvalidOperation:
        return None
    if d < 0 or d > 100:
        return None
    return int(d * 100)


def read_table(
    table: str, filename: str, data: bytes
) -> tuple[list[tuple[int, dict[str, str]]], list[ImportProblem]]:
    """The file's rows as (line, cells by column) or its problems."""
    problems: list[ImportProblem] = []

    def refuse(reason: str, line: int = 0, column: str = "") -> None:
        problems.append(ImportProblem(filename, line, column, reason))

    out = ParsedRoster(name=filename, sha256="", kind="", encoding="")
    lower = filename.lower()
    raw: list[tuple[int, list[str]]] | None
    if len(data) > MAX_BYTES:
        refuse(E_TOO_LARGE)
        return [], problems
    if data.startswith(b"\xd0\xcf\x11\xe0") or lower.endswith(".xls"):
        refuse(E_OLD_XLS)
        return [], problems
    if data.startswith(b"PK\x03\x04"):
        raw = _read_xlsx(data, out)
    elif lower.endswith((".csv", ".txt")):
        raw = _read_csv(data, out)
    else:
        refuse(E_NOT_TABULAR)
        return [], problems
    for e in out.errors:
        refuse(e.text, e.line, e.column)
    if raw is None or problems:
        if not problems:
            refuse(E_NOT_TABULAR)
        return [], problems
    raw = [(n, cells) for n, cells in raw if any(c.strip() for c in cells)]
    if not raw:
        refuse(E_EMPTY)
        return [], problems
    required, optional = TABLES[table]
    header_line, header = raw[0]
    names = [_header(h) for h in header]
    while names and not names[-1]:
        names.pop()
    seen: set[str] = set()
    for name in names:
        if name not in required and name not in optional:
            refuse("unknown column", header_line, name or "?")
        elif name in seen:
            refuse("the column appears twice", header_line, name)
        seen.add(name)
    for name in required:
        if name not in seen:
            refuse("the column is missing", header_line, name)
    if problems:
        return [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    for line, cells in raw[1:]:
        if any(c.strip() for c in cells[len(names) :]):
            refuse("cells beyond the last column", line)
        row = {
            n: (restore_cell(cells[i].strip()) if i < len(cells) else "")
            for i, n in enumerate(names)
        }
        for n, v in row.items():
            if len(v) > MAX_TEXT:
                refuse(f"longer than {MAX_TEXT} characters", line, n)
        rows.append((line, row))
    if not rows:
        refuse("no rows under the header")
    return rows, problems


def check_files(
    files: Mapping[str, tuple[str, bytes]],
    *,
    roster_refs: frozenset[str] | None = None,
) -> ProjectFiles:
    """Reads and checks the three tables (``files``: table -> (file name, bytes); assignments
    and tests may be absent). ``roster_refs``: in a live project, the refs of roster students
    with a tutoring consent (a test's student must be one of them); None in a finished project
    (pseudonymous codes)."""
    out = ProjectFiles()
    if "directions" not in files:
        out.problems.append(ImportProblem("", 0, "", "the directions file is required"))
        return out
    tables: dict[str, tuple[str, list[tuple[int, dict[str, str]]]]] = {}
    for table in ("directions", "assignments", "tests"):
        if table in files:
            name, data = files[table]
            rows, problems = read_table(table, name, data)
            out.problems.extend(problems)
            tables[table] = (name, rows)
    if out.problems:
        return out
    _check_directions(*tables["directions"], out)
    if out.problems:
        return out  # the other files cannot be checked against broken directions
    known = {key(d.name): d for d in out.directions}
    if "assignments" in tables:
        _check_assignments(*tables["assignments"], known, out)
    if "tests" in tables:
        _check_tests(*tables["tests"], known, roster_refs, out)
    return out


def _check_directions(
    fname: str, rows: Sequence[tuple[int, dict[str, str]]], out: ProjectFiles
) -> None:
    hours_of: dict[str, tuple[int, int]] = {}  # key -> (hours, first line)
    names: dict[str, str] = {}
    subjects: dict[str, list[str]] = {}
    for line, row in rows:
        name = " ".join(row["direction"].split())
        if not name:
            out.problems.append(ImportProblem(fname, line, "direction", "empty"))
            continue
        hours_text = row["hours"].strip()
        if not re.fullmatch(r"\d{1,4}", hours_text) or not 0 < int(hours_text) <= 1000:
            out.problems.append(
                ImportProblem(fname, line, "hours", "hours must be a whole number 1-1000")
            )
            continue
        hours = int(hours_text)
        k = key(name)
        if k in hours_of and hours_of[k][0] != hours:
            out.problems.append(
                ImportProblem(
                    fname,
                    line,
                    "hours",
                    f"the direction has {hours_of[k][0]} hours on line {hours_of[k][1]}",
                )
            )
            continue
        hours_of.setdefault(k, (hours, line))
        names.setdefault(k, name)
        subject = " ".join(row.get("subject", "").split())
        subs = subjects.setdefault(k, [])
        if subject:
            if key(subject) in {key(s) for s in subs}:
                out.problems.append(
                    ImportProblem(fname, line, "subject", "the subject appears twice")
                )
                continue
            subs.append(subject)
        elif k in subjects and line != hours_of[k][1]:
            out.problems.append(
                ImportProblem(fname, line, "direction", "the direction appears twice")
            )
    out.directions = [DirectionRow(names[k], hours_of[k][0], tuple(subjects[k])) for k in names]


def _direction(
    fname: str,
    line: int,
    row: Mapping[str, str],
    known: Mapping[str, DirectionRow],
    out: ProjectFiles,
) -> DirectionRow | None:
    d = known.get(key(row["direction"]))
    if d is None:
        out.problems.append(ImportProblem(fname, line, "direction", "unknown direction"))
    return d


def _check_assignments(
    fname: str,
    rows: Sequence[tuple[int, dict[str, str]]],
    known: Mapping[str, DirectionRow],
    out: ProjectFiles,
) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    trained: dict[str, tuple[int, int | None, int | None]] = {}  # code -> (line, pre, post)
    for line, row in rows:
        before = len(out.problems)
        code = row["volunteer"].strip()
        if not CODE_RE.fullmatch(code):
            out.problems.append(
                ImportProblem(fname, line, "volunteer", "a code of letters, digits, . _ : / -")
            )
            continue
        d = _direction(fname, line, row, known, out)
        if d is None:
            continue
        subject = " ".join(row.get("subject", "").split()) or None
        if subject is not None and key(subject) not in {key(s) for s in d.subjects}:
            out.problems.append(
                ImportProblem(fname, line, "subject", "the direction has no such subject")
            )
            continue
        training: list[int | None] = []
        for column in ("training_pre", "training_post"):
            text = row.get(column, "").strip()
            value = parse_score(text) if text else None
            if text and value is None:
                out.problems.append(
                    ImportProblem(fname, line, column, "a score from 0 to 100 (e.g. 75 or 75,5)")
                )
            training.append(value)
        if len(out.problems) > before:
            continue
        if any(t is not None for t in training):
            prev = trained.get(code)
            if prev is not None and (prev[1], prev[2]) != (training[0], training[1]):
                out.problems.append(
                    ImportProblem(
                        fname, line, "training_pre", f"other training scores on line {prev[0]}"
                    )
                )
                continue
            trained[code] = (line, training[0], training[1])
        k = (code, key(d.name), key(subject or ""))
        if k in seen:
            out.problems.append(
                ImportProblem(fname, line, "volunteer", f"the same assignment is on line {seen[k]}")
            )
            continue
        seen[k] = line
        out.assignments.append(
            AssignmentRow(
                code,
                d.name,
                subject,
                " ".join(row.get("name", "").split()),
            )
        )
    out.training = {code: (pre, post) for code, (_line, pre, post) in trained.items()}


def _check_tests(
    fname: str,
    rows: Sequence[tuple[int, dict[str, str]]],
    known: Mapping[str, DirectionRow],
    roster_refs: frozenset[str] | None,
    out: ProjectFiles,
) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    for line, row in rows:
        before = len(out.problems)
        student = row["student"].strip()
        if not CODE_RE.fullmatch(student):
            out.problems.append(
                ImportProblem(fname, line, "student", "a code of letters, digits, . _ : / -")
            )
        elif roster_refs is not None and student not in roster_refs:
            out.problems.append(
                ImportProblem(
                    fname,
                    line,
                    "student",
                    "not a roster student with the parent's tutoring consent",
                )
            )
        d = _direction(fname, line, row, known, out)
        phase = PHASES.get(key(row["test"]))
        if phase is None:
            out.problems.append(ImportProblem(fname, line, "test", "pre or post"))
        score = parse_score(row["score"])
        if score is None:
            out.problems.append(
                ImportProblem(fname, line, "score", "a score from 0 to 100 (e.g. 75 or 75,5)")
            )
        grade_text = row.get("grade", "").strip()
        grade: int | None = None
        if grade_text:
            if re.fullmatch(r"\d{1,2}", grade_text) and 1 <= int(grade_text) <= 12:
                grade = int(grade_text)
            else:
                out.problems.append(ImportProblem(fname, line, "grade", "a grade 1-12"))
        low = key(row.get("low_income", ""))
        if low not in YES and low not in NO:
            out.problems.append(ImportProblem(fname, line, "low_income", "yes or no"))
        if len(out.problems) > before or d is None or phase is None or score is None:
            continue
        k = (student, key(d.name), phase)
        if k in seen:
            out.problems.append(
                ImportProblem(
                    fname,
                    line,
                    "student",
                    f"the same student, direction and test are on line {seen[k]}",
                )
            )
            continue
        seen[k] = line
        out.tests.append(
            TestRow(
                student,
                d.name,
                phase,
                score,
                " ".join(row.get("district", "").split()),
                grade,
                low in YES,
            )
        )
