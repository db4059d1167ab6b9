"""The pipeline's one hand-off to the journal thread, killed: a group handed over and not yet
known to be committed is never actuated; whether its transaction reached the disk or not, the
restarted daemon's journal has no gap, every actuation has its committed event, and no meal is
served twice. The open group (taps decided while the previous group commits) dies with the
process unrecorded and unactuated; its students tap again.

The journal thread takes the open group itself as soon as the transaction before it returns,
before the event loop has heard of that one: ``after_handoff`` kills as the thread takes a
group (nothing of it is on disk), ``after_group_commit`` right after a group's COMMIT returned
in the thread (all of it is on disk, the thread may have taken the next one, the loop knows
nothing: none of it is actuated, its events stay journaled and are sent)."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from protocol.messages import MealServedEvent
from tests.integration.test_kill import check_invariants
from tests.support.edge_harness import School


def test_kill_right_after_the_hand_off(tmp_path: Path) -> None:
    school = School(tmp_path)
    school.write()
    taps = [("canteen-1", school.card(i)) for i in range(1, 8, 2)]  # grade 2: free meal
    taps += [("gate-1", school.card(2)), ("lib-1", school.card(4))]
    daemon = school.start(crash_at="after_handoff:3")
    crashed_at: int | None = None
    for n, (terminal, card) in enumerate(taps):
        if not daemon.tap_and_wait(terminal, card):
            crashed_at = n
            break
    daemon.kill()
    assert crashed_at == 2, "the third group's hand-off kills the daemon"
    assert daemon.proc.returncode == -signal.SIGKILL
    # the cut tap's transaction may or may not have reached the disk; it was never actuated
    assert len(school.journal()) in (2, 3)
    assert len(school.actuation_lines()) == 2

    daemon = school.start()
    for terminal, card in taps[crashed_at:] + taps:
        assert daemon.tap_and_wait(terminal, card)
    assert daemon.stop() == 0
    check_invariants(school)
    meals = [e for e in school.journal() if isinstance(e, MealServedEvent)]
    assert len(meals) == 4, "each of the four eligible students eats exactly once"


def test_kill_after_a_group_commit_the_loop_has_not_heard_of(tmp_path: Path) -> None:
    school = School(tmp_path)
    school.write()
    taps = [("canteen-1", school.card(i)) for i in range(1, 8, 2)]  # grade 2: free meal
    taps += [("gate-1", school.card(2)), ("lib-1", school.card(4))]
    daemon = school.start(crash_at="after_group_commit:3")
    crashed_at: int | None = None
    for n, (terminal, card) in enumerate(taps):
        if not daemon.tap_and_wait(terminal, card):
            crashed_at = n
            break
    daemon.kill()
    assert crashed_at == 2, "the third group's commit kills the daemon"
    assert daemon.proc.returncode == -signal.SIGKILL
    assert len(school.journal()) == 3, "the third group is on disk"
    assert len(school.actuation_lines()) == 2, "and was never actuated"

    daemon = school.start()
    for terminal, card in taps[crashed_at:] + taps:
        assert daemon.tap_and_wait(terminal, card)
    assert daemon.stop() == 0
    check_invariants(school)
    meals = [e for e in school.journal() if isinstance(e, MealServedEvent)]
    assert len(meals) == 4, "each of the four eligible students eats exactly once"


@pytest.mark.parametrize("point", ["after_handoff", "after_group_commit"])
def test_kill_at_a_hand_off_during_a_rush(tmp_path: Path, point: str) -> None:
    """Three terminals tapping at once: groups are open while others commit when it dies."""
    school = School(tmp_path, students=60)
    school.write()
    rng = random.Random(11)
    for nth in (5, 12, 25):
        daemon = school.start(crash_at=f"{point}:{nth}")
        assert daemon.tap_and_wait("gate-1", school.card(rng.randrange(60)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and daemon.proc.poll() is None:
            daemon.tap("canteen-1", school.card(rng.randrange(60)))
            daemon.tap("canteen-2", school.card(rng.randrange(60)))
            daemon.tap("gate-1", school.card(rng.randrange(60)))
            time.sleep(0.005)
        daemon.kill()
        assert daemon.proc.returncode == -signal.SIGKILL, "the hand-off failpoint fired"
        check_invariants(school)
    assert check_invariants(school)["events"] > 0
