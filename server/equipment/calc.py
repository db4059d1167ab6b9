"""Coverage: validating aggregate rows and summing them by region, district and school. Pure.

The columns are those of seed 000's district table: schools, students, students with a computer,
without one, of those from low-income or large families (students, families), and of those still
uncovered (students, families). A row that cannot be true (more students with a computer than
students, a negative count, a part larger than its whole) is flagged with its reasons and never
summed: the seed's own table has one (Ridder: 6,993 students, 7,051 with a computer, -58 without).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

N_ = str

COLUMNS = (
    "schools",
    "students",
    "with_computer",
    "without_computer",
    "needy_students",
    "needy_families",
    "uncovered_students",
    "uncovered_families",
)
COLUMN_LABELS = {
    "schools": N_("Schools"),
    "students": N_("Students"),
    "with_computer": N_("With a computer"),
    "without_computer": N_("Without a computer"),
    "needy_students": N_("Low-income and large families: students"),
    "needy_families": N_("Low-income and large families: families"),
    "uncovered_students": N_("Still uncovered: students"),
    "uncovered_families": N_("Still uncovered: families"),
}
# Limits of a single row (a region's whole table is far below): bounded input.
MAX_COUNT = 10_000_000


@dataclass(frozen=True, slots=True)
class Counts:
    schools: int = 0
    students: int = 0
    with_computer: int = 0
    without_computer: int = 0
    needy_students: int = 0
    needy_families: int = 0
    uncovered_students: int = 0
    uncovered_families: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, c) + getattr(other, c) for c in COLUMNS))

    def as_dict(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass(frozen=True, slots=True)
class Row:
    """One aggregate row as submitted: a school's (``school_id``) or a district's summary."""

    district: str
    counts: Counts
    school_id: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems


def row_problems(c: Counts) -> list[str]:
    """Why a row cannot be true (empty: it can). Each reason names the numbers."""
    out: list[str] = []
    for col in COLUMNS:
        v = getattr(c, col)
        if v < 0:
            out.append(f"{col} is negative ({v})")
        elif v > MAX_COUNT:
            out.append(f"{col} is above {MAX_COUNT} ({v})")
    if c.with_computer > c.students:
        out.append(f"with_computer ({c.with_computer}) exceeds students ({c.students})")
    if c.with_computer + c.without_computer != c.students:
        out.append(
            f"with_computer + without_computer ({c.with_computer} + {c.without_computer}) "
            f"is not students ({c.students})"
        )
    pairs = (
        ("needy_students", "without_computer"),
        ("uncovered_students", "needy_students"),
        ("needy_families", "needy_students"),
        ("uncovered_families", "uncovered_students"),
        ("uncovered_families", "needy_families"),
    )
    for part, whole in pairs:
        p, w = getattr(c, part), getattr(c, whole)
        if p > w:
            out.append(f"{part} ({p}) exceeds {whole} ({w})")
    if c.students > 0 and c.schools < 1:
        out.append(f"students ({c.students}) without a school")
    return out


def validate(row: Row) -> Row:
    return replace(row, problems=tuple(row_problems(row.counts)))


@dataclass(frozen=True, slots=True)
class DistrictLine:
    district: str
    counts: Counts
    schools: tuple[tuple[str, Counts], ...] = ()  # per-school rows (school id, counts)
    flagged: tuple[Row, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    region: str
    period: str
    districts: tuple[DistrictLine, ...]
    total: Counts
    flagged: tuple[Row, ...] = field(default=())
    # What the flagged rows would add: the total "as submitted" (the seed prints this one).
    total_as_submitted: Counts = field(default_factory=Counts)
    per_student_schools: tuple[str, ...] = ()


def coverage(
    region: str,
    period: str,
    rows: Iterable[Row],
    per_student: dict[str, tuple[str, Counts]] | None = None,
    order: Sequence[str] = (),
) -> Report:
    """The report: valid rows summed by district (in ``order``, then by name); per-student
    counts of a school (``school_id -> (district, counts)``) replace that school's aggregate row;
    flagged rows listed, never summed."""
    per_student = per_student or {}
    by_district: dict[str, list[Row]] = {}
    for r in rows:
        if r.school_id is not None and r.school_id in per_student:
            continue  # the school's own records replace its aggregate
        by_district.setdefault(r.district, []).append(validate(r))
    for school_id, (district, counts) in per_student.items():
        by_district.setdefault(district, []).append(Row(district, counts, school_id))
    rank = {name: i for i, name in enumerate(order)}
    names = sorted(by_district, key=lambda n: (rank.get(n, len(rank)), n))
    lines: list[DistrictLine] = []
    total = Counts()
    submitted = Counts()
    flagged: list[Row] = []
    for name in names:
        ok = [r for r in by_district[name] if r.valid]
        bad = [r for r in by_district[name] if not r.valid]
        sub = Counts()
        for r in ok:
            sub = sub + r.counts
        for r in by_district[name]:
            submitted = submitted + r.counts
        total = total + sub
        flagged += bad
        schools = tuple(sorted((r.school_id, r.counts) for r in ok if r.school_id is not None))
        lines.append(DistrictLine(name, sub, schools, tuple(bad)))
    return Report(
        region,
        period,
        tuple(lines),
        total,
        tuple(flagged),
        submitted,
        tuple(sorted(per_student)),
    )


@dataclass(frozen=True, slots=True)
class StudentFact:
    """What per-student records say of one child (for the school's own counts)."""

    student: int
    family: str
    has_computer: bool
    needy: bool
    covered: bool  # a device from this campaign is lent (or on a frozen list and delivered)


def school_counts(facts: Iterable[StudentFact]) -> Counts:
    """A school's row from per-student records: families are counted among the needy only."""
    facts = list(facts)
    without = [f for f in facts if not f.has_computer]
    needy = [f for f in without if f.needy]
    uncovered = [f for f in needy if not f.covered]
    return Counts(
        schools=1,
        students=len(facts),
        with_computer=len(facts) - len(without),
        without_computer=len(without),
        needy_students=len(needy),
        needy_families=len({f.family for f in needy}),
        uncovered_students=len(uncovered),
        uncovered_families=len({f.family for f in uncovered}),
    )


def report_json(report: Report) -> dict[str, object]:
    return {
        "region": report.region,
        "period": report.period,
        "columns": list(COLUMNS),
        "districts": [
            {"district": d.district, **d.counts.as_dict(), "flagged": len(d.flagged)}
            for d in report.districts
        ],
        "total": report.total.as_dict(),
        "flagged": [
            {
                "district": r.district,
                "school_id": r.school_id,
                **r.counts.as_dict(),
                "problems": list(r.problems),
            }
            for r in report.flagged
        ],
        "total_as_submitted": report.total_as_submitted.as_dict(),
        "per_student_schools": list(report.per_student_schools),
    }
