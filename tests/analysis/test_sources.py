"""What the rollups take from the detectors holds together with the detectors themselves:
the episode names they count, and the thresholds they compare readings with."""

from __future__ import annotations

import inspect
from typing import Any

import psycopg
import pytest

import firewatch.analytics.link as link
from firewatch.analytics.panel import FLAG_EPISODES
from firewatch.analytics.profiles import load_profiles, resolve_thresholds
from firewatch.core.domain import DeviceKind
from firewatch.core.rollups import (
    FAULT_DETECTORS,
    FIRE_DETECTOR,
    ISOLATION_DETECTOR,
    OFFLINE_DETECTORS,
    day_offset_h,
    device_limits,
)
from firewatch.core.settings import Settings
from firewatch.storage.seed import device_profile_rows


def test_the_episodes_counted_are_the_panel_and_link_detectors() -> None:
    panel = {detector: flag for flag, (detector, _, _) in FLAG_EPISODES.items()}
    assert FIRE_DETECTOR in panel
    assert ISOLATION_DETECTOR in panel
    for detector, fault_type in FAULT_DETECTORS.items():
        assert panel[detector] == fault_type
    source = inspect.getsource(link)
    for detector in OFFLINE_DETECTORS:
        assert f'"{detector}"' in source


def test_limits_agree_with_the_detectors_thresholds(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    db.execute(
        'UPDATE devices SET metadata = metadata || \'{"tank_capacity_m": 4, "min_kpa": 120}\''
        " WHERE id = 'D-WD-001-W2'"
    )
    db.execute(
        'UPDATE units SET attributes = \'{"thresholds": {"port_alarm_c": 60}}\''
        " WHERE id = 'U-JA-001'"
    )
    custom = settings.model_copy(update={"analytics_min_pressure_kpa": {"multistorey": 80.0}})
    profiles = load_profiles(db, custom)
    rows = device_profile_rows(db)
    assert len(rows) == len(profiles) > 10
    for r in rows:
        mine = device_limits(
            custom, r.device_id, r.kind, r.building_class, r.metadata, r.thresholds
        )
        theirs = profiles[r.device_id].thresholds
        if r.kind == DeviceKind.WATER:
            assert (mine.min_kpa, mine.tank_low_m) == (theirs.min_kpa, theirs.tank_low_m)
        if r.kind == DeviceKind.EBIKE_SHED:
            assert mine.port_alarm_c == theirs.port_alarm_c
            assert mine.over_current_a == pytest.approx(
                theirs.port_rating_a * theirs.over_current_factor
            )
        assert mine.hold_s == custom.alert_offline_after_s[r.kind]
    assert profiles["D-WD-001-W2"].thresholds.min_kpa == 120.0
    assert profiles["D-JA-001-E1"].thresholds.port_alarm_c == 60.0
    assert resolve_thresholds(custom, DeviceKind.WATER, "multistorey", {}).min_kpa == 80.0


def test_day_offsets_must_be_whole_hours(settings: Settings) -> None:
    assert day_offset_h(settings) == 8
    assert day_offset_h(settings.model_copy(update={"analytics_utc_offset_h": -5.0})) == -5
    with pytest.raises(ValueError, match="whole number of hours"):
        day_offset_h(settings.model_copy(update={"analytics_utc_offset_h": 5.75}))
