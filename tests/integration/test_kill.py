"""Record before act, gap-free sequence, no meal twice: proven by SIGKILL at every pipeline step.

Each round starts the real daemon (``qaqpa run``) with a failpoint that SIGKILLs it at one step
of read -> identify -> decide -> commit -> actuate, taps cards until it dies, then restarts it
and lets the same students tap again. Afterwards we count what survived.
"""

from __future__ import annotations

import collections
import random
import signal
import time
from pathlib import Path

import pytest

from edge.faults import POINTS
from protocol.messages import EntryEvent, LibraryVisitEvent, ManualPassEvent, MealServedEvent
from tests.support.edge_harness import School

GRANT_KINDS = (EntryEvent, MealServedEvent, LibraryVisitEvent, ManualPassEvent)


def check_invariants(school: School) -> dict[str, int]:
    journal = school.journal()
    seqs = [e.seq for e in journal]
    assert seqs == list(range(1, len(seqs) + 1)), "the journal's sequence has a gap"
    by_seq = {e.seq: e for e in journal}
    for terminal, seq, verdict in school.actuation_lines():
        assert seq in by_seq, f"{terminal} actuated seq {seq} that was never committed"
        event = by_seq[seq]
        assert event.terminal == terminal
        assert isinstance(event, GRANT_KINDS) == (verdict == "open"), (seq, verdict, event)
    meals = collections.Counter(
        (e.student_id, e.local_date, e.period) for e in journal if isinstance(e, MealServedEvent)
    )
    assert all(n == 1 for n in meals.values()), f"a meal was served twice: {meals.most_common(3)}"
    ledger = school.ledger()
    assert len(ledger) == len(meals), "meal ledger and meal events disagree"
    return {
        "events": len(journal),
        "meals": len(meals),
        "actuations": len(school.actuation_lines()),
    }


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_step(tmp_path: Path, point: str) -> None:
    school = School(tmp_path)
    school.write()
    taps = [("canteen-1", school.card(i)) for i in range(1, 8, 2)]  # grade 2: free meal
    taps += [("gate-1", school.card(2)), ("lib-1", school.card(4))]
    crashed_at: int | None = None
    daemon = school.start(crash_at=f"{point}:3")
    for n, (terminal, card) in enumerate(taps):
        if not daemon.tap_and_wait(terminal, card):
            crashed_at = n
            break
    daemon.kill()
    assert crashed_at is not None, f"the failpoint {point} never fired"
    assert daemon.proc.returncode == -signal.SIGKILL
    committed_before = len(school.journal())

    # Restart: the student whose tap was cut taps again, then everyone taps once more.
    daemon = school.start()
    for terminal, card in taps[crashed_at:] + taps:
        assert daemon.tap_and_wait(terminal, card)
    assert daemon.stop() == 0
    counts = check_invariants(school)

    meal_events = [e for e in school.journal() if isinstance(e, MealServedEvent)]
    assert len(meal_events) == 4, "each of the four eligible students eats exactly once"
    if point in ("after_commit", "after_actuate"):
        # the cut tap was committed before the kill: it survives
        assert committed_before >= 3
    else:
        # killed before the commit: nothing of the cut tap was journaled
        assert committed_before == 2
    assert counts["actuations"] == counts["events"] - (1 if point == "after_commit" else 0)


def test_random_kills_during_a_rush(tmp_path: Path) -> None:
    """SIGKILL at random moments while two terminals are busy; then count."""
    school = School(tmp_path, students=60)
    school.write()
    rng = random.Random(7)
    for _round in range(5):
        daemon = school.start()
        # the rush begins once the daemon decides: a slow machine must not kill it before that
        assert daemon.tap_and_wait("gate-1", school.card(rng.randrange(60)))
        deadline = time.monotonic() + rng.uniform(0.8, 2.0)
        i = 0
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            daemon.tap("canteen-1", school.card(rng.randrange(60)))
            daemon.tap("canteen-2", school.card(rng.randrange(60)))
            daemon.tap("gate-1", school.card(rng.randrange(60)))
            i += 1
            time.sleep(0.005)
        daemon.kill()
        check_invariants(school)
    counts = check_invariants(school)
    assert counts["events"] > 0
