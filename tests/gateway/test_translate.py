"""Information objects -> contract messages (no broker, no database): the payload of each
type, times in UTC, clock sanity, and what does not validate kept as raw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from firewatch.core.contract import PanelEvent
from firewatch.core.gbt_frame import Frame
from firewatch.core.gbt_objects import InfoObject, decode_adu
from firewatch.core.gbt_profiles import STANDARD, Profile, load_profiles
from firewatch.core.settings import Settings
from firewatch.gateway.translate import (
    DUTY_SEQ_BASE,
    ClockLimits,
    duty_check_event,
    translate_frame,
)

RECEIVED = datetime(2024, 5, 1, 2, 0, 30, tzinfo=UTC)  # 10:00:30 in China
LOCAL = datetime(2024, 5, 1, 10, 0, 0)  # the device's clock
LIMITS = ClockLimits(future_s=300, backlog_s=7 * 86_400)


def _frame(serial: int = 3, time: datetime | None = LOCAL) -> Frame:
    return Frame(serial, (1, 0), time, 0xA1, 0, 2, b"")


def _one(
    obj: InfoObject, frame: Frame | None = None, profile: Profile = STANDARD
) -> dict[str, object]:
    [out] = translate_frame(
        frame or _frame(),
        [obj],
        unit_id="U-1",
        device_id="D-1",
        profile=profile,
        root="firewatch/v1",
        received=RECEIVED,
        limits=LIMITS,
    )
    assert out.topic == "firewatch/v1/U-1/D-1/event"
    PanelEvent.model_validate_json(out.payload)
    payload: dict[str, object] = orjson.loads(out.payload)
    return payload


def test_a_component_status_has_every_field_and_utc_time() -> None:
    adu = (
        bytes([2, 1, 1, 2, 21, 7, 0, 0, 0, 0b11, 0])
        + "3楼烟感".encode("gb18030").ljust(31, b"\0")
        + bytes([0, 0, 10, 1, 5, 24])
    )
    [obj] = decode_adu(adu)
    assert _one(obj) == {
        "seq": 3 * 256 + 1,
        "ts": "2024-05-01T02:00:00Z",
        "type": "component_status",
        "system_type": 1,
        "system_addr": 2,
        "component_type": 21,
        "component_addr": 7,
        "status": 0b11,
        "description": "3楼烟感",
    }


def test_a_vendor_component_code_gets_the_profiles_name() -> None:
    profile = load_profiles()["xor-checksum"]  # 201 = "vendor gas detector"
    adu = bytes([2, 1, 1, 2, 201, 7, 0, 0, 0, 0b11, 0]) + bytes(31) + bytes([0, 0, 10, 1, 5, 24])
    [obj] = decode_adu(adu, profile)
    assert _one(obj, profile=profile)["detail"] == {"component_name": "vendor gas detector"}
    # the standard profile knows no code 201: no name is made up
    assert "detail" not in _one(decode_adu(adu)[0])


def test_an_analog_value_carries_its_detail() -> None:
    [obj] = decode_adu(bytes([3, 1, 1, 1, 30, 9, 0, 0, 0, 5, 0xE8, 0x03, 0, 0, 10, 1, 5, 24]))
    payload = _one(obj)
    assert payload["type"] == "analog"
    assert payload["detail"] == {
        "analog_type": 5,
        "quantity": "pressure",
        "value": 100.0,
        "unit": "kPa",
        "raw": 1000,
    }


def test_an_object_without_a_time_takes_the_frame_time_and_its_index() -> None:
    objs = [InfoObject(25, "transmission_version", detail={"version": "2.1"})] * 2
    out = translate_frame(
        _frame(serial=1),
        objs,
        unit_id="U-1",
        device_id="D-1",
        profile=STANDARD,
        root="r",
        received=RECEIVED,
        limits=LIMITS,
    )
    payloads = [orjson.loads(o.payload) for o in out]
    assert [p["seq"] for p in payloads] == [257, 258]
    assert {p["ts"] for p in payloads} == {"2024-05-01T02:00:00Z"}


@pytest.mark.parametrize(
    "device_time", [LOCAL + timedelta(minutes=10), LOCAL - timedelta(days=8), None]
)
def test_a_device_time_too_far_off_is_replaced_by_the_receive_time(
    device_time: datetime | None,
) -> None:
    obj = InfoObject(21, "transmission_status", status=1, time=device_time)
    [out] = translate_frame(
        _frame(time=device_time),
        [obj],
        unit_id="U-1",
        device_id="D-1",
        profile=STANDARD,
        root="r",
        received=RECEIVED,
        limits=LIMITS,
    )
    assert out.skewed
    payload = orjson.loads(out.payload)
    assert payload["ts"] == "2024-05-01T02:00:30Z"
    expected = None if device_time is None else f"{(device_time - timedelta(hours=8)).isoformat()}Z"
    assert payload["detail"] == {"device_time": expected}


def test_the_profile_says_the_clock_zone() -> None:
    utc_device = Profile("utc", utc_offset_minutes=0)
    [out] = translate_frame(
        _frame(),
        [InfoObject(1, "system_status", system_type=1, status=1, time=datetime(2024, 5, 1, 2))],
        unit_id="U-1",
        device_id="D-1",
        profile=utc_device,
        root="r",
        received=RECEIVED,
        limits=LIMITS,
    )
    assert orjson.loads(out.payload)["ts"] == "2024-05-01T02:00:00Z"


def test_what_does_not_validate_is_published_as_raw_with_the_reason() -> None:
    bad = InfoObject(2, "component_status", 1, 1, 21, 7, status=1, description="a\x00b", time=LOCAL)
    payload = _one(bad)
    assert payload["type"] == "raw"
    detail = payload["detail"]
    assert isinstance(detail, dict)
    assert "description" in detail["reason"]
    assert detail["kind"] == "component_status"
    assert detail["type_flag"] == 2
    assert '"component_addr": 7' in detail["original"]


def test_a_center_only_type_from_a_device_is_raw() -> None:
    payload = _one(InfoObject(91, "duty_check", detail={"timeout_min": 10}))
    assert payload["type"] == "raw"


def test_a_duty_check_event_validates() -> None:
    payload = duty_check_event(
        request_id=42,
        decided_at=RECEIVED,
        status=3,
        asked_at=RECEIVED - timedelta(minutes=20),
        answered_at=RECEIVED,
        timeout_s=600.0,
        requested_by="schedule",
    )
    event = PanelEvent.model_validate_json(payload)
    assert event.seq == DUTY_SEQ_BASE + 42  # never a frame object's seq (< 2**24)
    assert orjson.loads(payload)["detail"] == {
        "asked_at": "2024-05-01T01:40:30Z",
        "answered_at": "2024-05-01T02:00:30Z",
        "timeout_s": 600.0,
        "requested_by": "schedule",
        "request_id": 42,
    }


def test_the_gateway_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREWATCH_GATEWAY_PORT", "9999")
    monkeypatch.setenv("FIREWATCH_GATEWAY_DUTY_ANSWER_TIMEOUT_S", "120")
    monkeypatch.setenv("FIREWATCH_GATEWAY_MQTT_USERNAME", "gw-001")
    s = Settings()
    assert (s.gateway_port, s.gateway_duty_answer_timeout_s) == (9999, 120.0)
    assert s.gateway_mqtt_username == "gw-001"
    assert s.gateway_duty_check_every_s == 7200.0
    monkeypatch.setenv("FIREWATCH_GATEWAY_DUTY_CHECK_EVERY_S", "7201")  # GB 50440: ≤ 2 h
    with pytest.raises(ValueError, match="gateway_duty_check_every_s"):
        Settings()
