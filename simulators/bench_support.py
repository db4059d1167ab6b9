"""What the benchmarks share: percentiles, peak memory, and a school's snapshot of a given size."""

from __future__ import annotations

import resource

from protocol.messages import (
    CardBinding,
    ConsentKind,
    ConsentRecord,
    OwnerKind,
    PolicyDoc,
    StudentRecord,
    SyncSnapshot,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_policy() -> PolicyDoc:
    return PolicyDoc.model_validate(
        {
            "timezone": "Asia/Almaty",
            "free_meal_grades": [1, 2, 3, 4],
            "free_meal_categories": ["large_family"],
            "anti_passback": "soft",
            "shift": [{"number": 1, "entry_from": "00:00", "entry_to": "23:59"}],
            "meal_period": [{"name": "lunch", "shifts": [1], "from": "00:00", "to": "23:59"}],
        },
        strict=False,
    )


def bench_snapshot(students: int, cards: int) -> SyncSnapshot:
    consent = ConsentRecord(
        kind=ConsentKind.DATA, granted=True, given_by="parent", at_ms=0, document="b"
    )
    studs = [
        StudentRecord(
            id=f"s{i}", grade=1 + i % 11, class_name=f"{1 + i % 11}A", shift=1, consents=[consent]
        )
        for i in range(students)
    ]
    binds = [
        CardBinding(
            credential=f"EM:{i:010d}",
            owner_kind=OwnerKind.STUDENT,
            owner_id=f"s{i % students}",
            blocked_reason="lost" if i >= students and i % 7 == 0 else None,
        )
        for i in range(cards)
    ]
    return SyncSnapshot(
        school="S1", version=1, policy=bench_policy(), students=studs, staff=[], cards=binds
    )
