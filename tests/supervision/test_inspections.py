"""Recording inspections and working hazards (firewatch/supervision/inspections.py): what a
report must satisfy (the draw, the ties, the outcome), deadlines by severity, the hazard's
lifecycle with its audit trail, and the notifications each step leaves in the outbox."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.core.supervision import (
    Conflict,
    HazardAction,
    HazardState,
    IllegalHazardTransition,
    NotFound,
    SupervisionError,
)
from firewatch.storage import hazards as hazard_store
from firewatch.storage.inspections import get_inspection
from firewatch.storage.inspectors import add_tie
from firewatch.supervision import draws
from firewatch.supervision.inspections import (
    InspectionReport,
    act_on_hazard,
    read_report,
    record_inspection,
)
from tests.supervision.builders import T0, inspectors, set_level, unit_ids

D = timedelta(days=1)


def report(**fields: Any) -> InspectionReport:
    values: dict[str, Any] = {
        "unit": "U-WD-001",
        "inspected_at": T0.isoformat(),
        "inspectors": ["I-01", "I-02"],
    }
    values.update(fields)
    return InspectionReport.model_validate(values)


def outbox(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT alert_id, channel, payload->>'kind', recipient->>'role' FROM outbox ORDER BY id"
    ).fetchall()


def test_hazards_get_deadlines_by_severity_and_notify_the_unit(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    hazards = [
        {"category": "fire_exits", "severity": "major", "description": "安全出口上锁"},
        {"category": "electrical", "severity": "general", "description": "私拉电线"},
    ]
    inspection_id, created = record_inspection(
        db, settings, report(hazards=hazards, notes="night visit"), actor="I-01"
    )
    assert [h.deadline - T0 for h in created] == [30 * D, 15 * D]
    assert all(h.state is HazardState.OPEN and h.inspection_id == inspection_id for h in created)
    row = get_inspection(db, inspection_id)
    assert row["outcome"] == "hazards_found"
    assert row["inspectors"] == ["I-01", "I-02"]
    assert [h["severity"] for h in row["hazards"]] == ["major", "general"]
    # the unit's responsible contact is told of each new work order; no alert behind them
    assert outbox(db) == [(None, "notify", "hazard_opened", "responsible")] * 2


def test_a_report_file_in_toml(
    db: psycopg.Connection[Any], settings: Settings, tmp_path: Path
) -> None:
    inspectors(db)
    path = tmp_path / "inspection.toml"
    path.write_text(
        'unit = "U-WD-002"\ninspected_at = 2026-03-02T10:00:00+08:00\n'
        'inspectors = ["I-03", "I-04"]\nfalse_declaration = true\n'
        '[[hazards]]\ncategory = "ebike_charging"\nseverity = "general"\n'
        'description = "电动车在楼道充电"\n',
        "utf-8",
    )
    inspection_id, created = record_inspection(db, settings, read_report(path), actor="I-03")
    assert len(created) == 1
    assert created[0].unit_id == "U-WD-002"
    assert get_inspection(db, inspection_id)["false_declaration"] is True
    bad = tmp_path / "bad.toml"
    bad.write_text('unit = "U-WD-002"\ninspectors = []\n', "utf-8")
    with pytest.raises(SupervisionError, match=r"bad\.toml: inspected_at"):
        read_report(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{", "utf-8")
    with pytest.raises(SupervisionError, match="not valid JSON"):
        read_report(broken)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"unit": "U-NOPE"}, "no unit 'U-NOPE'"),
        ({"inspectors": ["I-01", "I-99"]}, "no inspector 'I-99'"),
        ({"inspectors": ["I-01", "I-01"]}, "listed twice"),
        (
            {
                "outcome": "passed",
                "hazards": [{"category": "other", "severity": "general", "description": "x"}],
            },
            "does not match",
        ),
        ({"outcome": "not_inspected", "false_declaration": True}, "no findings"),
        (
            {"hazards": [{"category": "smells", "severity": "general", "description": "x"}]},
            "unknown hazard category",
        ),
        ({"inspected_at": "2026-03-02T10:00:00"}, "needs an offset"),
        ({"draw": 99}, "no draw 99"),
        ({"reinspection_of": 99}, "no inspection 99"),
    ],
)
def test_reports_the_records_refuse(
    db: psycopg.Connection[Any], settings: Settings, fields: dict[str, Any], message: str
) -> None:
    inspectors(db)
    with pytest.raises(SupervisionError, match=message):
        record_inspection(db, settings, report(**fields), actor="t")
    assert db.execute("SELECT count(*) FROM inspections").fetchone() == (0,)


def test_a_tied_inspector_may_not_inspect(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    add_tie(db, code="I-02", unit_id="U-WD-001", kind="testing_company", actor="s")
    with pytest.raises(SupervisionError, match="I-02 declared a tie to U-WD-001"):
        record_inspection(db, settings, report(), actor="t")


def test_a_drawn_unit_is_inspected_by_its_drawn_inspectors(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    codes = inspectors(db)
    for unit in unit_ids(db):
        set_level(db, unit, "red")
    settings = settings.model_copy(
        update={"supervision_level_rates": {"red": 1.0, "orange": 1.0, "yellow": 1.0, "blue": 1.0}}
    )
    draw = draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    with pytest.raises(Conflict, match="committed: its inspections cannot be recorded"):
        record_inspection(db, settings, report(draw=draw.id), actor="t")
    draw = draws.reveal_draw(db, draw.id, actor="s", at=T0)
    drawn = {u["id"]: u["inspectors"] for u in json.loads(draw.result or "")["units"]}
    mine = drawn["U-WD-001"]
    others = [c for c in codes if c not in mine][:2]
    with pytest.raises(SupervisionError, match="give a substitution reason"):
        record_inspection(db, settings, report(draw=draw.id, inspectors=others), actor="t")
    inspection_id, _ = record_inspection(
        db, settings, report(draw=draw.id, inspectors=others, substitution="I-01 ill"), actor="t"
    )
    assert "substitution: I-01 ill" in get_inspection(db, inspection_id)["notes"]
    record_inspection(
        db, settings, report(draw=draw.id, inspectors=list(reversed(mine))), actor="t"
    )


def test_a_unit_not_drawn_is_refused(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    settings = settings.model_copy(
        update={"supervision_level_rates": {"red": 0.0, "orange": 0.0, "yellow": 0.0, "blue": 0.0}}
    )
    draw = draws.commit_draw(db, settings, "2026-Q1", actor="s", at=T0)
    draws.reveal_draw(db, draw.id, actor="s", at=T0)
    with pytest.raises(SupervisionError, match="U-WD-001 was not drawn in draw"):
        record_inspection(db, settings, report(draw=draw.id), actor="t")


def test_the_hazard_lifecycle_is_audited(db: psycopg.Connection[Any], settings: Settings) -> None:
    inspectors(db)
    _, (hazard,) = record_inspection(
        db,
        settings,
        report(hazards=[{"category": "fire_exits", "severity": "major", "description": "x"}]),
        actor="I-01",
    )
    with pytest.raises(SupervisionError, match="needs the rectification evidence"):
        act_on_hazard(db, hazard.id, HazardAction.SUBMIT, actor="unit", evidence=" ")
    with pytest.raises(IllegalHazardTransition, match="cannot reject a hazard that is open"):
        act_on_hazard(db, hazard.id, HazardAction.REJECT, actor="s", note="no", at=T0)
    h = act_on_hazard(
        db, hazard.id, HazardAction.SUBMIT, actor="unit", evidence="photos 1-3", at=T0 + D
    )
    assert h.state is HazardState.SUBMITTED
    assert h.evidence == "photos 1-3"
    with pytest.raises(SupervisionError, match="needs a note"):
        act_on_hazard(db, hazard.id, HazardAction.REJECT, actor="s")
    h = act_on_hazard(
        db, hazard.id, HazardAction.REJECT, actor="s", note="lock still on", at=T0 + 2 * D
    )
    assert h.state is HazardState.OPEN
    assert h.rejections == 1
    act_on_hazard(
        db, hazard.id, HazardAction.SUBMIT, actor="unit", evidence="lock removed", at=T0 + 3 * D
    )
    h = act_on_hazard(db, hazard.id, HazardAction.VERIFY, actor="s", at=T0 + 4 * D)
    assert h.state is HazardState.VERIFIED
    assert h.verified_at == T0 + 4 * D
    assert h.verified_by == "s"
    trail = [
        (e["action"], e["from_state"], e["to_state"], e["actor"])
        for e in hazard_store.hazard_events(db, hazard.id)
    ]
    assert trail == [
        ("found", None, "open", "I-01"),
        ("submit", "open", "submitted", "unit"),
        ("reject", "submitted", "open", "s"),
        ("submit", "open", "submitted", "unit"),
        ("verify", "submitted", "verified", "s"),
    ]
    kinds = [(ch, kind) for _, ch, kind, _ in outbox(db)]
    assert kinds == [
        ("notify", "hazard_opened"),
        ("supervisor", "hazard_submitted"),
        ("notify", "hazard_rejected"),
        ("supervisor", "hazard_submitted"),
    ]
    with pytest.raises(NotFound, match="no hazard 999"):
        act_on_hazard(db, 999, HazardAction.VERIFY, actor="s")


def test_a_reinspection_verifies_and_rejects(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    inspectors(db)
    hazards = [
        {"category": "fire_exits", "severity": "general", "description": f"h{i}"} for i in range(2)
    ]
    first, (a, b) = record_inspection(db, settings, report(hazards=hazards), actor="I-01")
    act_on_hazard(db, b.id, HazardAction.SUBMIT, actor="unit", evidence="done", at=T0 + D)
    again, _ = record_inspection(
        db,
        settings,
        report(
            inspected_at=(T0 + 5 * D).isoformat(),
            reinspection_of=first,
            verified=[a.id],
            rejected=[b.id],
        ),
        actor="I-01",
    )
    assert hazard_store.get_hazard(db, a.id).state is HazardState.VERIFIED
    assert hazard_store.get_hazard(db, b.id).state is HazardState.OPEN
    assert get_inspection(db, again)["reinspection_of"] == first
    other, _ = record_inspection(db, settings, report(unit="U-WD-002"), actor="I-01")
    with pytest.raises(SupervisionError, match="was not of U-WD-001"):
        record_inspection(db, settings, report(reinspection_of=other), actor="I-01")


def test_manual_credit_decisions_need_a_known_status_and_a_reason(
    db: psycopg.Connection[Any],
) -> None:
    from firewatch.supervision.credit import set_credit

    with pytest.raises(SupervisionError, match="unknown credit status 'grey'"):
        set_credit(db, "U-WD-001", "grey", reason="x", actor="s", at=T0)
    with pytest.raises(SupervisionError, match="needs a reason"):
        set_credit(db, "U-WD-001", "watch", reason=" ", actor="s", at=T0)
    with pytest.raises(NotFound, match="no unit 'U-NOPE'"):
        set_credit(db, "U-NOPE", "watch", reason="x", actor="s", at=T0)
    assert set_credit(db, "U-WD-001", "watch", reason="x", actor="s", at=T0).status.value == "watch"
