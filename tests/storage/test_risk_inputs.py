"""storage/risk_inputs.py: a unit's current-state facts from open episodes and confirmed
fires, as at a given time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.alerts import AlertAction
from firewatch.core.anomalies import Origin
from firewatch.core.credit import CreditStatus
from firewatch.core.domain import Severity
from firewatch.storage.alerts import apply_action
from firewatch.storage.credit import change_credit
from firewatch.storage.risk_inputs import all_unit_ids, risk_triggers, unit_facts
from tests.builders import city
from tests.builders.alerts import EPOCH, add_anomaly, anomaly, new_alert

HOUR = 3600.0
AT = datetime.fromtimestamp(EPOCH + 10 * HOUR, UTC)


def test_an_untroubled_unit_has_its_devices_and_nothing_else(db: psycopg.Connection[Any]) -> None:
    facts = unit_facts(db, [city.UNIT], AT)[city.UNIT]
    assert (facts["devices"], facts["panels"]) == (4, 1)
    assert facts["offline_devices"] == facts["isolated_components"] == facts["open_faults"] == 0
    assert facts["panel_offline_h"] == facts["oldest_fault_h"] == 0.0
    assert facts["confirmed_fire_at"] is None


def test_open_episodes_count_with_their_age_and_closed_or_future_ones_do_not(
    db: psycopg.Connection[Any],
) -> None:
    panel = dict(device=city.PANEL, origin=Origin.REPORTED, severity=Severity.MEDIUM)
    add_anomaly(db, anomaly(start=EPOCH, kind="device_offline", detector="link.lwt", **panel))
    add_anomaly(
        db,
        anomaly(
            start=EPOCH + 4 * HOUR,
            kind="component_isolated",
            detector="panel.isolated",
            component="1-12",
            **panel,
        ),
    )
    add_anomaly(
        db,
        anomaly(
            start=EPOCH + 6 * HOUR,
            kind="component_isolated",
            detector="panel.isolated",
            component="1-13",
            **panel,
        ),
    )
    add_anomaly(
        db,
        anomaly(
            start=EPOCH + 8 * HOUR,
            kind="panel_fault",
            detector="panel.fault",
            component="1-14",
            **panel,
        ),
    )
    add_anomaly(
        db,
        anomaly(
            start=EPOCH + 1 * HOUR,
            kind="panel_fault",
            detector="panel.fault",
            component="1-15",
            ended_at=EPOCH + 2 * HOUR,
            **panel,
        ),
    )  # closed
    add_anomaly(
        db,
        anomaly(
            start=EPOCH + 20 * HOUR,
            kind="panel_fault",
            detector="panel.fault",
            component="1-16",
            **panel,
        ),
    )  # after AT
    add_anomaly(
        db,
        anomaly(
            device=city.WATER, start=EPOCH + 9 * HOUR, kind="device_silent", detector="link.silent"
        ),
    )
    facts = unit_facts(db, None, AT)
    mine = facts[city.UNIT]
    assert mine["offline_devices"] == 2
    assert mine["offline_panels"] == 1
    assert mine["panel_offline_h"] == pytest.approx(10.0)
    assert mine["isolated_components"] == 2
    assert mine["isolated_max_h"] == pytest.approx(6.0)
    assert mine["open_faults"] == 1
    assert mine["oldest_fault_h"] == pytest.approx(2.0)
    assert facts["U-WD-002"]["offline_devices"] == 0
    assert set(facts) == set(all_unit_ids(db))


def test_a_confirmed_fire_counts_for_a_year(db: psycopg.Connection[Any]) -> None:
    alert = new_alert(db, type_="fire_alarm", unit=city.UNIT, seen=EPOCH)
    apply_action(db, alert.id, AlertAction.CONFIRM_FIRE, actor="op", now=EPOCH + 60)
    confirmed = datetime.fromtimestamp(EPOCH + 60, UTC)
    facts = unit_facts(db, [city.UNIT], AT)[city.UNIT]
    assert (facts["confirmed_fire_at"], facts["confirmed_fires"]) == (confirmed, 1)
    later = confirmed + timedelta(days=366)
    assert unit_facts(db, [city.UNIT], later)[city.UNIT]["confirmed_fire_at"] is None
    before = confirmed - timedelta(seconds=1)
    assert unit_facts(db, [city.UNIT], before)[city.UNIT]["confirmed_fire_at"] is None


def test_triggers_name_the_units_with_significant_events_in_the_window(
    db: psycopg.Connection[Any],
) -> None:
    alert = new_alert(db, type_="fire_alarm", unit=city.UNIT, seen=EPOCH)
    apply_action(db, alert.id, AlertAction.CONFIRM_FIRE, actor="op", now=EPOCH + 60)
    change_credit(
        db,
        "U-JA-001",
        CreditStatus.BLACKLISTED,
        rule="manual",
        reason="false self-declaration",
        actor="li",
        at=datetime.fromtimestamp(EPOCH + 120, UTC),
    )
    t = datetime.fromtimestamp(EPOCH, UTC)
    assert risk_triggers(db, t, t + timedelta(minutes=5)) == {
        city.UNIT: ["confirmed_fire"],
        "U-JA-001": ["credit_blacklisted"],
    }
    assert risk_triggers(db, t + timedelta(seconds=60), t + timedelta(minutes=5)) == {
        "U-JA-001": ["credit_blacklisted"]
    }
    assert risk_triggers(db, t + timedelta(minutes=5), t + timedelta(minutes=10)) == {}
