"""Seed 000's district table (East Kazakhstan region, 2020), as the schools reported it: the
demo's aggregate baseline and the import format's example. Row 15 (Ridder) cannot be true."""

from __future__ import annotations

PERIOD = "2020"
HEADER = (
    "district,school_id,schools,students,with_computer,without_computer,"
    "needy_students,needy_families,uncovered_students,uncovered_families"
)
# district, schools, students, with, without, needy students, needy families, uncovered
# students, uncovered families
DISTRICTS: tuple[tuple[str, int, int, int, int, int, int, int, int], ...] = (
    ("Абай", 12, 2483, 1717, 766, 163, 47, 22, 5),
    ("Аягөз", 39, 13164, 10888, 2276, 591, 169, 77, 19),
    ("Бесқарағай", 21, 2966, 1743, 1223, 177, 51, 24, 6),
    ("Бородулиха", 32, 5046, 3783, 1263, 106, 31, 14, 4),
    ("Глубокое", 28, 6990, 5821, 1169, 144, 41, 19, 5),
    ("Жарма", 38, 6994, 5552, 1442, 196, 56, 25, 6),
    ("Зайсан", 27, 6487, 4882, 1605, 155, 44, 21, 6),
    ("Алтай", 40, 7479, 6172, 1307, 59, 17, 8, 2),
    ("Катонқарағай", 36, 3256, 403, 2853, 264, 75, 35, 8),
    ("Көкпекті", 37, 4097, 2967, 1130, 121, 36, 16, 4),
    ("Курчатов", 4, 1686, 1278, 408, 13, 5, 0, 0),
    ("Күршім", 41, 4015, 2838, 1177, 328, 94, 43, 10),
    ("Тарбағатай", 49, 8033, 4870, 3163, 354, 101, 46, 11),
    ("Семей", 66, 47674, 42173, 5501, 94, 27, 16, 4),
    ("Риддер", 15, 6993, 7051, -58, 9, 4, 0, 0),
    ("Өскемен", 48, 40262, 34838, 5424, 211, 59, 28, 7),
    ("Ұлан", 31, 4835, 3699, 1136, 177, 51, 24, 6),
    ("Үржар", 51, 12328, 9344, 2984, 771, 221, 100, 26),
    ("Шемонаиха", 23, 5160, 4067, 1093, 88, 25, 12, 3),
    ("облыстық мектептер", 9, 3264, 2596, 668, 0, 0, 0, 0),
)


def seed_csv() -> str:
    """The table in the import format (district summary rows: no school id)."""
    lines = [HEADER]
    for d, *nums in DISTRICTS:
        lines.append(",".join([d, "", *(str(n) for n in nums)]))
    return "\n".join(lines) + "\n"
