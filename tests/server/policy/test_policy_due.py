"""A meal policy saved with a future date reaches the school's edges when that day comes,
published by the due-policy job that runs beside the downlink (no one has to press anything
that morning)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy.orm import Session

from server.policy.job import DuePolicyJob
from server.policy.service import load_policy_toml, local_today, save_policy
from server.settings import ServerSettings
from server.sync.changelog import load_state
from tests.support.console import World

POLICY = Path(__file__).resolve().parents[3] / "examples" / "policy.toml"


def test_a_future_policy_is_published_when_it_takes_effect(
    world: World, db: Session, settings: ServerSettings
) -> None:
    doc = load_policy_toml(str(POLICY))
    later = doc.model_copy(update={"free_meal_grades": [1, 2, 3, 4, 5]})
    save_policy(db, None, school_id="S1", valid_from=local_today(), doc=doc)
    _row, published = save_policy(
        db, None, school_id="S1", valid_from=local_today() + dt.timedelta(days=3), doc=later
    )
    db.commit()
    assert published == []  # not yet in force
    state = load_state(db, "S1")
    assert state.policy is not None and state.policy.free_meal_grades == doc.free_meal_grades

    job = DuePolicyJob(settings)
    try:
        assert job.run_once(local_today()) == []  # nothing new today
        done = job.run_once(local_today() + dt.timedelta(days=3))
        assert [school for school, _ in done] == ["S1"]
        assert job.run_once(local_today() + dt.timedelta(days=4)) == []
    finally:
        job.stop()
    db.expire_all()
    state = load_state(db, "S1")
    assert state.policy is not None and state.policy.free_meal_grades == [1, 2, 3, 4, 5]
