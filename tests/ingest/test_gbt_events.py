"""Ingest of the GB/T 26875.3 gateway's panel events (issue 17): each new type decodes to a
row with its flags and ``detail``, a bad ``detail`` is a dead letter with the usual reason,
and over a real broker the detail lands in ``events.detail`` as sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.contract import DETAIL_MAX_TEXT
from firewatch.core.domain import DeviceKind
from firewatch.core.rows import DeadLetter, EventRow, Reason
from firewatch.core.settings import Settings
from firewatch.ingest.codec import DeviceInfo, Limits, decode
from tests.builders import city
from tests.builders.payloads import gbt_event
from tests.helpers import ThreadedIngest, publish_all, scalar, wait_until

NOW = datetime(2026, 11, 25, 8, 40, tzinfo=UTC)
TS = (NOW - timedelta(minutes=1)).isoformat()
TOPIC = city.topic(city.PANEL, "event")
LIMITS = Limits(65_536, timedelta(minutes=5), timedelta(days=7), timedelta(days=400))
DUTY = {
    "asked_at": "2026-11-25T08:29:00+00:00",
    "answered_at": None,
    "timeout_s": 600,
    "requested_by": "schedule",
    "request_id": 7,
}


def decoded(payload: bytes) -> EventRow | DeadLetter:
    lookup = {city.PANEL: DeviceInfo(city.UNIT, DeviceKind.PANEL)}.get
    out = decode(TOPIC, payload, NOW, root="firewatch/v1", lookup=lookup, limits=LIMITS)
    assert isinstance(out, EventRow | DeadLetter)
    return out


@pytest.mark.parametrize(
    ("type_", "status", "detail", "flags"),
    [
        ("transmission_status", 0b1 | 1 << 3, None, ["mains_power_fault"]),
        ("transmission_operation", 1 << 2, None, ["manual_alarm"]),
        ("duty_check", 0, DUTY, ["duty_missed"]),
        ("duty_check", 0b11, {**DUTY, "answered_at": "2026-11-25T08:40:00+00:00"}, ["duty_late"]),
        ("analog", 0, {"quantity": "pressure", "value": 312.5, "unit": "kPa", "raw": 3125}, []),
        ("software_version", 0, {"version": "2.3"}, []),
        ("raw", 0, {"type_flag": 27, "hex": "1b01ff"}, []),
    ],
)
def test_new_types_decode_to_rows_with_flags_and_detail(
    type_: str, status: int, detail: dict[str, Any] | None, flags: list[str]
) -> None:
    row = decoded(gbt_event(3, type_, status, TS, detail=detail))
    assert isinstance(row, EventRow), row
    assert (row.event_type, row.status_word, row.flags) == (type_, status, flags)
    assert row.detail == detail


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ({f"k_{chr(97 + i)}": i for i in range(17)}, Reason.OUT_OF_RANGE),
        ({"Bad": 1}, Reason.INVALID),
        ({"a": "x\x00y"}, Reason.INVALID),
        ({"a": "x" * (DETAIL_MAX_TEXT + 1)}, Reason.OUT_OF_RANGE),
        ({"a": [1, 2]}, Reason.WRONG_TYPE),
        ({"a": 2**63}, Reason.OUT_OF_RANGE),
    ],
)
def test_a_bad_detail_is_a_dead_letter(detail: dict[str, Any], reason: Reason) -> None:
    out = decoded(gbt_event(3, "analog", 0, TS, detail=detail))
    assert isinstance(out, DeadLetter)
    assert out.reason is reason, out.detail
    assert out.detail.startswith("detail")


def test_a_nan_in_detail_is_not_finite() -> None:
    payload = gbt_event(3, "analog", 0, TS, detail={"value": 1.0}).replace(b"1.0", b"NaN")
    out = decoded(payload)
    assert isinstance(out, DeadLetter)
    assert out.reason is Reason.NOT_FINITE


def test_a_transmission_byte_over_8_bits_is_invalid() -> None:
    out = decoded(gbt_event(3, "transmission_status", 0x100, TS))
    assert isinstance(out, DeadLetter)
    assert out.reason is Reason.INVALID
    assert "8 bits" in out.detail


def test_detail_is_stored_as_sent(mqtt_settings: Settings, db: psycopg.Connection[Any]) -> None:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    analog = {"analog_type": 5, "quantity": "pressure", "value": 312.5, "unit": "kPa",
              "raw": 3125, "ok": True, "note": "三楼 \U0001f525", "none": None}  # fmt: skip
    messages = [
        (TOPIC, gbt_event(1, "analog", 0, ts.isoformat(), detail=analog)),
        (TOPIC, gbt_event(2, "duty_check", 0, ts.isoformat(), detail=DUTY)),
        (TOPIC, gbt_event(3, "transmission_status", 0b1 | 1 << 6, ts.isoformat())),
    ]
    assert mqtt_settings.mqtt_url
    with ThreadedIngest(mqtt_settings) as ingest:
        publish_all(mqtt_settings.mqtt_url, messages)
        wait_until(lambda: scalar(db, "SELECT count(*) FROM events") == 3, 20, "three events")
        # a redelivery goes through the staging table: it adds nothing, keeps the detail
        publish_all(mqtt_settings.mqtt_url, messages[:1])
        wait_until(lambda: ingest.service.stats.received == 4, 20, "the redelivery")
        stats = ingest.stop()
    assert stats.duplicates == 1
    assert stats.dead_letters == 0
    rows = db.execute(
        "SELECT seq, event_type, flags, detail, jsonb_typeof(detail) FROM events ORDER BY seq"
    ).fetchall()
    assert rows == [
        (1, "analog", [], analog, "object"),
        (2, "duty_check", ["duty_missed"], DUTY, "object"),
        (3, "transmission_status", ["line_fault"], None, None),
    ]
    # numbers keep their JSON kind: an int stays an int, a float a float
    assert scalar(db, "SELECT detail->'raw' FROM events WHERE seq = 1") == 3125
    assert scalar(db, "SELECT jsonb_typeof(detail->'value') FROM events WHERE seq = 1") == "number"
