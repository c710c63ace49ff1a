"""A live simulation through a real broker into ingest and PostgreSQL: each labelled fault
leaves its signature in the stored data at the labelled time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.simulators.engine import Simulation, scenario_window
from firewatch.simulators.scenario import FaultSpec, IntervalsSpec, MixSpec, Scenario
from firewatch.simulators.sinks import publish_mqtt
from firewatch.storage.seed import load_seed
from tests.helpers import ThreadedIngest, scalar, wait_until

pytestmark = pytest.mark.slow


def test_labelled_faults_show_up_in_the_database_at_their_times(
    mqtt_settings: Settings, database_url: str
) -> None:
    sc = Scenario(
        name="e2e",
        start="auto",
        duration=7200,
        speedup=600,
        mix=MixSpec(water_points=1, tank_fraction=0, pump_room_fraction=0, shed_fraction=0),
        intervals=IntervalsSpec(water=60, panel_status=300, status=3600),
        faults=[
            FaultSpec(type="pipe_burst", device="random:water", at=1800, duration=1200),
            FaultSpec(type="malformed_payload", device="random:water", at=600, duration=1200),
            FaultSpec(type="offline_with_will", device="random:panel", at=2400, duration=1800),
            FaultSpec(type="real_fire_cascade", device="random:panel", at=4800, duration=900),
        ],
    )
    start, end = scenario_window(sc, live=True)
    sim = Simulation(sc, start=start, end=end, units=4)
    labels = {lb.fault: lb for lb in sim.labels}
    with psycopg.connect(database_url, autocommit=True) as db:
        load_seed(db, sim.city)
        with ThreadedIngest(mqtt_settings) as ingest:
            result = publish_mqtt(sim, mqtt_settings.mqtt_url or "", threading.Event(), sc.speedup)
            expected = result.messages  # wills included: the broker publishes them
            wait_until(lambda: ingest.service.stats.received >= expected, 60, "all messages")
        check(db, labels)


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def check(db: psycopg.Connection[Any], labels: dict[str, Any]) -> None:
    burst = labels["pipe_burst"]
    before = scalar(
        db,
        "SELECT avg(pressure_kpa) FROM telemetry WHERE device_id = %s AND ts < %s",
        burst.device_id,
        _ts(burst.start),
    )
    during = scalar(
        db,
        "SELECT min(pressure_kpa) FROM telemetry WHERE device_id = %s AND ts >= %s AND ts < %s",
        burst.device_id,
        _ts(burst.start),
        _ts(burst.end),
    )
    assert during < 0.5 * before, "a burst drops the pressure by more than half"

    bad = labels["malformed_payload"]
    rows = db.execute(
        "SELECT received_at, reason FROM dead_letters WHERE topic LIKE %s",
        (f"%/{bad.device_id}/%",),
    ).fetchall()
    assert rows, "malformed payloads are dead letters"
    assert (
        scalar(
            db, "SELECT count(*) FROM dead_letters WHERE topic NOT LIKE %s", f"%/{bad.device_id}/%"
        )
        == 0
    )

    will = labels["offline_with_will"]
    statuses = db.execute(
        "SELECT state, seq, reason FROM device_status WHERE device_id = %s ORDER BY received_at",
        (will.device_id,),
    ).fetchall()
    assert ("offline", 0, "will") in statuses, "the broker published the last will"
    assert statuses[-1][0] == "online" or statuses[-1][2] == "shutdown"

    fire = labels["real_fire_cascade"]
    detectors = fire.details["detectors"]
    fires = db.execute(
        "SELECT ts, component_addr FROM events WHERE device_id = %s AND 'fire' = ANY(flags)"
        " AND event_type = 'component_status' AND component_addr = ANY(%s) ORDER BY ts",
        (fire.device_id, detectors),
    ).fetchall()
    assert [addr for _, addr in fires] == detectors, "the zone's detectors alarm in sequence"
    assert all(_ts(fire.start) <= ts < _ts(fire.end) for ts, _ in fires)
