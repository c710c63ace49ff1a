"""Mutations of a valid body (:data:`BODY_MUTATIONS`) and of its serialized bytes
(:func:`mutate_bytes`): each returns the outcome it implies (None: not certain)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from firewatch.core.contract import EbikeShedTelemetry, PanelEvent
from firewatch.core.domain import BYTE_STATUS_TYPES, Channel, PanelEventType
from firewatch.core.rows import Reason
from firewatch.lab.decode_cases.draws import Source
from firewatch.lab.decode_cases.payloads import (
    ACCEPTS,
    CHANNEL_OF,
    FIELDS,
    KIND_OF,
    MARGIN_S,
    Ctx,
    Obj,
    Raw,
    bounds,
    charging_port,
    json_value,
    max_len,
    render_ts,
    ts_window,
    valid_instant,
)
from firewatch.lab.decode_cases.world import ROW, Expect, World

_OTHER_TYPES: tuple[tuple[str, Any], ...] = (
    ("null", None), ("str", "300"), ("str", ""), ("bool", True), ("bool", False),
    ("int", 1), ("int", -7), ("float", 1.5), ("list", []), ("list", [1, 2]), ("object", None),
)  # fmt: skip


def _m_drop(src: Source, c: Ctx, body: Obj) -> Expect:
    key = src.choice(body.names() or ["seq"])
    body.drop(key)
    field = FIELDS[c.model].get(key)
    if field is not None and field.required:
        return Reason.MISSING_FIELD
    if key.startswith("component_") and body.get("type") == PanelEventType.COMPONENT_STATUS:
        return Reason.INVALID  # the model's own rule: component_status needs both
    return ROW


def _m_duplicate(src: Source, c: Ctx, body: Obj) -> Expect:
    """A key twice: the last one counts, as in every JSON parser ingest might use."""
    key = src.choice(body.names() or ["seq"])
    junk = json_value(src, 1)
    if src.chance(50):
        body.pairs.insert(0, (key, junk))
        return ROW  # the original, valid value comes last
    body.pairs.append((key, junk))
    return None


def _m_retype(src: Source, c: Ctx, body: Obj) -> Expect:
    key = src.choice(body.names() or ["seq"])
    jtype, value = src.choice(_OTHER_TYPES)
    body.set(key, Obj() if jtype == "object" else list(value) if jtype == "list" else value)
    field = FIELDS[c.model].get(key)
    if field is None:
        return ROW  # an extra key: ignored whatever its value
    accepts = ACCEPTS.get(field.kind)
    if accepts is None or jtype in accepts:
        return None  # time, enum and literal rules are pydantic's; a right type may be out of range
    if jtype == "null" and not field.nullable:
        return Reason.WRONG_TYPE
    if key.startswith("component_") and body.get("type") == PanelEventType.COMPONENT_STATUS:
        return Reason.INVALID if jtype == "null" else Reason.WRONG_TYPE
    return ROW if jtype == "null" else Reason.WRONG_TYPE


def _m_number(src: Source, c: Ctx, body: Obj) -> Expect:
    """A number field at, just past or far past its bounds, or not a finite number."""
    keys = [k for k in body.names() if KIND_OF.get(k) in ("int", "float")] or ["seq"]
    key = src.choice(keys)
    is_int = FIELDS[c.model][key].kind == "int"
    lo, hi = bounds(c.model, key)
    beyond: str = Reason.OUT_OF_RANGE
    if key == "status" and body.get("type") in BYTE_STATUS_TYPES:
        hi, beyond = 0xFF, Reason.INVALID  # an operation word has 8 bits (model rule)
    variant = src.choice(
        (
            "lo",
            "hi",
            "below",
            "above",
            "nan",
            "inf",
            "-inf",
            "1e309",
            "2**64",
            "-2**64",
            "digits",
            "-0.0",
            "denormal",
            "integral",
        )
    )
    value: Any
    expect: Expect
    if variant == "lo":
        value, expect = (int(lo) if is_int else lo), ROW
    elif variant == "hi":
        value, expect = (int(hi) if is_int else hi), ROW
    elif variant == "below":
        value = int(lo) - 1 if is_int else math.nextafter(lo, -math.inf)
        expect = Reason.OUT_OF_RANGE
    elif variant == "above":
        value = int(hi) + 1 if is_int else math.nextafter(hi, math.inf)
        expect = beyond
    elif variant in ("nan", "inf", "-inf", "1e309"):
        value = Raw({"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(variant, variant))
        expect = Reason.WRONG_TYPE if is_int else Reason.NOT_FINITE
    elif variant in ("2**64", "-2**64"):
        value = 2**64 if variant == "2**64" else -(2**64)
        expect = Reason.OUT_OF_RANGE
    elif variant == "digits":
        value, expect = Raw("9" * src.integer(20, 6000)), None
    else:  # a float: for an integer field a wrong type even when integral
        value = {"-0.0": -0.0, "denormal": 5e-324}.get(variant, float(int(lo)))
        in_range = lo <= value <= hi
        expect = Reason.WRONG_TYPE if is_int else (ROW if in_range else Reason.OUT_OF_RANGE)
    if key == "seq" and CHANNEL_OF[c.model] is Channel.STATUS and (c.will or value == 0):
        expect = None  # seq 0 on status is a last will: another ts window
    body.set(key, value)
    return expect


def _free_text(model: type[BaseModel]) -> list[str]:
    return [n for n, f in FIELDS[model].items() if f.kind == "text" and n != "device_id"]


def _m_string(src: Source, c: Ctx, body: Obj) -> Expect:
    """NUL, surrogates, raw control characters, and lengths at and past the limit, in a
    free-text field, ``device_id`` or an ignored extra key."""
    free_text = _free_text(c.model)
    target = src.choice([*free_text, *free_text, "device_id", "x-note"])
    free = target not in ("x-note", "device_id")
    limit = FIELDS[c.model][target].max_length if free else None
    variant = src.choice(
        (
            "nul",
            "lone_high",
            "lone_low",
            "reversed_pair",
            "pair",
            "nul",
            "raw_control",
            "raw_del",
            "at_limit",
            "past_limit",
            "long",
        )
    )
    # what the field makes of a storable string that fits: kept, a mismatch, or ignored
    expect: Expect
    fits: Expect = Reason.TOPIC_MISMATCH if target == "device_id" else ROW
    value: Any
    if variant == "nul":
        value = "fw\x00" + src.text(4)
        expect = ROW if target == "x-note" else Reason.INVALID
    elif variant in ("lone_high", "lone_low", "reversed_pair"):
        value = {"lone_high": "a\ud800", "lone_low": "\udfffz", "reversed_pair": "\ude00\ud83d"}[
            variant
        ]
        expect = Reason.NOT_JSON  # no JSON parser may turn it into text
    elif variant == "pair":
        value, expect = "\U0001f525 " + src.text(4), fits
    elif variant == "raw_control":
        value, expect = Raw('"a' + chr(src.integer(1, 0x1F)) + 'b"'), Reason.NOT_JSON
    elif variant == "raw_del":
        value, expect = Raw('"a\x7fb"'), fits
    elif variant == "at_limit":
        n = limit or 64
        value, expect = "\U0001f525" * (n // 2) + "x" * (n - n // 2), fits
    elif variant == "past_limit":
        n = (limit or 64) + 1
        value = "\U0001f525" * (n // 2) + "x" * (n - n // 2)
        expect = Reason.OUT_OF_RANGE if free else fits
    else:
        value = "long " * src.integer(200, 4000)
        expect = Reason.OUT_OF_RANGE if free else fits
    body.set(target, value)
    return expect


def _m_ts(src: Source, c: Ctx, body: Obj) -> Expect:
    """Timestamps far out (year 1, year 9999, Unix 0), just past either end of the window,
    inside it as numbers, without an offset, or not a time at all."""
    lo, hi = ts_window(c.world, c.will)
    now = c.world.received_at
    cases: tuple[tuple[Any, Expect], ...] = (
        ("0001-01-01T00:00:00Z", Reason.TS_TOO_OLD),
        ("0001-01-01T00:00:00+14:00", Reason.TS_TOO_OLD),
        ("0001-01-01T00:00:00.000001-23:59", Reason.TS_TOO_OLD),
        ("9999-12-31T23:59:59Z", Reason.TS_IN_FUTURE),
        ("9999-12-31T23:59:59.999999-14:00", Reason.TS_IN_FUTURE),
        ("9999-12-31T23:59:59.999999+23:59", Reason.TS_IN_FUTURE),
        (0, Reason.TS_TOO_OLD),
        (-1, Reason.TS_TOO_OLD),
        (-0.0, Reason.TS_TOO_OLD),
        (Raw("1e-400"), Reason.TS_TOO_OLD),
        (-1_765_000_000, Reason.TS_TOO_OLD),
        (253_402_300_799_999, Reason.TS_IN_FUTURE),  # 9999-12-31T23:59:59.999Z in ms
        (math.floor(now.timestamp()) + hi + MARGIN_S + 5, Reason.TS_IN_FUTURE),
        (math.floor(now.timestamp() * 1000) + (hi + MARGIN_S + 5) * 1000, Reason.TS_IN_FUTURE),
        (math.floor(now.timestamp()) + lo - MARGIN_S - 5, Reason.TS_TOO_OLD),
        (math.floor(now.timestamp() * 1000) + (lo - MARGIN_S - 5) * 1000, Reason.TS_TOO_OLD),
        (render_ts(src, valid_instant(src, c.world, c.will)), ROW),
        (now.replace(tzinfo=None).isoformat(), Reason.INVALID),  # no offset
        (now.strftime("%Y-%m-%d"), None),
        (now.strftime("%Y-%m-%dT%H:%M:%S+24:00"), None),
        (now.strftime("%Y-%m-%dt%H:%M:%S-00:00"), None),
        (now.strftime("+00%Y-%m-%dT%H:%M:%SZ"), None),
        (Raw("1e20"), None),
        (Raw("NaN"), None),
        (Raw("Infinity"), None),
        (2**63, None),
        (True, Reason.WRONG_TYPE),
        (src.text(30), None),
        ([], Reason.WRONG_TYPE),
    )
    value, expect = src.choice(cases)
    body.set("ts", value)
    return expect


def _m_nested(src: Source, c: Ctx, body: Obj) -> Expect:
    """Nested junk in an ignored key: fine up to the parser's depth limit, refused past it."""
    depth = src.choice((src.integer(1, 100), src.integer(300, 5000)))
    opener, closer = src.choice((("[", "]"), ('{"a":', "}")))
    inner = "[]" if opener == "[" else "1"
    value = Raw(opener * depth + inner + closer * depth)
    if src.chance(20):  # in place of a field: the parser's depth limit or a wrong type
        body.set(src.choice(body.names() or ["seq"]), value)
        return None
    body.set("x-deep", value)
    return ROW if depth <= 100 else Reason.NOT_JSON


def _m_ports(src: Source, c: Ctx, body: Obj) -> Expect:
    """Port lists a shed must not send (and the largest it may)."""
    if c.model is not EbikeShedTelemetry:
        return _m_retype(src, c, body)
    ports = body.get("ports")
    if not isinstance(ports, list) or not ports or not all(isinstance(p, Obj) for p in ports):
        ports = [charging_port(src, src.integer(1, 1024))]
    variant = src.choice(
        (
            "duplicate",
            "max",
            "too_many",
            "port_0",
            "port_1025",
            "not_object",
            "not_list",
            "missing_key",
            "extra_key",
            "nan_temp",
        )
    )
    expect: Expect
    max_ports = max_len(EbikeShedTelemetry, "ports")
    if variant == "duplicate":
        ports = [*ports, ports[src.integer(0, len(ports) - 1)]]
        expect = Reason.INVALID
    elif variant in ("max", "too_many"):
        n = max_ports + (1 if variant == "too_many" else 0)
        ports = [
            Obj([("port", i + 1), ("temp_c", 20.5), ("current_a", 1.25), ("charging", i % 2 == 0)])
            for i in range(n)
        ]
        expect = ROW if variant == "max" else Reason.OUT_OF_RANGE
    elif variant in ("port_0", "port_1025"):
        ports[src.integer(0, len(ports) - 1)].set("port", 0 if variant == "port_0" else 1025)
        expect = Reason.OUT_OF_RANGE
    elif variant == "not_object":
        ports[src.integer(0, len(ports) - 1)] = 5
        expect = Reason.WRONG_TYPE
    elif variant == "not_list":
        body.set("ports", Obj([("1", ports[0])]))
        return Reason.WRONG_TYPE
    elif variant == "missing_key":
        ports[src.integer(0, len(ports) - 1)].drop(
            src.choice(("port", "temp_c", "current_a", "charging"))
        )
        expect = Reason.MISSING_FIELD
    elif variant == "extra_key":
        ports[src.integer(0, len(ports) - 1)].set("x-vendor", json_value(src, 1))
        expect = ROW
    else:
        ports[src.integer(0, len(ports) - 1)].set("temp_c", Raw("NaN"))
        expect = Reason.NOT_FINITE
    body.set("ports", ports)
    return expect


def _m_panel(src: Source, c: Ctx, body: Obj) -> Expect:
    """Panel events the model's own rules refuse."""
    if c.model is not PanelEvent:
        return _m_drop(src, c, body)
    variant = src.choice(("unknown_type", "upper_type", "operation_word", "component_missing"))
    if variant in ("unknown_type", "upper_type"):
        body.set("type", "fire" if variant == "unknown_type" else "SYSTEM_STATUS")
        return Reason.INVALID
    if variant == "operation_word":
        body.set("type", src.choice(sorted(t.value for t in BYTE_STATUS_TYPES)))
        body.set("status", src.integer(0x100, 0xFFFF))
        return Reason.INVALID
    body.set("type", PanelEventType.COMPONENT_STATUS.value)
    body.drop(src.choice(("component_type", "component_addr")))
    return Reason.INVALID


def _m_device_id(src: Source, c: Ctx, body: Obj) -> Expect:
    other = src.choice((c.device_id, "", "D-NOT-REGISTERED", *sorted(c.world.devices)[:3]))
    body.set("device_id", other)
    return ROW if other == c.device_id else Reason.TOPIC_MISMATCH


#: Strings, timestamps and numbers weigh more: they are where the contract's newest rules
#: (NUL, surrogates, the window on every channel) and the columns' limits are.
BODY_MUTATIONS: tuple[tuple[str, Callable[[Source, Ctx, Obj], Expect]], ...] = (
    ("drop", _m_drop), ("duplicate", _m_duplicate), ("retype", _m_retype),
    ("number", _m_number), ("string", _m_string), ("ts", _m_ts), ("nested", _m_nested),
    ("ports", _m_ports), ("panel", _m_panel), ("device_id", _m_device_id),
    ("string", _m_string), ("string", _m_string), ("ts", _m_ts), ("number", _m_number),
)  # fmt: skip


# --- byte mutations of a serialized object ---------------------------------------------------

_BAD_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe4\xb8", b"\x80", b"\xf4\x90\x80\x80")


def mutate_bytes(src: Source, world: World, data: bytes) -> tuple[str, bytes, Expect]:
    """One byte-level change of a compact JSON object's bytes, and its certain outcome
    if the object was valid."""
    variant = src.choice(
        (
            "truncate",
            "bad_utf8",
            "flip",
            "pad_to_limit",
            "pad_past_limit",
            "bom",
            "trailing",
            "twice",
            "leading_ws",
        )
    )
    limit = world.limits.max_payload_bytes
    if variant == "truncate":  # every strict prefix of a compact object is unfinished
        return variant, data[: src.integer(0, len(data) - 1)], Reason.NOT_JSON
    if variant == "bad_utf8":  # outside a string a syntax error, inside one invalid text
        at = src.integer(0, len(data))
        return variant, data[:at] + src.choice(_BAD_UTF8) + data[at:], Reason.NOT_JSON
    if variant == "flip":
        at = src.integer(0, len(data) - 1)
        return variant, data[:at] + bytes([src.integer(0, 255)]) + data[at + 1 :], None
    if variant in ("pad_to_limit", "pad_past_limit"):
        size = limit + (1 if variant == "pad_past_limit" else 0)
        pad = max(0, size - len(data))
        expect: Expect = ROW if variant == "pad_to_limit" else Reason.OVERSIZED
        return variant, data + src.choice((b" ", b"\n", b"\t", b"\r")) * pad, expect
    if variant == "bom":
        return variant, b"\xef\xbb\xbf" + data, Reason.NOT_JSON
    if variant == "trailing":
        return variant, data + src.choice((b"x", b"}", b"\x00", b",", b"//")), Reason.NOT_JSON
    if variant == "twice":
        return variant, data + data, Reason.NOT_JSON
    return variant, b" \r\n\t" + data + b"\n", ROW
