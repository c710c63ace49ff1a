"""Every measure of a device-hour rollup against values worked out by hand, on small crafted
data of the seeded devices (tests/builders/city.py): a water point of a class1_highrise
unit (minimum 100 kPa), its e-bike shed (alarm 65 °C, over-current above 3 A × 1.2) and
its panel. A reading holds until the next one, at most 300 s (the water and shed offline
limit); an open episode counts up to the refresh's clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.analysis.refresh import Rollups
from firewatch.core.alerts import AlertAction
from firewatch.core.domain import Severity
from firewatch.core.rollups import Grain, Rollup, Tier
from firewatch.storage.alerts import apply_action, raise_alert
from firewatch.storage.anomalies import upsert_anomalies
from firewatch.storage.rollups import compute_device_hours
from tests.builders import city
from tests.builders.alerts import anomaly
from tests.builders.rollups import ingest
from tests.builders.rows import shed_row, water_row

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def hours(
    r: Rollups, db: psycopg.Connection[Any], device: str, *starts: datetime, now: datetime
) -> list[Rollup]:
    return compute_device_hours(db, [(device, s) for s in starts], r.limits, now=now)


def test_pressure_minimum_mean_and_minutes_below_split_across_the_hour(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    readings = [(0, 120.0), (60, 90.0), (120, 95.0), (180, 150.0), (3570, 80.0), (3630, 85.0)]
    ingest(db, [water_row(city.WATER, hour + s * S, p, seq=i) for i, (s, p) in enumerate(readings)])
    first, second = hours(rollups, db, city.WATER, hour, hour + H, now=hour + 3 * H)
    assert (first.pressure_min_kpa, first.pressure_samples) == (80.0, 5)
    assert first.pressure_mean_kpa == pytest.approx((120 + 90 + 95 + 150 + 80) / 5)
    # 90 and 95 hold 60 s each until the next reading; 80 holds 60 s until 85, 30 s of it
    # in this hour; 150 is not low (and its hold is cut at 300 s).
    assert first.pressure_low_min == pytest.approx(2.5)
    # the other 30 s of 80, then 85 alone: capped at 300 s
    assert (second.pressure_min_kpa, second.pressure_samples) == (85.0, 1)
    assert second.pressure_low_min == pytest.approx(5.5)
    assert second.tank_low_min == 0.0


def test_tank_minutes_below_the_reserve_level(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    # A tank of 5 m: its fire reserve is 60 % of it (FIREWATCH_ANALYTICS_TANK_LOW_FRACTION).
    db.execute(
        "UPDATE devices SET metadata = '{\"tank_capacity_m\": 5}'::jsonb WHERE id = %s",
        (city.WATER_2,),
    )
    rollups.load_limits(db)
    assert rollups.limits[city.WATER_2].tank_low_m == pytest.approx(3.0)
    levels = [(10 * 60, 2.5), (20 * 60, 3.5), (30 * 60, 2.9), (31 * 60, 2.8), (32 * 60, 3.1)]
    ingest(
        db,
        [water_row(city.WATER_2, hour + s * S, level=v, seq=i) for i, (s, v) in enumerate(levels)],
    )
    (r,) = hours(rollups, db, city.WATER_2, hour, now=hour + 3 * H)
    # 2.5 holds 300 s (the next reading is 10 min later), 2.9 and 2.8 one minute each
    assert r.tank_low_min == pytest.approx(5 + 1 + 1)
    assert r.pressure_samples == 0
    assert r.pressure_min_kpa is None


def test_shed_peak_and_events_count_crossings_not_readings(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    t = hour + 10 * M
    readings = [
        (0, [40.0, 30.0], [2.0, 4.0]),  # port 2 over 3.6 A: an over-current event
        (10, [66.0, 30.0], [2.0, 4.0]),  # port 1 at 66 °C: an over-temperature event
        (20, [67.0, 30.0], [4.0, 0.0]),  # still hot: no new event; port 1 over current
        (30, [50.0, 30.0], [0.0, 0.0]),
        (40, [70.0, 66.0], [0.0, 0.0]),  # both ports cross: two events
        (440, [70.0, 30.0], [0.0, 0.0]),  # 400 s after its last reading: a new event
    ]
    ingest(
        db,
        [
            shed_row(city.SHED, t + s * S, temps, cur, seq=i)
            for i, (s, temps, cur) in enumerate(readings)
        ],
    )
    (r,) = hours(rollups, db, city.SHED, hour, now=hour + 3 * H)
    assert r.shed_peak_temp_c == 70.0
    assert r.shed_overtemp_events == 4
    assert r.shed_overcurrent_events == 2
    assert r.pressure_samples == 0


def test_readings_not_a_number_are_left_out(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    ingest(
        db,
        [
            water_row(city.WATER, hour + M, float("nan"), seq=1),
            water_row(city.WATER, hour + 2 * M, float("inf"), seq=2),
            water_row(city.WATER, hour + 3 * M, 200.0, seq=3),
        ],
    )
    (r,) = hours(rollups, db, city.WATER, hour, now=hour + 3 * H)
    assert (r.pressure_min_kpa, r.pressure_mean_kpa, r.pressure_samples) == (200.0, 200.0, 1)
    assert r.pressure_low_min == 0.0


def _episode(start: datetime, end: datetime | None, **fields: Any) -> Any:
    return anomaly(
        fields.pop("device", city.PANEL),
        start.timestamp(),
        ended_at=None if end is None else end.timestamp(),
        detected_at=start.timestamp(),
        last_at=(end or start).timestamp(),
        **fields,
    )


def test_episodes_counts_types_and_minutes_inside_each_hour(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    panel = {"metric": "status", "kind": "panel_fault"}
    episodes = [
        _episode(
            hour + 5 * M,
            hour + 6 * M,
            detector="panel.fire",
            kind="fire_alarm",
            metric="status",
            component="smoke detector 1",
            severity=Severity.CRITICAL,
        ),
        # 09:40 to 11:10: 20 minutes, then 60, then 10
        _episode(
            hour + 40 * M,
            hour + 2 * H + 10 * M,
            detector="panel.fault",
            component="smoke detector 2",
            severity=Severity.MEDIUM,
            **panel,
        ),
        _episode(
            hour + H + 30 * M,
            None,
            detector="panel.mains_power_fault",
            component="system",
            severity=Severity.HIGH,
            **panel,
        ),
        _episode(
            hour,
            hour + 30 * M,
            detector="panel.isolated",
            kind="component_isolated",
            metric="status",
            component="smoke detector 3",
            severity=Severity.MEDIUM,
        ),
        _episode(
            hour + 10 * M,
            hour + 25 * M,
            device=city.WATER,
            detector="link.offline",
            kind="device_offline",
            metric="messages",
            severity=Severity.MEDIUM,
        ),
        _episode(
            hour + 50 * M,
            hour + H + 5 * M,
            device=city.WATER,
            detector="link.dropout",
            kind="device_silent",
            metric="messages",
            severity=Severity.MEDIUM,
        ),
        _episode(hour + 7 * M, hour + 8 * M, device=city.WATER, severity=Severity.LOW),
    ]
    assert upsert_anomalies(db, episodes) == len(episodes)
    now = hour + 2 * H + 30 * M  # the mains fault is still open
    p0, p1, p2 = hours(rollups, db, city.PANEL, hour, hour + H, hour + 2 * H, now=now)
    assert (p0.fire_alarms, p0.faults, p0.faults_by_type) == (1, 1, {"fault": 1})
    assert p0.fault_open_min == pytest.approx(20)
    assert p0.isolations == 1
    assert p0.isolated_min == pytest.approx(30)
    assert (p0.anomalies_critical, p0.anomalies_high, p0.anomalies_medium) == (1, 0, 2)
    assert (p1.fire_alarms, p1.faults, p1.faults_by_type) == (0, 1, {"mains_power_fault": 1})
    assert p1.fault_open_min == pytest.approx(60 + 30)
    assert (p1.anomalies_high, p1.isolations, p1.isolated_min) == (1, 0, 0.0)
    assert (p2.faults, p2.faults_by_type) == (0, {})
    assert p2.fault_open_min == pytest.approx(10 + 30)  # the open one: up to now
    w0, w1 = hours(rollups, db, city.WATER, hour, hour + H, now=now)
    assert w0.offline_min == pytest.approx(15 + 10)
    assert w1.offline_min == pytest.approx(5)
    assert (w0.anomalies_medium, w0.anomalies_low, w0.faults) == (2, 1, 0)


def test_alert_response_times_and_decisions(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    fire, _ = raise_alert(
        db,
        type="fire_alarm",
        severity=Severity.CRITICAL,
        unit_id=city.UNIT,
        device_id=city.PANEL,
        seen_at=hour + 10 * M,
        explanation="fire",
    )
    apply_action(db, fire.id, AlertAction.ACKNOWLEDGE, actor="op", now=hour + 12 * M)
    apply_action(db, fire.id, AlertAction.CONFIRM_FIRE, actor="op", now=hour + H + M)
    fault, _ = raise_alert(
        db,
        type="panel_fault",
        severity=Severity.MEDIUM,
        unit_id=city.UNIT,
        device_id=city.PANEL,
        seen_at=hour + 20 * M,
        explanation="fault",
    )
    # a decision without an acknowledgement first: it acknowledges too
    apply_action(db, fault.id, AlertAction.MARK_FALSE_ALARM, actor="op", now=hour + 25 * M)
    first, second = hours(rollups, db, city.PANEL, hour, hour + H, now=hour + 3 * H)
    assert first.acks == 2
    assert first.ack_s_sum == pytest.approx(120 + 300)
    assert first.confirms == 1
    assert first.confirm_s_sum == pytest.approx(300)
    assert (first.false_alarms, first.confirmed_fires) == (1, 0)
    assert (second.acks, second.confirms, second.confirmed_fires) == (0, 1, 1)
    assert second.confirm_s_sum == pytest.approx(51 * 60)


def test_an_hour_with_nothing_is_all_zeros(
    db: psycopg.Connection[Any], rollups: Rollups, hour: datetime
) -> None:
    (r,) = hours(rollups, db, city.PANEL, hour, now=hour + H)
    assert r == Rollup(Tier.DEVICE, city.PANEL, Grain.HOUR, hour)
