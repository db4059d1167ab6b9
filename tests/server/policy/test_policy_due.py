"""A meal policy saved with a future date reaches the school's edges when that day comes,
published by the due-policy job that runs beside the downlink (no one has to press anything
that morning)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
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


def test_the_job_says_once_that_the_database_is_away_not_every_round(
    settings: ServerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's log is not a traceback every round while the database is down."""
    import time

    from sqlalchemy import create_engine

    away = create_engine("postgresql+psycopg://qaqpa:x@127.0.0.1:1/none", pool_pre_ping=False)
    job = DuePolicyJob(settings.model_copy(update={"policy_check_s": 0.02}), engine=away)
    caplog.set_level(logging.INFO, logger="server.policy.job")
    job.start()
    try:
        time.sleep(0.3)  # about a dozen rounds
    finally:
        job.stop()
    records = [r for r in caplog.records if r.name == "server.policy.job"]
    assert [r.levelname for r in records] == ["WARNING"]
    assert "database is unreachable" in records[0].getMessage()
    assert records[0].exc_info is None
    assert "x@" not in records[0].getMessage()  # no password in the log
