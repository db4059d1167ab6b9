"""Whole-school scenarios: who taps where and when during one school day.

Pure generation: a roster and a seed in, a sorted list of timed actions out. The demo and the
benchmarks feed these actions to real readers.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from edge.roster import RosterFile

CATEGORIES = ("targeted_assistance", "below_subsistence", "orphan", "large_family", "emergency")


@dataclass(frozen=True, order=True)
class Action:
    at: dt.time
    terminal: str = field(compare=False)
    credential: str | None = field(compare=False, default=None)
    manual_student: str | None = field(compare=False, default=None)
    staff_credential: str | None = field(compare=False, default=None)
    pin: str | None = field(compare=False, default=None)
    note: str = field(compare=False, default="")


def make_roster(
    students: int, *, today: dt.date, seed: int = 1, school: str = "DEMO", lost_cards: int = 3
) -> RosterFile:
    """A school of ``students``; the cards of ``lost_cards`` of them are blocked as lost."""
    rng = random.Random(seed)
    valid = {
        "from": (today - dt.timedelta(days=60)).isoformat(),
        "to": (today + dt.timedelta(days=200)).isoformat(),
    }
    classes = [f"{g}{letter}" for g in range(1, 12) for letter in "AB"]
    kids = []
    for i in range(students):
        cls = classes[i % len(classes)]
        grade = int(cls[:-1])
        shift = 1 if grade <= 4 or grade >= 9 else 2
        cats = []
        if grade > 4 and rng.random() < 0.15:
            cats.append(
                {"code": rng.choice(CATEGORIES), **valid, "doc": f"order-{rng.randrange(1, 400)}"}
            )
        kids.append(
            {
                "id": f"st{i:04d}",
                "grade": grade,
                "class": cls,
                "shift": shift,
                "cards": [f"EM:{3_000_000_000 + i:010d}"],
                "consent": {"data": rng.random() > 0.01, "biometric": False},
                "categories": cats,
            }
        )
    staff = [
        {
            "id": f"teacher-{c}",
            "roles": ["class_teacher"],
            "classes": [c],
            "cards": [f"EM:{1_000_000_000 + n:010d}"],
            "pin": f"{1000 + n}",
        }
        for n, c in enumerate(classes)
    ]
    staff.append(
        {
            "id": "deputy-1",
            "roles": ["deputy_director_on_duty"],
            "classes": [],
            "cards": ["EM:1000009999"],
            "pin": "9999",
        }
    )
    lost = [
        f"EM:{3_000_000_000 + i:010d}"
        for i in rng.sample(range(students), k=min(lost_cards, students))
    ]
    return RosterFile.model_validate(
        {
            "school": school,
            "students": kids,
            "staff": staff,
            "blocked_cards": [{"card": c, "reason": "lost"} for c in lost],
        }
    )


def school_day(roster: RosterFile, *, seed: int = 2) -> list[Action]:
    """Morning rush, late students, library, breakfast and lunch rushes, a lost card, exits."""
    rng = random.Random(seed)
    acts: list[Action] = []

    def at(h: int, m: int, spread_min: float) -> dt.time:
        base = dt.datetime(2000, 1, 1, h, m) + dt.timedelta(minutes=rng.uniform(0, spread_min))
        return base.time().replace(microsecond=0)

    teachers = {s.classes[0]: s for s in roster.staff if s.classes}
    blocked = {b if isinstance(b, str) else b.card for b in roster.blocked_cards}
    lost = {s.id for s in roster.students if set(s.cards) & blocked}
    for s in roster.students:
        card = s.cards[0]
        gate = f"gate-{rng.randrange(1, 3)}-in"
        shift1 = s.shift == 1
        if s.id in lost:
            t = at(7, 35, 20) if shift1 else at(12, 40, 20)
            acts.append(Action(t, gate, credential=card, note="lost card"))
            teacher = teachers[s.class_]
            later = (dt.datetime.combine(dt.date(2000, 1, 1), t) + dt.timedelta(minutes=2)).time()
            acts.append(
                Action(
                    later,
                    gate,
                    manual_student=s.id,
                    staff_credential=teacher.cards[0],
                    pin=teacher.pin,
                    note="class teacher lets the student in",
                )
            )
        elif rng.random() < 0.04:
            acts.append(Action(at(6, 30, 20), gate, credential=card, note="too early"))
            acts.append(
                Action(
                    at(8, 10, 40) if shift1 else at(13, 40, 30), gate, credential=card, note="late"
                )
            )
        else:
            acts.append(Action(at(7, 30, 30) if shift1 else at(12, 45, 30), gate, credential=card))
        canteen = f"canteen-{rng.randrange(1, 3)}"
        if shift1 and s.grade <= 4:
            acts.append(Action(at(9, 30, 50), canteen, credential=card))
            if rng.random() < 0.05:
                acts.append(Action(at(10, 21, 5), canteen, credential=card, note="second helping"))
        if rng.random() < 0.6:
            acts.append(Action(at(12, 0, 85), canteen, credential=card))
        if rng.random() < 0.2:
            acts.append(
                Action(at(10, 0, 120) if shift1 else at(14, 0, 120), "library-1", credential=card)
            )
        out_gate = f"gate-{rng.randrange(1, 3)}-out"
        acts.append(Action(at(13, 0, 60) if shift1 else at(18, 0, 30), out_gate, credential=card))
    for _ in range(3):
        acts.append(
            Action(
                at(8, 0, 60),
                "gate-1-in",
                credential="EM:4000000001",
                note="a card from another school",
            )
        )
    return sorted(acts)
