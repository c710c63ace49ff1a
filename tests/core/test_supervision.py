"""Hazard records and time rules (firewatch/core/supervision.py): the lifecycle, when a
reminder is due, and which escalation level an overdue hazard has reached."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from firewatch.core.supervision import (
    Hazard,
    HazardAction,
    HazardSeverity,
    HazardSource,
    HazardState,
    IllegalHazardTransition,
    NewHazard,
    deadline_for,
    escalation_due,
    next_hazard_state,
    reminder_due,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
D = timedelta(days=1)
HAZARD = Hazard(
    id=1,
    unit_id="U-1",
    source=HazardSource.INSPECTION,
    inspection_id=1,
    alert_id=None,
    category="fire_exits",
    severity=HazardSeverity.MAJOR,
    description="exit locked",
    found_at=T0,
    deadline=T0 + 10 * D,
    state=HazardState.OPEN,
    evidence=None,
    submitted_at=None,
    verified_at=None,
    verified_by=None,
    rejections=0,
    reminders_sent=0,
    escalation_level=0,
    escalated_at=None,
)


def test_lifecycle() -> None:
    assert next_hazard_state(HazardState.OPEN, HazardAction.SUBMIT) is HazardState.SUBMITTED
    assert next_hazard_state(HazardState.SUBMITTED, HazardAction.REJECT) is HazardState.OPEN
    assert next_hazard_state(HazardState.SUBMITTED, HazardAction.VERIFY) is HazardState.VERIFIED
    assert next_hazard_state(HazardState.OPEN, HazardAction.VERIFY) is HazardState.VERIFIED
    with pytest.raises(IllegalHazardTransition, match="verified is final"):
        next_hazard_state(HazardState.VERIFIED, HazardAction.SUBMIT)
    with pytest.raises(IllegalHazardTransition, match="allowed: submit, verify"):
        next_hazard_state(HazardState.OPEN, HazardAction.REJECT)


def test_new_hazards_are_checked_and_get_their_deadline() -> None:
    with pytest.raises(ValueError, match="unknown hazard category"):
        NewHazard("smells", HazardSeverity.GENERAL, "x")
    with pytest.raises(ValueError, match="description"):
        NewHazard("other", HazardSeverity.GENERAL, "  ")
    days = {"major": 30.0, "general": 15.0}
    assert deadline_for(HazardSeverity.MAJOR, T0, days) == T0 + 30 * D
    assert deadline_for(HazardSeverity.GENERAL, T0, days) == T0 + 15 * D


def test_reminders_before_the_deadline_one_at_a_time() -> None:
    before = [3 * 86_400.0, 86_400.0]
    assert reminder_due(HAZARD, T0 + 6 * D, before) is None
    assert reminder_due(HAZARD, T0 + 7 * D, before) == 1
    sent = replace(HAZARD, reminders_sent=1)
    assert reminder_due(sent, T0 + 8 * D, before) is None
    assert reminder_due(sent, T0 + 9.5 * D, before) == 2
    # the worker was down over both thresholds: one reminder, counted as both
    assert reminder_due(HAZARD, T0 + 9.5 * D, before) == 2
    assert reminder_due(HAZARD, T0 + 11 * D, before) is None  # past: escalation's turn
    assert reminder_due(replace(HAZARD, state=HazardState.SUBMITTED), T0 + 9.5 * D, before) is None


def test_escalation_levels_rise_per_interval_up_to_the_maximum() -> None:
    week = 7 * 86_400.0
    assert escalation_due(HAZARD, T0 + 10 * D, week, 3) is None
    assert escalation_due(HAZARD, T0 + 10 * D + timedelta(seconds=1), week, 3) == 1
    assert escalation_due(replace(HAZARD, escalation_level=1), T0 + 16 * D, week, 3) is None
    assert escalation_due(replace(HAZARD, escalation_level=1), T0 + 17 * D, week, 3) == 2
    assert escalation_due(HAZARD, T0 + 100 * D, week, 3) == 3
    assert escalation_due(replace(HAZARD, escalation_level=3), T0 + 100 * D, week, 3) is None
    verified = replace(HAZARD, state=HazardState.VERIFIED, verified_at=T0 + 11 * D)
    assert escalation_due(verified, T0 + 30 * D, week, 3) is None
    assert HAZARD.overdue(T0 + 11 * D)
    assert not verified.overdue(T0 + 11 * D)


def test_supervision_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from firewatch.core.settings import Settings

    monkeypatch.setenv(
        "FIREWATCH_SUPERVISION_LEVEL_RATES", '{"red":1,"orange":0.5,"yellow":0.2,"blue":0}'
    )
    monkeypatch.setenv("FIREWATCH_SUPERVISION_REMIND_BEFORE_DAYS", "[7, 2]")
    s = Settings()
    assert s.supervision_level_rates["red"] == 1.0
    assert s.supervision_remind_before_days == [7.0, 2.0]
    for name, value, message in [
        ("FIREWATCH_SUPERVISION_LEVEL_RATES", '{"red":1}', "exactly red, orange"),
        (
            "FIREWATCH_SUPERVISION_LEVEL_RATES",
            '{"red":2,"orange":0,"yellow":0,"blue":0}',
            "between 0 and 1",
        ),
        ("FIREWATCH_SUPERVISION_CREDIT_RATES", '{"grey":0.5}', "good, watch and blacklisted"),
        ("FIREWATCH_SUPERVISION_DEADLINE_DAYS", '{"major":0,"general":15}', "positive days"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(ValidationError, match=message):
                Settings()
