"""The demo's tutoring project: seed 001's "Birgemiz: Bilim", rebuilt as the spreadsheets a
project keeps and loaded through the real import, so that ``qaqpa server tutoring report
--project birgemiz-bilim`` prints seed 001's table from the module's own records.

The records are invented (pseudonymous student codes, no names); their counts and means are the
seed's: per direction hours, volunteers, students and the mean scores before and after.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from .models import ProjectStatus
from .service import ImportResult, get_project, import_project

PROJECT = "birgemiz-bilim"
NAME = "Birgemiz: Bilim"
DISTRICTS = (
    "Ақжайық",
    "Бәйтерек",
    "Бөкей ордасы",
    "Бөрлі",
    "Жаңақала",
    "Жәнібек",
    "Қаратөбе",
    "Казталов",
    "Сырым",
    "Тасқала",
    "Теректі",
    "Шыңғырлау",
)
UNT_SUBJECTS = (
    "Математика",
    "Математикалық сауаттылық",
    "Оқу сауаттылығы",
    "Қазақстан тарихы",
    "Дүниежүзі тарихы",
    "Физика",
    "Химия",
    "Биология",
    "География",
    "Ағылшын тілі",
    "Информатика",
    "Қазақ әдебиеті",
    "Құқық негіздері",
)
OLYMPIAD_SUBJECTS = (
    "Математика",
    "Физика",
    "Химия",
    "Биология",
    "Информатика",
    "География",
    "Тарих",
    "Ағылшын тілі",
    "Ғылыми жоба",
)


@dataclass(frozen=True)
class SeedDirection:
    name: str
    hours: int
    volunteers: int
    students: int
    before: int  # mean score of the paired students, percent
    after: int
    subjects: Sequence[str] = ()


# Seed 001's table (DOMAIN.md section 3).
SEED_TABLE = (
    SeedDirection("Ағылшын тілі", 48, 21, 378, 46, 75),
    SeedDirection("Компьютерлік сауаттылық", 8, 20, 258, 68, 93),
    SeedDirection("ҰБТ-ға дайындық", 48, 25, 469, 70, 85, UNT_SUBJECTS),
    SeedDirection("Құқықтық сауаттылық", 8, 27, 385, 66, 90),
    SeedDirection(
        "Олимпиадалар мен ғылыми жобаларға дайындық", 48, 17, 128, 56, 81, OLYMPIAD_SUBJECTS
    ),
)
LOW_INCOME = 319  # of 1,618 students


def _fix_sum(values: list[int], target: int, rng: random.Random, lo: int, hi: int) -> None:
    """Nudges values by one point (within [lo, hi]) until they sum to ``target``."""
    diff = target - sum(values)
    while diff:
        i = rng.randrange(len(values))
        step = 1 if diff > 0 else -1
        if lo <= values[i] + step <= hi:
            values[i] += step
            diff -= step


def _csv(rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def project_files(seed: int = 1) -> dict[str, tuple[str, bytes]]:
    """The three spreadsheets of the seed project (CSV)."""
    rng = random.Random(seed)
    directions: list[list[object]] = [["direction", "hours", "subject"]]
    assignments: list[list[object]] = [["volunteer", "direction", "subject"]]
    tests: list[list[object]] = [
        ["student", "direction", "test", "score", "district", "grade", "low_income"]
    ]
    total = sum(d.students for d in SEED_TABLE)
    low = set(rng.sample(range(total), LOW_INCOME))
    v = s = 0
    for d in SEED_TABLE:
        for subject in d.subjects or ("",):
            directions.append([d.name, d.hours, subject])
        for i in range(d.volunteers):
            v += 1
            subject = d.subjects[i % len(d.subjects)] if d.subjects else ""
            assignments.append([f"V{v:03d}", d.name, subject])
        # about 2 % took only the pre-test and 1 % only the post-test
        only_pre = d.students // 50
        only_post = d.students // 100
        paired = d.students - only_pre - only_post
        pre = [min(100, max(5, round(rng.gauss(d.before, 12)))) for _ in range(paired)]
        _fix_sum(pre, d.before * paired, rng, 5, 100)
        post = [min(100, max(0, p + round(rng.gauss(d.after - d.before, 8)))) for p in pre]
        _fix_sum(post, d.after * paired, rng, 0, 100)
        for i in range(d.students):
            code = f"BB-{s:04d}"
            extra = [DISTRICTS[s % len(DISTRICTS)], 8 + s % 4, "yes" if s in low else "no"]
            if i < paired:
                tests.append([code, d.name, "pre", pre[i], *extra])
                tests.append([code, d.name, "post", post[i], *extra])
            elif i < paired + only_pre:
                tests.append(
                    [code, d.name, "pre", min(100, max(0, round(rng.gauss(d.before, 12)))), *extra]
                )
            else:
                tests.append(
                    [code, d.name, "post", min(100, max(0, round(rng.gauss(d.after, 10)))), *extra]
                )
            s += 1
    return {
        "directions": ("directions.csv", _csv(directions)),
        "assignments": ("assignments.csv", _csv(assignments)),
        "tests": ("tests.csv", _csv(tests)),
    }


PLAN = {
    "meetings": 36,
    "people_reached": 698,
    "survey_answers": 2600,
    "volunteers_selected": 110,
    "students_taught": 1500,
    "low_income_students": 300,
    "awards": 35,
}
FACTS = {
    "meetings": 36,
    "people_reached": 698,
    "survey_answers": 2641,
    "applicants": 203,
    "volunteers_selected": 110,
    "students_taught": 1618,
    "low_income_students": LOW_INCOME,
    "exam_takers": 227,
    "exam_grants": 98,
    "awards": 35,
}


def seed_demo(db: Session, *, region: str | None = None) -> ImportResult | None:
    """Loads the seed project once (None when it is there already). Caller commits."""
    if get_project(db, PROJECT) is not None:
        return None
    result = import_project(
        db,
        None,
        PROJECT,
        project_files(),
        name=NAME,
        status=ProjectStatus.FINISHED,
        region_id=region,
    )
    if isinstance(result, list):  # the demo's own files: a problem is a bug here
        raise RuntimeError(f"the demo tutoring files were refused: {result[:3]}")
    project = get_project(db, PROJECT)
    assert project is not None
    project.plan = dict(PLAN)
    project.facts = dict(FACTS)
    return result
