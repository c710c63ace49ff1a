"""The panel-event contract for the GB/T 26875.3 gateway (issue 17): the new event types,
the 8-bit words of the transmission device, and the ``detail`` object's rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from firewatch.core.contract import DETAIL_MAX_KEYS, DETAIL_MAX_TEXT, PanelEvent
from firewatch.core.domain import PanelEventType

TS = "2026-11-25T08:31:02Z"


def body(type_: str = "duty_check", status: int = 0, **extra: Any) -> dict[str, Any]:
    return {"seq": 1, "ts": TS, "type": type_, "system_type": 0, "system_addr": 0,
            "status": status, **extra}  # fmt: skip


def parse(payload: dict[str, Any] | str) -> PanelEvent:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return PanelEvent.model_validate_json(text)


def refusal(payload: dict[str, Any] | str) -> tuple[str, str, str]:
    """(error type, location, message) of the first error."""
    with pytest.raises(ValidationError) as err:
        parse(payload)
    first = err.value.errors(include_url=False)[0]
    return str(first["type"]), ".".join(str(p) for p in first["loc"]), str(first["msg"])


NEW_TYPES = [
    "analog", "software_version", "system_config", "component_config", "system_time",
    "transmission_status", "transmission_operation", "transmission_version",
    "transmission_config", "transmission_time", "duty_check", "raw",
]  # fmt: skip


def test_every_new_type_is_a_panel_event_type() -> None:
    assert set(NEW_TYPES) <= {t.value for t in PanelEventType}


@pytest.mark.parametrize("type_", NEW_TYPES)
def test_each_new_type_is_accepted_with_status_0_and_without_detail(type_: str) -> None:
    ev = parse(body(type_))
    assert ev.type is PanelEventType(type_)
    assert ev.status == 0
    assert ev.detail is None


def test_status_stays_required() -> None:
    payload = body("analog")
    del payload["status"]
    assert refusal(payload)[0] == "missing"


@pytest.mark.parametrize("type_", ["transmission_status", "transmission_operation"])
def test_the_transmission_bytes_have_8_bits(type_: str) -> None:
    assert parse(body(type_, 0xFF)).status == 0xFF
    kind, _, msg = refusal(body(type_, 0x100))
    assert kind == "value_error"
    assert msg == f"Value error, a {type_} word has 8 bits"


def test_the_operation_word_keeps_its_message() -> None:
    assert refusal(body("operation", 0x100))[2] == "Value error, an operation word has 8 bits"


@pytest.mark.parametrize("type_", ["duty_check", "analog", "raw"])
def test_the_other_new_types_take_16_bits(type_: str) -> None:
    assert parse(body(type_, 0xFFFF)).status == 0xFFFF
    assert refusal(body(type_, 0x10000))[0] == "less_than_equal"


def test_a_duty_check_event_as_the_gateway_sends_it() -> None:
    detail = {
        "asked_at": "2026-11-25T08:21:02+00:00",
        "answered_at": None,
        "timeout_s": 600,
        "requested_by": "schedule",
        "request_id": 42,
    }
    ev = parse(body("duty_check", 0, detail=detail))
    assert ev.detail == detail


def test_detail_takes_every_value_kind_at_its_limits() -> None:
    detail: dict[str, Any] = {
        "text": "三楼东 " + "x" * (DETAIL_MAX_TEXT - 4),  # characters, not bytes
        "astral": "\U0001f525" * DETAIL_MAX_TEXT,
        "empty": "",
        "true": True,
        "false": False,
        "zero": 0,
        "big": 2**63 - 1,
        "small": -(2**63),
        "float": 0.1,
        "huge": 1.7e308,
        "tiny": 5e-324,
        "nothing": None,
        "a" * 32: 1,
        "_": "underscore",
        "value": 101.3,
        "unit": "kPa",
    }
    assert len(detail) == DETAIL_MAX_KEYS
    ev = parse(body("analog", detail=detail))
    assert ev.detail == detail
    assert type(ev.detail["true"]) is bool
    assert type(ev.detail["zero"]) is int
    assert type(ev.detail["float"]) is float
    assert parse(body("analog", detail={})).detail == {}
    assert parse(body("analog", detail=None)).detail is None


@pytest.mark.parametrize(
    ("detail", "kind"),
    [
        ({f"k_{chr(97 + i)}": i for i in range(DETAIL_MAX_KEYS + 1)}, "too_long"),
        ({"A": 1}, "string_pattern_mismatch"),
        ({"a-b": 1}, "string_pattern_mismatch"),
        ({"a1": 1}, "string_pattern_mismatch"),
        ({"": 1}, "string_pattern_mismatch"),
        ({"a" * 33: 1}, "string_pattern_mismatch"),
        ({"a\n": 1}, "string_pattern_mismatch"),  # no newline sneaks past the end anchor
        ({"a": "fw\x00"}, "value_error"),
        ({"a": "x" * (DETAIL_MAX_TEXT + 1)}, "string_too_long"),
        ({"a": 2**63}, "less_than"),
        ({"a": -(2**63) - 1}, "less_than"),
        ({"a": [1]}, "detail_value_type"),
        ({"a": {"b": 1}}, "detail_value_type"),
        ([["a", 1]], "dict_type"),
        ("a", "dict_type"),
    ],
)
def test_bad_detail_is_refused(detail: Any, kind: str) -> None:
    got, loc, _ = refusal(body("analog", detail=detail))
    assert got == kind
    assert loc.startswith("detail")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_detail_numbers_must_be_finite(token: str) -> None:
    payload = json.dumps(body("analog")).rstrip("}") + f', "detail": {{"value": {token}}}}}'
    assert refusal(payload)[:2] == ("finite_number", "detail.value")


def test_unpaired_surrogates_in_detail_are_refused() -> None:
    # JSON cannot carry one (ingest: not_json); a Python caller (the gateway) might
    with pytest.raises(ValidationError, match="unpaired surrogates"):
        PanelEvent.model_validate(body("analog", detail={"a": "x\ud800"}))
