"""The gateway's events end to end (issue 17): a duty check (查岗) nobody answered, published
over a real broker, is stored by ingest, becomes a ``duty_check_missed`` episode in
analytics and an *offline*-category alert, which resolves itself once a later duty check is
answered in time; a fault of the transmission device's line is a *fault* alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.alerting.service import AlertingService
from firewatch.analytics.service import AnalyticsService
from firewatch.core.settings import Settings
from tests.builders import city
from tests.builders.payloads import gbt_event
from tests.helpers import ThreadedIngest, ThreadedService, publish_all, scalar, stored_episodes

TOPIC = city.topic(city.PANEL, "event")


def alert(db: psycopg.Connection[Any], type_: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT category, severity, state, explanation FROM alerts WHERE type = %s", (type_,)
    ).fetchone()


def duty(seq: int, status: int, asked: datetime, answered: datetime | None) -> bytes:
    at = answered or asked + timedelta(minutes=10)
    detail = {
        "asked_at": asked.isoformat(),
        "answered_at": answered.isoformat() if answered else None,
        "timeout_s": 600,
        "requested_by": "schedule",
        "request_id": seq,
    }
    return gbt_event(seq, "duty_check", status, at.isoformat(), detail=detail)


def test_a_missed_duty_check_is_an_offline_alert_until_one_is_answered(
    db: psycopg.Connection[Any], mqtt_settings: Settings
) -> None:
    conninfo, url = mqtt_settings.database_url, mqtt_settings.mqtt_url
    assert conninfo
    assert url
    asked = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    with (
        ThreadedIngest(mqtt_settings),
        ThreadedService(AnalyticsService(mqtt_settings, conninfo), "analytics"),
        ThreadedService(AlertingService(mqtt_settings, conninfo), "alerting") as w,
    ):
        publish_all(url, [(TOPIC, duty(1, 0b00, asked, None))])
        w.wait(lambda: alert(db, "duty_check_missed") is not None, 20, "the duty alert")
        category, severity, state, text = alert(db, "duty_check_missed") or ()
        assert (category, severity, state) == ("offline", "high", "open")
        assert "did not answer the duty check (查岗)" in text
        assert f"asked at {asked.isoformat()} within 10 min" in text
        (ep,) = stored_episodes(db, city.PANEL, "panel.duty_check")
        assert (ep["kind"], ep["component"], ep["ended_at"]) == ("duty_check_missed", "duty", None)
        assert ep["evidence"]["detail"]["request_id"] == 1

        # a fault of the UITD's line to the panel: a fault alert, medium
        line_fault = gbt_event(2, "transmission_status", 0b1 | 1 << 6, asked.isoformat())
        publish_all(url, [(TOPIC, line_fault)])
        w.wait(lambda: alert(db, "transmission_fault") is not None, 20, "the line alert")
        assert (alert(db, "transmission_fault") or ())[:3] == ("fault", "medium", "open")

        # the next duty check is answered within its timeout: the condition clears
        later = asked + timedelta(minutes=20)
        publish_all(url, [(TOPIC, duty(3, 0b01, later, later + timedelta(minutes=2)))])
        w.wait(
            lambda: (alert(db, "duty_check_missed") or ("",) * 3)[2] == "resolved",
            20,
            "auto-resolution",
        )
    assert scalar(db, "SELECT count(*) FROM events WHERE detail IS NOT NULL") == 2
    (ep,) = stored_episodes(db, city.PANEL, "panel.duty_check")
    assert ep["ended_at"] == later + timedelta(minutes=2)
