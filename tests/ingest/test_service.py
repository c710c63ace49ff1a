"""Ingest end to end over a real Mosquitto into a real PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import psycopg
import pytest

from firewatch.core.settings import Settings
from tests.builders.city import WATER_TOPIC
from tests.builders.payloads import panel_event, sparse_water, water
from tests.helpers import ThreadedIngest, day_container, publish_all, scalar, wait_until

PANEL = "firewatch/v1/U-WD-001/D-WD-001-P1"
SHED = "firewatch/v1/U-WD-001/D-WD-001-E1"


def test_each_kind_is_stored_with_values_and_times_intact(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    ts = datetime.now(UTC).replace(microsecond=123000) - timedelta(minutes=5)
    iso = ts.isoformat().replace("+00:00", "Z")
    shed = {
        "seq": 7,
        "ts": iso,
        "ambient_c": 18.5,
        "smoke": False,
        "ports": [
            {"port": 2, "temp_c": 41.25, "current_a": 2.5, "charging": True},
            {"port": 1, "temp_c": 20.0, "current_a": 0.0, "charging": False},
        ],
    }
    fire = panel_event(
        9, 0b11, iso, component_type=40, component_addr=1001, description="3F east smoke detector"
    )
    status = {"seq": 3, "ts": iso, "state": "online", "firmware": "2.1.0", "battery_pct": 88}
    with ThreadedIngest(mqtt_settings) as ingest:
        publish_all(
            mqtt_settings.mqtt_url or "",
            [
                (WATER_TOPIC, water(1, 312.5, iso)),
                (f"{SHED}/telemetry", orjson.dumps(shed)),
                (f"{PANEL}/event", fire),
                (f"{PANEL}/status", orjson.dumps(status)),
            ],
        )
        wait_until(
            lambda: (
                scalar(db, "SELECT count(*) FROM telemetry") == 2
                and scalar(db, "SELECT count(*) FROM events") == 1
                and scalar(db, "SELECT count(*) FROM device_status") == 1
            ),
            20,
            "rows",
        )
        stats = ingest.stop()
    assert stats.received == 4
    assert stats.dead_letters == 0

    w = db.execute(
        "SELECT seq, ts, pressure_kpa, level_m, pump_running, jockey_running,"
        " room_temp_c, received_at FROM telemetry WHERE device_id = 'D-WD-001-W1'"
    ).fetchone()
    assert w is not None
    assert w[:7] == (1, ts, 312.5, 3.5, False, True, 12.5)
    assert w[7] > ts  # server receive time recorded separately from device time

    s = db.execute(
        "SELECT ambient_c, smoke, port_no, port_temp_c, port_current_a, port_charging"
        " FROM telemetry WHERE device_id = 'D-WD-001-E1'"
    ).fetchone()
    assert s == (18.5, False, [1, 2], [20.0, 41.25], [0.0, 2.5], [False, True])

    e = db.execute(
        "SELECT event_type, component_type, component_addr, status_word, flags,"
        " description, ts FROM events"
    ).fetchone()
    assert e == ("component_status", 40, 1001, 3, ["fire"], "3F east smoke detector", ts)

    st = db.execute(
        "SELECT state, firmware, battery_pct FROM device_state WHERE device_id = 'D-WD-001-P1'"
    ).fetchone()
    assert st == ("online", "2.1.0", 88.0)


def _bad_cases() -> list[tuple[str, str, bytes, str]]:
    now = datetime.now(UTC)
    w = partial(sparse_water, now.isoformat())

    return [
        ("not_json", WATER_TOPIC, b"{pressure: 3", "not_json"),
        ("binary", WATER_TOPIC, b"\xff\xfe\x00", "not_json"),
        ("array", WATER_TOPIC, b"[1, 2]", "wrong_type"),
        ("string_number", WATER_TOPIC, w(pressure_kpa="300"), "wrong_type"),
        ("bool_as_int", WATER_TOPIC, w(pump_running=1), "wrong_type"),
        ("missing_seq", WATER_TOPIC, w(seq=...), "missing_field"),
        ("missing_pressure", WATER_TOPIC, w(pressure_kpa=...), "missing_field"),
        (
            "nan",
            WATER_TOPIC,
            b'{"seq": 1, "ts": "%s", "pressure_kpa": NaN}' % now.isoformat().encode(),
            "not_finite",
        ),
        (
            "inf",
            WATER_TOPIC,
            b'{"seq": 1, "ts": "%s", "pressure_kpa": Infinity}' % now.isoformat().encode(),
            "not_finite",
        ),
        ("out_of_range", WATER_TOPIC, w(pressure_kpa=99_999.0), "out_of_range"),
        ("negative_seq", WATER_TOPIC, w(seq=-1), "out_of_range"),
        ("future", WATER_TOPIC, w(ts=(now + timedelta(hours=2)).isoformat()), "ts_in_future"),
        ("too_old", WATER_TOPIC, w(ts=(now - timedelta(days=30)).isoformat()), "ts_too_old"),
        ("naive_ts", WATER_TOPIC, w(ts=now.replace(tzinfo=None).isoformat()), "invalid"),
        ("oversized", WATER_TOPIC, w(pad="x" * 70_000), "oversized"),
        ("unknown_device", "firewatch/v1/U-WD-001/NOPE-1/telemetry", w(), "unknown_device"),
        ("wrong_unit", "firewatch/v1/U-JA-001/D-WD-001-W1/telemetry", w(), "topic_mismatch"),
        ("payload_device", WATER_TOPIC, w(device_id="D-OTHER"), "topic_mismatch"),
        ("wrong_channel", "firewatch/v1/U-WD-001/D-WD-001-W1/event", w(), "topic_mismatch"),
        ("bad_channel", "firewatch/v1/U-WD-001/D-WD-001-W1/weather", w(), "bad_topic"),
        # 6,000 bytes of topic: more than a btree entry holds (the old dedup key)
        ("long_topic", "firewatch/v1/" + "火" * 2000 + "/D-WD-001-W1/telemetry", w(), "bad_topic"),
        # Issue 9's poison messages: each once stopped ingest or analytics for good.
        ("nul_in_text", STATUS_TOPIC, status(firmware=r"x\u0000y"), "invalid"),
        ("lone_surrogate", STATUS_TOPIC, status(firmware=r"\ud800"), "not_json"),
        (
            "will_at_year_1",
            STATUS_TOPIC,
            status(seq=0, ts="0001-01-01T00:00:00+01:00"),
            "ts_too_old",
        ),
        ("year_9999", WATER_TOPIC, w(ts="9999-12-31T23:59:59-01:00"), "ts_in_future"),
    ]


STATUS_TOPIC = WATER_TOPIC.replace("/telemetry", "/status")


def status(seq: int = 5, ts: str | None = None, firmware: str | None = None) -> bytes:
    """A status payload as raw JSON text (``firmware`` is inserted verbatim, so escapes
    such as ``\\u0000`` reach the JSON parser as written)."""
    body = f'"seq":{seq},"ts":"{ts or datetime.now(UTC).isoformat()}","state":"online"'
    if firmware is not None:
        body += f',"firmware":"{firmware}"'
    return ("{" + body + "}").encode()


def test_every_malformed_message_becomes_one_dead_letter_and_ingest_keeps_running(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    cases = _bad_cases()
    settings = mqtt_settings.model_copy(update={"dead_letter_quota_per_device": 1000})
    with ThreadedIngest(settings):
        publish_all(settings.mqtt_url or "", [(t, p) for _, t, p, _ in cases])
        wait_until(
            lambda: scalar(db, "SELECT count(*) FROM dead_letters") >= len(cases),
            20,
            "dead letters",
        )
        publish_all(settings.mqtt_url or "", [(WATER_TOPIC, water(99))])  # still alive
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 1, 20, "good row")
    rows = db.execute(
        "SELECT topic, payload_sha256, payload, payload_size, reason, detail FROM dead_letters"
    ).fetchall()
    assert len(rows) == len(cases)
    got = {(t, bytes(h)): (bytes(p), n, r, d) for t, h, p, n, r, d in rows}
    cap = settings.dead_letter_payload_cap_bytes
    for name, topic, payload, reason in cases:
        key = (topic, hashlib.sha256(payload).digest())
        assert key in got, f"{name}: no dead letter for these bytes"
        kept, size, actual, detail = got[key]
        assert kept == payload[:cap], f"{name}: raw bytes not kept (up to the cap)"
        assert size == len(payload), f"{name}: size {size} != {len(payload)}"
        assert actual == reason, f"{name}: reason {actual!r} ({detail}), expected {reason!r}"
        assert detail, f"{name}: empty detail"
    assert (
        len(got[(WATER_TOPIC, hashlib.sha256(cases_by_name(cases)["oversized"]).digest())][0])
        == cap
    )


def cases_by_name(cases: list[tuple[str, str, bytes, str]]) -> dict[str, bytes]:
    return {name: payload for name, _t, payload, _r in cases}


def test_duplicate_delivery_stores_one_row(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    msg = water(5)
    with ThreadedIngest(mqtt_settings) as ingest:
        publish_all(mqtt_settings.mqtt_url or "", [(WATER_TOPIC, msg)] * 3)
        wait_until(lambda: ingest.service.stats.received == 3, 20, "three deliveries")
        # The same message again, in a later batch.
        publish_all(mqtt_settings.mqtt_url or "", [(WATER_TOPIC, msg)])
        wait_until(lambda: ingest.service.stats.received == 4, 20, "fourth delivery")
        stats = ingest.stop()
    assert scalar(db, "SELECT count(*) FROM telemetry") == 1
    assert stats.duplicates == 3


def test_device_registered_after_start_is_not_dead_lettered(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    with ThreadedIngest(mqtt_settings):
        db.execute(
            "INSERT INTO devices (id, unit_id, kind) VALUES ('D-NEW-1', 'U-WD-001', 'water')"
        )
        publish_all(
            mqtt_settings.mqtt_url or "", [("firewatch/v1/U-WD-001/D-NEW-1/telemetry", water(1))]
        )
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 1, 20, "row")
    assert scalar(db, "SELECT count(*) FROM dead_letters") == 0


@pytest.mark.parametrize("old_ts_days", [3])
def test_backlogged_readings_land_in_their_day_partition(
    mqtt_settings: Settings, db: psycopg.Connection[Any], old_ts_days: int
) -> None:
    ts = (datetime.now(UTC) - timedelta(days=old_ts_days)).isoformat()
    with ThreadedIngest(mqtt_settings):
        publish_all(mqtt_settings.mqtt_url or "", [(WATER_TOPIC, water(1, ts=ts))])
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 1, 20, "row")
    part = scalar(db, "SELECT tableoid::regclass::text FROM telemetry")
    day = (datetime.now(UTC) - timedelta(days=old_ts_days)).date()
    assert part == day_container(db, "telemetry", day)
    assert "default" not in part


def test_last_will_marks_the_device_offline_even_with_an_old_connect_time(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    connected = datetime.now(UTC) - timedelta(days=30)  # a month-long connection
    online = {
        "seq": 1,
        "ts": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "state": "online",
    }
    will = {"seq": 0, "ts": connected.isoformat(), "state": "offline", "reason": "will"}
    topic = f"{PANEL}/status"
    with ThreadedIngest(mqtt_settings) as ingest:
        publish_all(mqtt_settings.mqtt_url or "", [(topic, orjson.dumps(online))])
        wait_until(lambda: scalar(db, "SELECT count(*) FROM device_state") == 1, 20, "online")
        publish_all(mqtt_settings.mqtt_url or "", [(topic, orjson.dumps(will))])
        wait_until(lambda: scalar(db, "SELECT count(*) FROM device_status") == 2, 20, "will")
        # A redelivered stale "online" must not flip the state back.
        publish_all(mqtt_settings.mqtt_url or "", [(topic, orjson.dumps(online))])
        wait_until(lambda: ingest.service.stats.received == 3, 20, "the redelivery")
    assert scalar(db, "SELECT state FROM device_state WHERE device_id = 'D-WD-001-P1'") == "offline"
    assert scalar(db, "SELECT count(*) FROM dead_letters") == 0
