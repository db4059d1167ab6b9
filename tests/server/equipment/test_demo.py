"""The demo seeds the module: seed 000's table with Ridder flagged, a campaign through approval,
one device refused at acceptance, loans; and the CLI prints the district table."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edge.roster import roster_records
from server.clock import Clock
from server.demo_seed import seed_demo
from server.equipment import service as svc
from server.equipment.calc import Counts
from server.equipment.models import Campaign, Loan, PriorityList, Rejection
from server.settings import ServerSettings
from simulators.school import make_roster


def test_demo_seed_and_cli(db: Session, settings: ServerSettings, capsys) -> None:  # type: ignore[no-untyped-def]
    today = Clock().today_in(None)
    roster = roster_records(make_roster(60, today=today), source="demo", now=None)
    accounts = seed_demo(db, roster.school, roster.students, roster.staff, roster.cards)
    db.commit()
    assert {"librarian", "equipment", "district", "region"} <= {a.login for a in accounts}
    rep = svc.coverage_report(db, "DEMO-REGION", "2020", today)
    assert rep.total == Counts(632, 186_219, 149_631, 36_588, 4_012, 1_150, 530, 132)
    assert [r.district for r in rep.flagged] == ["Риддер"]
    camp = db.scalars(select(Campaign)).one()
    assert db.scalars(select(PriorityList)).one().status == "approved"
    assert db.scalar(select(func.count()).select_from(Rejection)) == 1
    assert db.scalar(select(func.count()).select_from(Loan).where(Loan.campaign_pk == camp.pk)) == 3
    final = svc.final_report(db, camp, today)
    assert (final["delivered"], final["accepted"], final["rejected"]) == (7, 6, 1)
    from server.cli import main

    assert (
        main(
            [
                "equipment",
                "coverage",
                "--region",
                "DEMO-REGION",
                "--period",
                "2020",
                "--json",
                "--database-url",
                settings.database_url,
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["students"] == 186_219
    assert out["flagged"][0]["district"] == "Риддер"
