"""Property-based tests of ingest's decoders (issue 9).

Property A (pure): for any MQTT message, :func:`~firewatch.ingest.codec.decode` and
:class:`~firewatch.ingest.codec.Decoder` never raise, agree, and return exactly one row or
one dead letter: a dead letter keeps the exact topic and bytes with a detail; a row passes
:func:`~firewatch.core.rows.row_problem`, fits its columns and has ``ts`` in its window;
where a message's construction makes the outcome certain, it is that outcome
(:func:`firewatch.lab.decode_cases.check`).

Property B (real PostgreSQL): batches of decoded messages, redeliveries included, written
by the real :class:`~firewatch.ingest.writer.BatchWriter`: the flush never raises, the
database refuses no row the contract accepted (no ``db_rejected``), and every message is
exactly one stored row or one dead letter, stored as decoded.

The messages come from :mod:`firewatch.lab.decode_cases`, which ``firewatch bench decoders``
runs a million times with a seeded ``random.Random`` instead of hypothesis.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from hypothesis import HealthCheck, event, example, given, settings

from firewatch.core.backoff import Backoff
from firewatch.core.domain import DeviceKind
from firewatch.core.rows import DeadLetter, EventRow, Reason, StatusRow, TelemetryRow
from firewatch.ingest.codec import DeviceInfo, Limits
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.writer import BatchWriter, WriteBatch
from firewatch.lab.decode_cases import (
    ROW,
    Message,
    World,
    batch_strategy,
    check,
    decode_both,
    default_limits,
    demo_world,
    message_strategy,
    outcome_label,
)
from firewatch.storage.streams import DEFAULT_PAYLOAD_CAP, STREAM_COLUMNS, storable

WORLD = demo_world()
_DECODER = WORLD.decoder()  # one for the whole run: later examples hit its topic cache
_BASE = settings(
    derandomize=True,  # the same examples on every run and machine (CI reproducibility)
    database=None,  # nothing written to .hypothesis/
    deadline=None,  # two shared cores: timing is not the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- regressions (each once found by these properties) ----------------------------------------


def _valid_water(ts: str = "2026-12-06T12:00:00Z") -> bytes:
    return b'{"seq":1,"ts":"%s","pressure_kpa":312.5}' % ts.encode()


#: An id with a trailing newline passed ``is_valid_id`` (``re.match``'s '$' matches before a
#: final newline): such topics were unknown_device / topic_mismatch instead of bad_topic.
NEWLINE_DEVICE = Message(
    "firewatch/v1/U-WD-001/D-WD-001-W1\n/telemetry",
    _valid_water(),
    "regression/newline-device",
    Reason.BAD_TOPIC,
)
NEWLINE_UNIT = Message(
    "firewatch/v1/U-WD-001\n/D-WD-001-W1/telemetry",
    _valid_water(),
    "regression/newline-unit",
    Reason.BAD_TOPIC,
)

_STATUS = "firewatch/v1/U-WD-001/D-WD-001-P1/status"
_EVENT = "firewatch/v1/U-WD-001/D-WD-001-P1/event"


def _json(**body: object) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: "\x00" becomes \u0000, "\ud800" \ud800


#: The contract's newest rules, certain whatever the generator's distribution: no NUL or lone
#: surrogate in any string, and a window for ``ts`` on every channel (a last will's lower
#: bound is the record retention, not "anything").
CONTRACT_EDGES = [
    Message(
        _STATUS,
        _json(seq=1, ts="2026-12-06T12:00:00Z", state="online", firmware="1\x00"),
        "edge/nul-firmware",
        Reason.INVALID,
    ),
    Message(
        _EVENT,
        _json(
            seq=1,
            ts="2026-12-06T12:00:00Z",
            type="system_status",
            system_type=1,
            system_addr=1,
            status=1,
            description="a\x00b",
        ),
        "edge/nul-description",
        Reason.INVALID,
    ),
    Message(
        _STATUS,
        _json(seq=1, ts="2026-12-06T12:00:00Z", state="online", device_id="D-WD-001-P1\x00"),
        "edge/nul-device-id",
        Reason.INVALID,
    ),
    Message(
        _STATUS,
        _json(seq=1, ts="2026-12-06T12:00:00Z", state="online", reason="\ud800"),
        "edge/lone-surrogate",
        Reason.NOT_JSON,
    ),
    Message(
        _STATUS,
        _json(seq=0, ts="0001-01-01T00:00:00+14:00", state="offline", reason="will"),
        "edge/will-year-1",
        Reason.TS_TOO_OLD,
    ),
    Message(
        _STATUS,
        _json(seq=0, ts="2025-11-02T12:00:00Z", state="offline", reason="will"),
        "edge/will-within-retention",
        ROW,
    ),
    Message(
        _STATUS,
        _json(seq=0, ts="2025-11-01T12:00:00Z", state="offline", reason="will"),
        "edge/will-past-retention",
        Reason.TS_TOO_OLD,
    ),
    Message(
        _EVENT,
        _json(
            seq=1,
            ts="9999-12-31T23:59:59.999999-14:00",
            type="system_status",
            system_type=1,
            system_addr=1,
            status=1,
        ),
        "edge/year-9999",
        Reason.TS_IN_FUTURE,
    ),
]


# --- property A --------------------------------------------------------------------------------


@settings(_BASE, max_examples=3000)
@given(message_strategy(WORLD))
@example(NEWLINE_DEVICE)
@example(NEWLINE_UNIT)
@example(CONTRACT_EDGES[0])
@example(CONTRACT_EDGES[1])
@example(CONTRACT_EDGES[2])
@example(CONTRACT_EDGES[3])
@example(CONTRACT_EDGES[4])
@example(CONTRACT_EDGES[5])
@example(CONTRACT_EDGES[6])
@example(CONTRACT_EDGES[7])
@example(Message("firewatch/v1/U-WD-001/D-WD-001-W1/telemetry", _valid_water(), "valid", ROW))
def test_every_message_decodes_to_one_row_or_dead_letter(msg: Message) -> None:
    out, problems = decode_both(msg, WORLD, _DECODER)
    event(outcome_label(out))  # the spread of outcomes: --hypothesis-show-statistics
    assert problems == [], f"{msg!r} -> {out!r}"
    assert type(out) in (TelemetryRow, EventRow, StatusRow, DeadLetter)


def test_the_checks_can_fail() -> None:
    """The oracle is not vacuous: each way a decoding can be wrong is reported."""
    now = WORLD.received_at
    valid = Message("firewatch/v1/U-WD-001/D-WD-001-W1/telemetry", _valid_water(), "hand", ROW)
    status = Message(_STATUS, b"{}", "hand", ROW)
    nul = StatusRow("D-WD-001-P1", 5, now, now, "online", "fw\x00", None, None, None)
    assert any("text holds NUL" in p for p in check(status, nul, WORLD))
    stale = StatusRow(
        "D-WD-001-P1", 5, now - timedelta(days=8), now, "online", None, None, None, None
    )
    assert any("outside its window" in p for p in check(status, stale, WORLD))
    will = stale._replace(seq=0)  # a last will may be that old
    assert check(status, will, WORLD) == []
    wide = EventRow(
        "D-WD-001-P1", 5, now, now, "system_status", 40_000, 1, None, None, 1, [], None, None
    )
    event_msg = Message(_EVENT, b"{}", "hand", None)
    assert any("overflows int2" in p for p in check(event_msg, wide, WORLD))
    lost = DeadLetter(now, status.topic, b"{", Reason.NOT_JSON, "x")
    problems = check(status, lost, WORLD)
    assert any("exact bytes" in p for p in problems)
    assert any("expected row" in p for p in problems)

    class Raising:
        def __call__(self, *_args: object) -> object:
            raise RuntimeError("escaped")

    class Refusing:
        def __call__(self, topic: str, payload: bytes, at: datetime) -> object:
            return DeadLetter(at, topic, payload, Reason.INVALID, "no")

    out, problems = decode_both(valid, WORLD, Raising())  # type: ignore[arg-type]
    assert out is None
    assert problems == ["raised RuntimeError: escaped"]
    out, problems = decode_both(valid, WORLD, Refusing())  # type: ignore[arg-type]
    assert type(out) is TelemetryRow
    assert any("disagrees" in p for p in problems)


# --- property B --------------------------------------------------------------------------------


def _registry(conn: psycopg.Connection[Any]) -> dict[str, DeviceInfo]:
    rows = conn.execute("SELECT id, unit_id, kind FROM devices").fetchall()
    return {d: DeviceInfo(u, DeviceKind(k)) for d, u, k in rows}


def _f4(x: float) -> float:
    """``x`` as a ``real`` column gives it back."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _as_stored(row: Sequence[Any], types: Sequence[str]) -> tuple[Any, ...]:
    """A decoded row as the database returns it: float4 columns rounded to 32 bits."""
    out: list[Any] = []
    for value, pg_type in zip(row, types, strict=True):
        if value is not None and pg_type == "float4":
            value = _f4(value)
        elif value is not None and pg_type == "float4[]":
            value = [_f4(v) for v in value]
        elif value is not None and pg_type == "jsonb":
            value = {k: _json_number(v) for k, v in value.items()}
        out.append(value)
    return tuple(out)


def _json_number(value: Any) -> Any:
    """A ``detail`` value as jsonb gives it back: a number is a JSON number, and PostgreSQL
    prints an integral one without a fraction or exponent, so the float 1e308 returns as
    the integer 10**308. Such an integer (beyond 64 bits: the contract refuses larger
    integers, so it was a float) compares as the float it was."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return float(value)
    return value


_STREAMS = {TelemetryRow: "telemetry", EventRow: "events", StatusRow: "device_status"}


def _boundary_batch(now: datetime, limits: Limits) -> list[Message]:
    """Valid messages at the edges of what the columns hold: the largest seq and component
    address, the widest offsets, a denormal float, 256 ports, a 256-character astral
    description, a last will at the retention limit."""
    will_ts = (now - limits.max_will_age + timedelta(seconds=5)).isoformat()
    ts = (now - timedelta(seconds=30)).astimezone(UTC)
    ports = [
        {"port": p, "temp_c": 400.0, "current_a": 5e-324, "charging": True}
        for p in range(1024, 768, -1)
    ]
    root = "firewatch/v1"

    def msg(topic: str, body: dict[str, Any]) -> Message:
        return Message(f"{root}/{topic}", json.dumps(body).encode(), "boundary", ROW)

    return [
        msg(
            "U-WD-001/D-WD-001-W1/telemetry",
            {
                "seq": 2**63 - 1,
                "ts": ts.astimezone(timezone(-timedelta(hours=23, minutes=59))).isoformat(),
                "pressure_kpa": 10_000,
                "level_m": 5e-324,
                "room_temp_c": -60.0,
            },
        ),
        msg(
            "U-WD-001/D-WD-001-P1/event",
            {
                "seq": 0,
                "ts": ts.astimezone(timezone(timedelta(hours=14))).isoformat(),
                "type": "component_status",
                "system_type": 255,
                "system_addr": 255,
                "component_type": 255,
                "component_addr": 2**32 - 1,
                "status": 0xFFFF,
                "operator": 255,
                "description": "\U0001f525" * 256,
            },
        ),
        msg(
            "U-WD-001/D-WD-001-E1/telemetry",
            {"seq": 1, "ts": int(ts.timestamp() * 1000), "ambient_c": 150, "ports": ports},
        ),
        msg(
            "U-WD-001/D-WD-001-P1/status",
            {
                "seq": 0,
                "ts": will_ts,
                "state": "offline",
                "reason": "r" * 128,
                "firmware": "\x7f\x01" * 32,
                "battery_pct": 100,
                "rssi_dbm": -150,
            },
        ),
    ]


def test_decoded_batches_are_stored_exactly_once(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    world = World(_registry(db), datetime.now(UTC), default_limits())
    decoder = world.decoder()
    writer = BatchWriter(database_url, IngestMetrics(), Backoff(0.05, 0.5), threading.Event())

    @settings(_BASE, max_examples=300)
    @given(batch_strategy(world))
    @example(_boundary_batch(world.received_at, world.limits))
    @example([NEWLINE_DEVICE, NEWLINE_UNIT, NEWLINE_DEVICE])
    def stored_or_dead_lettered(messages: list[Message]) -> None:
        _store_and_verify(db, writer, world, messages, decoder)

    with writer:
        stored_or_dead_lettered()


def _store_and_verify(
    db: psycopg.Connection[Any],
    writer: BatchWriter,
    world: World,
    messages: list[Message],
    decoder: Callable[[str, bytes, datetime], object],
) -> None:
    with db.transaction():  # DELETE, not TRUNCATE: a few rows, and ~40 partitions to recreate
        for table in (
            "telemetry",
            "events",
            "device_status",
            "device_state",
            "device_last_seen",
            "dead_letters",
        ):
            db.execute(f"DELETE FROM {table}")
    batch = WriteBatch()
    rows: dict[str, dict[tuple[Any, ...], list[tuple[Any, ...]]]] = {t: {} for t in STREAM_COLUMNS}
    dead: dict[tuple[str, bytes], list[DeadLetter]] = {}
    for i, msg in enumerate(messages):
        item = decoder(msg.topic, msg.payload, world.received_at)
        assert isinstance(item, TelemetryRow | EventRow | StatusRow | DeadLetter), item
        batch.add(item, i, msg.topic, msg.payload)
        if isinstance(item, DeadLetter):
            dl_key = (storable(item.topic, 65_536), hashlib.sha256(item.payload).digest())
            dead.setdefault(dl_key, []).append(item)
        else:
            table = _STREAMS[type(item)]
            stored = _as_stored(item, STREAM_COLUMNS[table][1])
            rows[table].setdefault((item.device_id, item.ts, item.seq), []).append(stored)

    result = writer.flush(batch)  # raises only DatabaseUnavailable, which fails the test

    # The contract must catch everything the database would refuse.
    assert result.rejected == [], f"the database refused rows the contract accepted: {result}"
    assert len(batch.acks) == len(messages)
    for msg, (item, *_rest) in zip(messages, batch.entries, strict=True):
        if msg.expect is not None:  # property A's oracle holds in a batch too
            assert outcome_label(item).startswith("row:" if msg.expect == ROW else "dead:"), msg
    for table, by_key in rows.items():
        n = sum(len(v) for v in by_key.values())
        assert result.stored.get(table, 0) == len(by_key), (table, result)
        assert result.stored.get(table, 0) + result.duplicates.get(table, 0) == n, (table, result)
        names, types = STREAM_COLUMNS[table]
        query = f"SELECT {', '.join(names)} FROM {table}"
        # PostgreSQL prints a real in its shortest float4 form: read back through float4 too
        got = {(r[0], r[2], r[1]): _as_stored(r, types) for r in db.execute(query)}
        assert got.keys() == by_key.keys(), table  # each message's row once, nothing else
        for key, row in got.items():
            differences = [
                [(name, a, b) for name, a, b in zip(names, row, c, strict=True) if a != b]
                for c in by_key[key]
            ]
            assert [] in differences, (table, key, differences)  # stored as decoded
    assert result.dead_letters == len(dead)
    stored_dead = db.execute(
        "SELECT topic, payload_sha256, payload, payload_size, reason, detail, received_at "
        "FROM dead_letters"
    ).fetchall()
    by_dead_key = {(t, bytes(h)): (bytes(p), n, r, d, at) for t, h, p, n, r, d, at in stored_dead}
    assert len(by_dead_key) == len(stored_dead)  # (topic, payload) is unique
    assert by_dead_key.keys() == dead.keys()  # each dead message once, nothing else
    for dl_key, got_dead in by_dead_key.items():
        candidates = [
            (
                d.payload[:DEFAULT_PAYLOAD_CAP],
                len(d.payload),
                d.reason.value,
                storable(d.detail),
                d.received_at,
            )
            for d in dead[dl_key]
        ]
        assert got_dead in candidates, (got_dead, candidates)
    status_devices = {k[0] for k in rows["device_status"]}
    n_state = db.execute("SELECT count(*) FROM device_state").fetchone()
    assert n_state == (len(status_devices),)
