"""The alerting worker on a real PostgreSQL: anomaly episodes become alerts (dedup,
correlation of fire alarms in one zone, auto-resolution), restarts resume from the cursor,
escalation and offline checks run on the injected clock; and, end to end over a real
Mosquitto, a panel's fire event becomes an alert."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from firewatch.alerting.decide import zone_of
from firewatch.alerting.service import AlertingService
from firewatch.analytics.service import AnalyticsService
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity
from firewatch.core.settings import Settings
from firewatch.storage.anomalies import upsert_anomalies
from tests.builders import city
from tests.builders.alerts import anomaly
from tests.builders.payloads import panel_event
from tests.helpers import FakeClock, ThreadedIngest, ThreadedService, publish_all, scalar

PANEL, WATER = city.PANEL, city.WATER


def episode(
    device: str,
    kind: str,
    start: float,
    *,
    component: str = "",
    ended: float | None = None,
    severity: Severity = Severity.MEDIUM,
    detector: str = "rule.x",
    revision: int = 1,
    text: str = "",
) -> Anomaly:
    """A reported episode of ``kind``, as the alerting worker reads them."""
    return anomaly(
        device,
        start,
        kind=kind,
        detector=detector,
        metric="status",
        component=component,
        origin=Origin.REPORTED,
        severity=severity,
        score=0.9,
        last_at=ended or start + 1,
        ended_at=ended,
        revision=revision,
        explanation=text or f"{kind} at {component or device}",
    )


def alerts(db: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT type, device_id, state, occurrences, severity FROM alerts ORDER BY id"
    ).fetchall()


@pytest.fixture
def worker(db: psycopg.Connection[Any], settings: Settings) -> Iterator[ThreadedService]:
    assert settings.database_url
    clock = FakeClock(time.time())
    svc = AlertingService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "alerting") as t:
        yield t


def test_episodes_become_alerts_with_repeats_and_auto_resolution(
    db: psycopg.Connection[Any], worker: ThreadedService
) -> None:
    t0 = time.time() - 600
    upsert_anomalies(db, [episode(WATER, "low_pressure", t0, severity=Severity.HIGH)])
    worker.wait(lambda: len(alerts(db)) == 1, 10, "the alert")
    assert alerts(db) == [("low_pressure", WATER, "open", 1, "high")]
    # a second episode of the same problem while the alert is active: one alert, 2 times
    upsert_anomalies(db, [episode(WATER, "low_pressure", t0 + 60, detector="rule.y")])
    worker.wait(lambda: alerts(db)[0][3] == 2, 10, "the repeat")
    assert len(alerts(db)) == 1
    # both episodes end: the condition cleared, the alert resolves itself, audited
    upsert_anomalies(
        db, [episode(WATER, "low_pressure", t0, severity=Severity.HIGH, ended=t0 + 100, revision=2)]
    )
    worker.wait(
        lambda: scalar(db, "SELECT count(*) FROM anomalies WHERE ended_at IS NULL") == 1,
        10,
        "first end",
    )
    assert alerts(db)[0][2] == "open"  # one episode still open: not yet
    upsert_anomalies(
        db, [episode(WATER, "low_pressure", t0 + 60, detector="rule.y", ended=t0 + 200, revision=2)]
    )
    worker.wait(lambda: alerts(db)[0][2] == "resolved", 10, "auto-resolution")
    note = scalar(db, "SELECT note FROM alert_transitions WHERE action = 'resolve'")
    assert note.startswith("condition cleared")
    assert scalar(db, "SELECT actor FROM alert_transitions WHERE action = 'resolve'") == "system"
    # evidence links both episodes
    assert scalar(db, "SELECT count(*) FROM alert_evidence") == 2


def test_fire_alarms_are_not_auto_resolved(
    db: psycopg.Connection[Any], worker: ThreadedService
) -> None:
    t0 = time.time() - 60
    upsert_anomalies(
        db,
        [
            episode(
                PANEL, "fire_alarm", t0, component="smoke detector 1004", severity=Severity.CRITICAL
            )
        ],
    )
    worker.wait(lambda: len(alerts(db)) == 1, 10, "the fire alert")
    cleared = episode(
        PANEL,
        "fire_alarm",
        t0,
        component="smoke detector 1004",
        severity=Severity.CRITICAL,
        ended=t0 + 30,
        revision=2,
    )
    upsert_anomalies(db, [cleared])
    worker.wait(lambda: scalar(db, "SELECT condition_active FROM alerts") is False, 10, "clear")
    assert alerts(db) == [("fire_alarm", PANEL, "open", 1, "critical")]


def test_two_detectors_of_one_zone_make_one_likely_real_fire(
    db: psycopg.Connection[Any], worker: ThreadedService
) -> None:
    db.execute(
        'UPDATE devices SET metadata = metadata || \'{"detectors_per_loop": 16,'
        ' "zones_per_loop": 4}\'::jsonb WHERE id = %s',
        (PANEL,),
    )
    layout = {"detectors_per_loop": 16, "zones_per_loop": 4}
    assert zone_of("point smoke detector 2001", layout) == zone_of("smoke detector 2004", layout)
    assert zone_of("smoke detector 2001", layout) != zone_of("smoke detector 1009", layout)
    assert zone_of("smoke detector 2001", {}) == "panel"
    t0 = time.time() - 60
    # restart the worker's view of the registry: a fresh worker reads metadata at start
    worker.stop()
    svc = AlertingService(worker.service.settings, worker.service.conninfo)
    with ThreadedService(svc, "alerting") as w:
        upsert_anomalies(
            db,
            [
                episode(
                    PANEL,
                    "fire_alarm",
                    t0,
                    component="smoke detector 2001",
                    severity=Severity.CRITICAL,
                )
            ],
        )
        w.wait(lambda: len(alerts(db)) == 1, 10, "first alarm")
        # another zone of the same panel: a separate problem, no correlation
        upsert_anomalies(
            db,
            [
                episode(
                    PANEL,
                    "fire_alarm",
                    t0 + 5,
                    component="smoke detector 1009",
                    severity=Severity.CRITICAL,
                )
            ],
        )
        w.wait(lambda: alerts(db)[0][3] == 2, 10, "counted on the panel's fire alarm")
        upsert_anomalies(
            db,
            [
                episode(
                    PANEL,
                    "fire_alarm",
                    t0 + 20,
                    component="smoke detector 2004",
                    severity=Severity.CRITICAL,
                )
            ],
        )
        w.wait(lambda: len(alerts(db)) == 2, 10, "the correlated alert")
        rows = alerts(db)
        assert rows[0][:3] == ("fire_alarm", PANEL, "merged")
        assert rows[1][:3] == ("likely_real_fire", PANEL, "open")
        assert rows[1][4] == "critical"
        active = db.execute("SELECT type, explanation FROM alerts WHERE state = 'open'").fetchall()
        assert len(active) == 1
        assert "2 detectors in fire in loop 2 zone 1" in active[0][1]
        parent = scalar(db, "SELECT parent_id FROM alerts WHERE type = 'fire_alarm'")
        assert parent == scalar(db, "SELECT id FROM alerts WHERE type = 'likely_real_fire'")
        # a later alarm of that panel joins the likely real fire
        upsert_anomalies(
            db,
            [
                episode(
                    PANEL,
                    "fire_alarm",
                    t0 + 40,
                    component="smoke detector 2003",
                    severity=Severity.CRITICAL,
                )
            ],
        )
        w.wait(lambda: alerts(db)[1][3] == 2, 10, "joined")
        assert len(alerts(db)) == 2


def test_a_restart_resumes_from_the_cursor(db: psycopg.Connection[Any], settings: Settings) -> None:
    assert settings.database_url
    t0 = time.time() - 300
    upsert_anomalies(db, [episode(WATER, "low_pressure", t0)])
    with ThreadedService(AlertingService(settings, settings.database_url), "a") as a:
        a.wait(lambda: len(alerts(db)) == 1, 10, "alert")
    events = scalar(db, "SELECT count(*) FROM alert_events")
    upsert_anomalies(db, [episode(WATER, "low_pressure", t0 + 30, detector="rule.y")])
    with ThreadedService(AlertingService(settings, settings.database_url), "b") as b:
        b.wait(lambda: alerts(db)[0][3] == 2, 10, "the new episode")
        stats = b.stop()
    assert stats.changes == 1  # only what came after the saved cursor
    assert len(alerts(db)) == 1
    assert scalar(db, "SELECT count(*) FROM alert_events") == events + 1


def test_escalation_and_offline_run_on_the_injected_clock(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    assert settings.database_url
    now = time.time()
    clock = FakeClock(now)
    upsert_anomalies(db, [episode(PANEL, "panel_fault", now - 5)])
    db.execute(
        "INSERT INTO device_last_seen VALUES (%s, %s)",
        (WATER, datetime.fromtimestamp(now - 10, UTC)),
    )
    svc = AlertingService(settings, settings.database_url, clock=clock)
    with ThreadedService(svc, "alerting") as w:
        w.wait(lambda: len(alerts(db)) == 1, 10, "the fault alert")
        assert scalar(db, "SELECT escalation_level FROM alerts") == 0
        clock.now = now + settings.alert_ack_timeout_s["medium"] + 1
        # nobody is on duty: the operators' and the shift leader's levels pass at once to
        # the medium ladder's last one, the supervisor
        w.wait(
            lambda: (
                scalar(db, "SELECT escalation_level FROM alerts WHERE type = 'panel_fault'") == 3
            ),
            10,
            "escalation",
        )
        assert scalar(db, "SELECT severity FROM alerts WHERE type = 'panel_fault'") == "medium"
        assert scalar(db, "SELECT count(*) FROM outbox WHERE channel = 'supervisor'") == 1
        # the water device has been silent for longer than its kind's limit by now
        w.wait(
            lambda: scalar(db, "SELECT count(*) FROM alerts WHERE type = 'device_offline'") == 1,
            10,
            "offline",
        )
        db.execute(
            "UPDATE device_last_seen SET last_rx = %s",
            (datetime.fromtimestamp(clock.now + 1, UTC),),
        )
        clock.now += 2
        w.wait(
            lambda: (
                scalar(db, "SELECT state FROM alerts WHERE type = 'device_offline'") == "resolved"
            ),
            10,
            "back online",
        )


def test_a_fire_event_over_mqtt_becomes_an_alert(
    db: psycopg.Connection[Any], mqtt_settings: Settings
) -> None:
    conninfo = mqtt_settings.database_url
    assert conninfo
    assert mqtt_settings.mqtt_url
    event = panel_event(1, 0b11)  # a fire alarm of point smoke detector 1004
    with (
        ThreadedIngest(mqtt_settings),
        ThreadedService(AnalyticsService(mqtt_settings, conninfo), "analytics"),
        ThreadedService(AlertingService(mqtt_settings, conninfo), "alerting") as w,
    ):
        publish_all(mqtt_settings.mqtt_url, [(city.topic(PANEL, "event"), event)])
        w.wait(lambda: len(alerts(db)) == 1, 20, "the fire alert")
    (row,) = alerts(db)
    assert row == ("fire_alarm", PANEL, "open", 1, "critical")
    assert scalar(db, "SELECT count(*) FROM alert_evidence") == 1


def test_an_anomaly_row_alerting_cannot_handle_is_recorded_and_skipped(
    db: psycopg.Connection[Any], worker: ThreadedService
) -> None:
    """Issue 9: every reader survives any row the database can hold. Two anomaly changes
    only a direct write could make (times at -infinity and in 1 BC, which Python cannot
    even load) before a normal one: the normal one becomes an alert, the two are recorded,
    and the poisoned panel episode raises nothing."""
    t0 = time.time() - 600
    upsert_anomalies(db, [episode(WATER, "low_pressure", t0, severity=Severity.HIGH)])
    worker.wait(lambda: len(alerts(db)) == 1, 10, "the first alert")
    db.execute(
        "UPDATE anomalies SET detected_at = '-infinity', change_xid = txid_current()"
        " WHERE device_id = %s",
        (WATER,),
    )
    with db.transaction():  # poisoned from its first committed version
        upsert_anomalies(db, [episode(PANEL, "fault", t0, component="loop 1")])
        db.execute(
            "UPDATE anomalies SET started_at = '0001-01-01T00:00:00+01:00' WHERE device_id = %s",
            (PANEL,),
        )
    upsert_anomalies(db, [episode("D-WD-001-W2", "low_pressure", t0, detector="rule.z")])
    worker.wait(lambda: len(alerts(db)) == 2, 10, "the alert after the poison")
    worker.wait(lambda: scalar(db, "SELECT count(*) FROM skipped_rows") == 2, 10, "recorded")
    reasons = [r for (r,) in db.execute("SELECT reason FROM skipped_rows ORDER BY id")]
    assert reasons[0].startswith("detected_at 0001-01-01")
    assert reasons[1].startswith("started_at 0001-01-01")
    assert all("not a plausible time" in r for r in reasons)
    assert worker.stop().skipped == 2
    assert {a[1] for a in alerts(db)} == {WATER, "D-WD-001-W2"}  # the panel raised nothing
