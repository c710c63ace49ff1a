"""The conformance report through the real pipeline: good and bad messages published to a
real broker, stored or dead-lettered by a real ingest worker, read back and judged
(firewatch/storage/conformance.py, firewatch/core/conformance.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from firewatch.core.conformance import check
from firewatch.core.conformance_report import Level, Limits, SeqGap
from firewatch.core.settings import Settings
from firewatch.storage import conformance as store
from tests.builders.city import WATER, WATER_TOPIC
from tests.builders.payloads import now_iso, water
from tests.helpers import ThreadedIngest, publish_all, scalar, wait_until


def test_a_device_with_bad_messages_gets_them_explained(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    wrong_type = orjson.dumps({"seq": 4, "ts": now_iso(), "pressure_kpa": "300"})
    too_high = orjson.dumps({"seq": 5, "ts": now_iso(), "pressure_kpa": 20_000.0})
    stream = [
        (WATER_TOPIC, water(1)),
        (WATER_TOPIC, water(2)),
        (WATER_TOPIC, water(3)),
        (WATER_TOPIC, wrong_type),
        (WATER_TOPIC, too_high),
        (WATER_TOPIC, b"\x00\x01 binary"),
        (WATER_TOPIC, water(6)),
    ]
    with ThreadedIngest(mqtt_settings):
        publish_all(mqtt_settings.mqtt_url or "", stream)
        wait_until(
            lambda: (
                scalar(db, "SELECT count(*) FROM telemetry") == 4
                and scalar(db, "SELECT count(*) FROM dead_letters") == 3
            ),
            30,
            "rows stored and dead letters committed",
        )
    until = datetime.now(UTC) + timedelta(seconds=1)
    seen = store.traffic(
        db,
        WATER,
        since,
        until,
        topic_root=mqtt_settings.topic_root,
        max_backlog=timedelta(days=7),
        max_ahead=timedelta(minutes=5),
    )
    device = store.device(db, WATER)
    assert device is not None
    report = check(
        device,
        seen.messages,
        seen.dead_letters,
        since,
        until,
        Limits.of(mqtt_settings),
    )
    assert report.channels[0].messages == 4
    assert report.sequence[0].gaps == [SeqGap(4, 5, 2)]  # both refused, none lost
    assert {(r.reason, r.count) for r in report.dead_letter_reasons} == {
        ("wrong_type", 1),
        ("out_of_range", 1),
        ("not_json", 1),
    }
    problems = [f.text for f in report.findings if f.level is Level.PROBLEM]
    assert len(problems) == 3
    assert any(
        p.startswith("1 dead letter: wrong_type ×1 — a field has the wrong") for p in problems
    )
    assert not report.conforms
