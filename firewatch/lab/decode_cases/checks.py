"""The properties every decoded message must satisfy (:func:`check`), the columns a row
must fit (:func:`storage_problem`), both decoders at once (:func:`decode_both`) and the
outcome labels a run counts (:func:`outcome_label`)."""

from __future__ import annotations

import math
from datetime import datetime

from firewatch.core.domain import Channel
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow, row_problem
from firewatch.ingest.codec import Decoder, Route, decode, route
from firewatch.lab.decode_cases.world import ROW, Message, World
from firewatch.storage.streams import STREAM_COLUMNS

_TABLE_OF: dict[type, str] = {TelemetryRow: "telemetry", EventRow: "events",
                              StatusRow: "device_status"}  # fmt: skip
_ROW_OF_CHANNEL = {Channel.TELEMETRY: TelemetryRow, Channel.EVENT: EventRow,
                   Channel.STATUS: StatusRow}  # fmt: skip
#: NOT NULL columns of the stream tables (storage/migrations/0002_streams.sql).
_NOT_NULL = {
    "telemetry": {"device_id", "seq", "ts", "received_at"},
    "events": {"device_id", "seq", "ts", "received_at", "event_type", "system_type",
               "system_addr", "status_word", "flags"},
    "device_status": {"device_id", "seq", "ts", "received_at", "state"},
}  # fmt: skip
_INT_BITS = {"int2": 16, "int4": 32, "int8": 64}
FLOAT4_MAX = 3.4028234663852886e38


def _value_problem(pg_type: str, v: object) -> str | None:
    if pg_type.endswith("[]"):
        if not isinstance(v, list):
            return f"{pg_type} needs a list, not {type(v).__name__}"
        for item in v:
            if item is None:
                return "an array holds NULL"
            problem = _value_problem(pg_type[:-2], item)
            if problem:
                return problem
        return None
    if pg_type == "text":
        if not isinstance(v, str):
            return f"text needs str, not {type(v).__name__}"
        if "\x00" in v:
            return "text holds NUL"
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return "text has no UTF-8 form (lone surrogate)"
        return None
    if pg_type in _INT_BITS:
        bits = _INT_BITS[pg_type]
        if type(v) is not int:
            return f"{pg_type} needs int, not {type(v).__name__}"
        return None if -(2 ** (bits - 1)) <= v < 2 ** (bits - 1) else f"{v} overflows {pg_type}"
    if pg_type == "float4":
        if type(v) not in (int, float):
            return f"float4 needs a number, not {type(v).__name__}"
        ok = math.isfinite(v) and abs(v) <= FLOAT4_MAX  # type: ignore[arg-type]
        return None if ok else f"{v!r} is not a finite float4"
    if pg_type == "bool":
        return None if type(v) is bool else f"bool needs bool, not {type(v).__name__}"
    if pg_type == "jsonb":  # the detail object: JSON holds no NUL, NaN or infinity
        if not isinstance(v, dict):
            return f"jsonb needs a dict, not {type(v).__name__}"
        for item in v.values():
            if isinstance(item, str) and (problem := _value_problem("text", item)):
                return problem
            if isinstance(item, float) and not math.isfinite(item):
                return f"{item!r} has no JSON form"
        return None
    if pg_type == "timestamptz":
        ok = isinstance(v, datetime) and v.utcoffset() is not None
        return None if ok else f"timestamptz needs an aware datetime, not {v!r}"
    return f"unknown column type {pg_type}"


def storage_problem(row: TelemetryRow | EventRow | StatusRow) -> str | None:
    """Why ``row`` would not fit the columns the writer COPYs it into (its binary COPY
    types, ``firewatch.ingest.writer``), or None."""
    table = _TABLE_OF[type(row)]
    columns, types = STREAM_COLUMNS[table]
    for name, pg_type, value in zip(columns, types, row, strict=True):
        if value is None:
            if name in _NOT_NULL[table]:
                return f"{table}.{name} is NOT NULL"
            continue
        problem = _value_problem(pg_type, value)
        if problem:
            return f"{table}.{name}: {problem}"
    return None


def check(msg: Message, out: object, world: World) -> list[str]:
    """What is wrong with ``out`` as the decoding of ``msg`` at ``world`` (empty: nothing).

    The properties: ``out`` is exactly one :class:`DeadLetter` or one row. A dead letter
    keeps the exact topic and payload bytes, the receive time, a contract reason (never
    ``db_rejected``) and a non-empty detail. A row is of the topic's channel and device,
    passes :func:`~firewatch.core.rows.row_problem` (what readers assume), fits its
    columns (:func:`storage_problem`: text without NUL and with a UTF-8 form, integers and
    floats in range) and has ``ts`` inside its window (a last will's lower bound is the
    record retention). An ``expect``-ed outcome must be the one produced.
    """
    problems: list[str] = []
    if type(out) is DeadLetter:
        if out.topic != msg.topic or type(out.topic) is not str:
            problems.append(f"dead letter topic {out.topic!r} is not the message's")
        if out.payload != msg.payload or type(out.payload) is not bytes:
            problems.append("dead letter payload is not the message's exact bytes")
        if out.received_at != world.received_at:
            problems.append("dead letter received_at is not the receive time")
        if not isinstance(out.reason, Reason) or out.reason is Reason.DB_REJECTED:
            problems.append(f"dead letter reason {out.reason!r} is not a contract reason")
        if not isinstance(out.detail, str) or not out.detail.strip():
            problems.append("dead letter has no detail")
        if msg.expect is not None and msg.expect != out.reason:
            problems.append(f"expected {msg.expect}, got dead letter {out.reason}: {out.detail}")
        return problems
    if type(out) not in _TABLE_OF:
        return [f"decoded to {type(out).__name__}, neither a row nor a dead letter"]
    row: TelemetryRow | EventRow | StatusRow = out  # type: ignore[assignment]
    if msg.expect is not None and msg.expect != ROW:
        problems.append(f"expected dead letter {msg.expect}, got a {type(row).__name__}")
    where = route(msg.topic, root=world.root, lookup=world.lookup)
    if type(where) is not Route:
        return [*problems, f"a row from a topic that does not route: {where}"]
    if type(row) is not _ROW_OF_CHANNEL[where.channel]:
        problems.append(f"{type(row).__name__} on channel {where.channel}")
    if row.device_id != where.device_id:
        problems.append(f"row device {row.device_id!r} is not the topic's {where.device_id!r}")
    if row.received_at != world.received_at:
        problems.append("row received_at is not the receive time")
    problem = row_problem(row) or storage_problem(row)
    if problem:
        problems.append(f"row not storable: {problem}")
    elif not _ts_in_window(row, where.channel, world):
        problems.append(f"row ts {row.ts.isoformat()} is outside its window")
    return problems


def _ts_in_window(row: TelemetryRow | EventRow | StatusRow, channel: Channel, world: World) -> bool:
    limits, now = world.limits, world.received_at
    will = channel is Channel.STATUS and row.seq == 0
    oldest = limits.max_will_age if will else limits.max_age
    return now - oldest <= row.ts <= now + limits.max_future


def decode_both(msg: Message, world: World, decoder: Decoder) -> tuple[object, list[str]]:
    """Decode ``msg`` with :func:`decode` and with ``decoder`` (twice: the second call
    answers from its topic cache); the outcome and what is wrong (exceptions, the three
    disagreeing, :func:`check`)."""
    outs: list[object] = []
    topic, payload, at = msg.topic, msg.payload, world.received_at
    try:  # the property: nothing escapes
        outs.append(
            decode(topic, payload, at, root=world.root, lookup=world.lookup, limits=world.limits)
        )
        outs.append(decoder(topic, payload, at))
        outs.append(decoder(topic, payload, at))
    except Exception as err:
        return None, [f"raised {type(err).__name__}: {err}"]
    first = outs[0]
    problems = [
        f"Decoder disagrees with decode: {o!r} != {first!r}" for o in outs[1:] if o != first
    ]
    return first, problems + check(msg, first, world)


def outcome_label(out: object) -> str:
    """``row:<table>[/<kind>]`` or ``dead:<reason>``, for counting outcomes."""
    if type(out) is DeadLetter:
        return f"dead:{out.reason.value}"
    if type(out) is TelemetryRow:
        return "row:telemetry/" + ("water" if out.pressure_kpa is not None else "ebike_shed")
    if type(out) is StatusRow:
        return "row:device_status" + ("/will" if out.seq == 0 else "")
    return f"row:{_TABLE_OF.get(type(out), type(out).__name__)}"
