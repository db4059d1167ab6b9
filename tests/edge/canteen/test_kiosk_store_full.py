"""The canteen kiosk when the store cannot write (README, "Full disk"), without root: SQLite's
own limit on the database's size (``max_page_count``) makes the journal's commit fail with
SQLITE_FULL, "database or disk is full", exactly as a full disk does.

The tap is not recorded, so no meal is served: the kiosk says NOT RECORDED in kk/ru/en, the
duty page's state holds the refused taps; with room again the same tap is served, once."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from edge.config import TerminalConfig
from edge.core.model import Tap
from edge.core.reasons import NOT_RECORDED_MESSAGE, Screen
from edge.daemon import Actuation
from edge.kiosk.hub import KioskHub
from edge.pipeline import Pipeline, utc_now
from edge.store import EdgeStore
from protocol.messages import AlarmCode, AlarmEvent, MealServedEvent, TerminalKind
from tests.support.canteen_school import open_school
from tests.support.wait import wait_until_async

CANTEEN = TerminalConfig.model_validate(
    {"id": "canteen-1", "kind": "canteen", "reader": {"type": "line", "path": "/dev/null"}}
)


def limit_pages(db: sqlite3.Connection, extra: int | None) -> None:
    """Cap the database at its current size (+ ``extra`` pages), or lift the cap."""
    if extra is None:
        db.execute("PRAGMA max_page_count = 1073741823")
        return
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the pages are in the file, not the WAL
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages + extra}")


async def cap(store: EdgeStore, extra: int | None) -> None:
    assert store._writer is not None
    await store._in_writer(limit_pages, store._writer, extra)


async def test_the_kiosk_says_not_recorded_and_serves_once_there_is_room(tmp_path: Path) -> None:
    store = await open_school(tmp_path / "edge.sqlite")
    try:
        async with Pipeline(store) as pipeline:
            hub = KioskHub(store, pipeline, ["canteen-1"])
            act = Actuation(CANTEEN, pipeline, utc_now, kiosk=hub)
            screens = hub.subscribe("canteen-1")

            def tap(card: str = "UID:04A1B2C3") -> Tap:
                return Tap(
                    at=dt.datetime.now(dt.UTC),
                    terminal="canteen-1",
                    kind=TerminalKind.CANTEEN,
                    credential=card,
                )

            await cap(store, 0)
            for _ in range(2000):  # unknown cards (refusals, journaled) until the cap is hit
                if await act.tap(tap("UID:0FFFFFFF")) is None:
                    break
            else:
                raise AssertionError("the capped store never refused")
            while (await screens.get())["screen"] != Screen.NOT_RECORDED:
                pass
            last = store.last_seq
            for _ in range(2):
                assert await act.tap(tap()) is None  # refused: not recorded
                screen = await screens.get()
                assert screen["screen"] == Screen.NOT_RECORDED and screen["colour"] == "red"
                assert screen["message"] == {k.value: v for k, v in NOT_RECORDED_MESSAGE.items()}
                assert set(screen["headline"]) == {"kk", "ru", "en"}
            assert store.last_seq == last
            fault = pipeline.store_fault
            assert fault is not None and fault.refused == 3 and "full" in fault.detail
            assert not [e for e in await store.journal_rows(last) if isinstance(e, MealServedEvent)]

            await cap(store, None)  # room again
            outcome = await act.tap(tap())
            assert outcome is not None and isinstance(outcome.event, MealServedEvent)
            assert outcome.event.seq == last + 1  # no gap
            assert (await screens.get())["screen"] == Screen.FREE_MEAL
            assert pipeline.store_fault is None
            await wait_until_async(lambda: store.last_seq >= last + 3, 10, "the outage journaled")
            again = await act.tap(tap())
            assert again is not None and not again.decision.granted  # served once, not twice
        rows = await store.journal_rows(last + 1)
        assert [e.seq for e in rows] == list(range(last + 1, last + 1 + len(rows)))
        outage = [e for e in rows if isinstance(e, AlarmEvent) and e.code is AlarmCode.STORE_FULL]
        assert [e.active for e in outage] == [True, False]
        assert outage[0].detail.startswith("3 taps refused")
        assert sum(isinstance(e, MealServedEvent) for e in rows) == 1
    finally:
        await store.close()
