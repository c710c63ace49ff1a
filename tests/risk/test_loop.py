"""The supervisor's loop through the real stores: an inspection records hazards and a false
self-declaration, the credit rules blacklist the unit, and the risk worker's event check
rescores it at once -- the hazards in its breakdown, red forced by the blacklist, a warning;
rectified, verified and restored, the unit's level falls again without a warning."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.credit import CreditStatus
from firewatch.core.settings import Settings
from firewatch.core.supervision import HazardAction, HazardSeverity
from firewatch.risk.service import RiskService
from firewatch.storage.credit import change_credit
from firewatch.storage.inspectors import add_inspector
from firewatch.supervision.credit import evaluate_credit
from firewatch.supervision.inspections import (
    HazardIn,
    InspectionReport,
    act_on_hazard,
    record_inspection,
)
from tests.helpers import FakeClock, ThreadedService, scalar

UNIT = "U-WD-002"


def newest(db: psycopg.Connection[Any]) -> tuple[str, list[str], str, dict[str, float]]:
    row = db.execute(
        "SELECT level, forced_by, trigger, breakdown FROM risk_scores WHERE unit_id = %s"
        " ORDER BY id DESC LIMIT 1",
        (UNIT,),
    ).fetchone()
    assert row is not None
    points = {c["indicator"]: c["points"] for c in row[3]}
    return row[0], row[1], row[2], points


def test_an_inspection_blacklists_and_reddens_a_unit_and_rectification_restores_it(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    settings = settings.model_copy(update={"risk_event_check_s": 0.05})
    clock = FakeClock(time.time())

    def now() -> datetime:
        return datetime.fromtimestamp(clock.now, UTC)

    for code in ("WD-001", "WD-002"):
        add_inspector(db, code=code, name=f"检查员 {code}", organisation="魏都区消防救援大队")
    assert settings.database_url
    svc = RiskService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "risk") as t:
        t.wait(lambda: scalar(db, "SELECT count(*) FROM risk_current") == 8, 20, "first run")
        before, _, _, points_before = newest(db)
        assert before != "red"
        assert points_before["open_major_hazards"] == 0

        clock.now += 60
        report = InspectionReport(
            unit=UNIT,
            inspected_at=now(),
            inspectors=["WD-001", "WD-002"],
            false_declaration=True,
            hazards=[
                HazardIn(
                    category="fire_exits",
                    severity=HazardSeverity.MAJOR,
                    description="安全出口锁闭",
                ),
                HazardIn(
                    category="ebike_charging",
                    severity=HazardSeverity.GENERAL,
                    description="电动自行车在楼道内充电",
                ),
            ],
        )
        _, hazards = record_inspection(db, settings, report, actor="WD-001")
        assert len(hazards) == 2
        made = evaluate_credit(db, settings, now())
        assert [c.to_status for c in made] == [CreditStatus.BLACKLISTED]

        clock.now += 1
        t.wait(lambda: newest(db)[0] == "red", 20, "the unit rescored red")
        _, forced, trigger, points = newest(db)
        assert "blacklisted" in forced
        assert trigger.startswith("event:")
        # the inspection's hazards and the blacklisting are two commits: the rescore that
        # saw the blacklist may have been woken by either (one batch names its first event)
        assert any(e in trigger for e in ("credit_blacklisted", "hazard_found")), trigger
        assert points["open_major_hazards"] > 0
        assert points["open_general_hazards"] > 0
        assert points["false_declarations"] > 0
        warned = scalar(
            db, "SELECT count(*) FROM risk_warnings WHERE unit_id = %s AND to_level = 'red'", UNIT
        )
        assert warned == 1

        # rectified and verified, and restored by a supervisor's decision
        clock.now += 3600
        for h in hazards:
            act_on_hazard(
                db, h.id, HazardAction.SUBMIT, actor="unit", evidence="整改照片", at=now()
            )
            act_on_hazard(db, h.id, HazardAction.VERIFY, actor="WD-001", note="复查合格", at=now())
        change_credit(
            db,
            UNIT,
            CreditStatus.GOOD,
            rule="manual",
            reason="rectified and re-inspected",
            actor="supervisor-li",
            at=now() + timedelta(seconds=1),
        )
        clock.now += 2
        t.wait(lambda: newest(db)[0] != "red", 20, "the unit no longer red")
    t.stop()
    level, forced, _, points = newest(db)
    assert level != "red"
    assert "blacklisted" not in forced
    assert points["open_major_hazards"] == points["open_general_hazards"] == 0
    assert points["hazards_found"] > 0  # the history stays: found in the last 365 days
    assert scalar(db, "SELECT count(*) FROM risk_warnings WHERE unit_id = %s", UNIT) == 1 + (
        before != "blue"
    )
