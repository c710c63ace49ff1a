"""The stream tables' writes and scans: ``telemetry``, ``events``, ``device_status`` (with
``device_state``), ``dead_letters`` and ``device_last_seen``.

Ingest's writer (:mod:`firewatch.ingest.writer`) keeps the batching, retries, poison
isolation and acknowledgements; the SQL of one batch is here. Per connection,
:func:`create_staging` makes a temporary staging table per stream table. Per batch,
:func:`write_batch`, in the caller's transaction: for telemetry and events first one binary
``COPY`` straight into the table in a savepoint, which is all a batch without redeliveries
needs; otherwise (and for device status) one binary ``COPY`` per table into its staging
table, then ``INSERT … SELECT … ON CONFLICT DO NOTHING`` into the real table, so a
redelivered message (same device, ts, seq) adds nothing; the dead letters and last-seen
times by ``unnest`` of column arrays; and a ``NOTIFY`` on
:data:`~firewatch.storage.channels.INGEST` (delivered at commit) for the committed-row feed.
The ``COPY`` columns are the row tuples' fields, in order (:mod:`firewatch.core.rows`), so
rows go to the server without a per-row conversion.

:func:`telemetry_between` scans stored telemetry by time for model training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from firewatch.core.rows import DeadLetter, EventRow, Row, StatusRow, TelemetryRow
from firewatch.storage import channels

#: table: (columns in row-tuple order, binary COPY types)
STREAM_COLUMNS: dict[str, tuple[Sequence[str], Sequence[str]]] = {
    "telemetry": (
        TelemetryRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "float4", "float4", "bool", "bool",
         "float4", "float4", "bool", "int2[]", "float4[]", "float4[]", "bool[]"),
    ),
    "events": (
        EventRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "text", "int2", "int2", "int2", "int8",
         "int4", "text[]", "int2", "text", "jsonb"),
    ),
    "device_status": (
        StatusRow._fields,
        ("text", "int8", "timestamptz", "timestamptz", "text", "text", "float4", "float4",
         "text"),
    ),
}  # fmt: skip

#: Row type -> the stream table it is written to.
TABLE_OF_ROW: dict[type, str] = {
    TelemetryRow: "telemetry",
    EventRow: "events",
    StatusRow: "device_status",
}

#: Default cap on the raw bytes kept per dead letter (Settings.dead_letter_payload_cap_bytes).
DEFAULT_PAYLOAD_CAP = 4096

# Device status rows are inserted by this statement rather than the generic one: only rows
# actually inserted (not redeliveries) move device_state, and the latest *received* status
# wins. Server receive order, not device time, because a last will carries its connect time.
_INSERT_STATUS = """
WITH inserted AS (
    INSERT INTO device_status ({cols}) SELECT {cols} FROM _stage_device_status
    ON CONFLICT DO NOTHING RETURNING *
), latest AS (
    SELECT DISTINCT ON (device_id) * FROM inserted ORDER BY device_id, received_at DESC, seq DESC
), upsert AS (
    INSERT INTO device_state (device_id, state, ts, seq, firmware, battery_pct, updated_at)
    SELECT device_id, state, ts, seq, firmware, battery_pct, received_at FROM latest
    ON CONFLICT (device_id) DO UPDATE SET
        state = EXCLUDED.state, ts = EXCLUDED.ts, seq = EXCLUDED.seq,
        firmware = COALESCE(EXCLUDED.firmware, device_state.firmware),
        battery_pct = COALESCE(EXCLUDED.battery_pct, device_state.battery_pct),
        updated_at = EXCLUDED.updated_at
    WHERE device_state.updated_at <= EXCLUDED.updated_at
)
SELECT count(*) FROM inserted
"""

_LAST_SEEN = """
INSERT INTO device_last_seen (device_id, last_rx)
SELECT * FROM unnest(%s::text[], %s::timestamptz[])
ON CONFLICT (device_id) DO UPDATE SET last_rx = EXCLUDED.last_rx
WHERE device_last_seen.last_rx < EXCLUDED.last_rx
"""

# dedup_key is filled in by a trigger (migration 0007): the same topic and payload are one
# dead letter, however long the topic.
_INSERT_DEAD = """
INSERT INTO dead_letters (received_at, topic, payload, reason, detail, payload_sha256,
                          payload_size)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::bytea[], %s::text[], %s::text[],
                     %s::bytea[], %s::int[])
ON CONFLICT (dedup_key) DO NOTHING
"""

_NOTIFY = "SELECT pg_notify(%s, '')"

# Per table, built once: the COPY into its staging table, and the insert from it.
_COLLIST = {table: ", ".join(cols) for table, (cols, _types) in STREAM_COLUMNS.items()}
_COPY = {t: f"COPY _stage_{t} ({c}) FROM STDIN (FORMAT BINARY)" for t, c in _COLLIST.items()}
_INSERT = {
    t: _INSERT_STATUS.format(cols=c)
    if t == "device_status"
    else f"INSERT INTO {t} ({c}) SELECT {c} FROM _stage_{t} ON CONFLICT DO NOTHING"
    for t, c in _COLLIST.items()
}
_TYPES = {table: list(types) for table, (_cols, types) in STREAM_COLUMNS.items()}
#: Tables whose batches are first tried by one COPY into the table itself (``_copy_direct``);
#: device_status is not: its insert also moves device_state, by what was really inserted.
_DIRECT = ("telemetry", "events")
_COPY_DIRECT = {t: f"COPY {t} ({_COLLIST[t]}) FROM STDIN (FORMAT BINARY)" for t in _DIRECT}

_TELEMETRY_SCAN = (
    f"SELECT {', '.join(TelemetryRow._fields)} FROM telemetry WHERE ts >= %s AND ts < %s"
    " ORDER BY ts, device_id, seq"
)


def storable(text: str, limit: int = 1000) -> str:
    """``text`` as PostgreSQL ``text`` can hold it: NUL and unpaired surrogates escaped,
    at most ``limit`` characters. Dead letters describe bad input, so their own text
    columns must never be what fails."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def create_staging(conn: psycopg.Connection[Any]) -> None:
    """Make this connection's staging tables (``_stage_<table>``, emptied at every
    commit) if it has none yet. Once per connection, before :func:`write_batch`."""
    for table in STREAM_COLUMNS:
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _stage_{table} (LIKE {table}) ON COMMIT DELETE ROWS"
        )


@dataclass(slots=True)
class WriteCounts:
    """What one :func:`write_batch` stored: new rows and redeliveries per table, and new
    dead letters (one with the same topic and payload as a stored one is not new)."""

    stored: dict[str, int]
    duplicates: dict[str, int]
    dead_letters: int


def write_batch(
    conn: psycopg.Connection[Any],
    rows: Mapping[str, Sequence[Row]],
    dead: Sequence[DeadLetter] = (),
    last_seen: Mapping[str, datetime] | None = None,
    payload_cap: int = DEFAULT_PAYLOAD_CAP,
) -> WriteCounts:
    """Write one batch in the caller's transaction (the staging tables empty at its
    commit, so it must be one): ``rows`` by table name (:data:`STREAM_COLUMNS`), each
    row stored once however often it is written; ``dead`` with at most ``payload_cap``
    of their raw bytes; the devices' ``last_seen`` receive times (a time never moves
    back); and the ingest notification, delivered at commit. One round trip per
    statement: per non-empty table a ``COPY`` in a savepoint (telemetry and events), or if
    that met a row already stored, a ``COPY`` into staging and an ``INSERT``; then one
    statement each for last-seen times, dead letters and the notification."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("write_batch() must run inside the caller's transaction")
    stored: dict[str, int] = {}
    dups: dict[str, int] = {}
    new_dead = 0
    with conn.cursor() as cur:
        for table, table_rows in rows.items():
            if not table_rows:
                continue
            if table in _DIRECT and _copy_direct(conn, cur, table, table_rows):
                stored[table], dups[table] = len(table_rows), 0
                continue
            _copy_rows(cur, _COPY[table], table, table_rows)
            if table == "device_status":
                counted = cur.execute(_INSERT[table]).fetchone()
                inserted = int(counted[0]) if counted else 0
            else:
                cur.execute(_INSERT[table])
                inserted = cur.rowcount
            stored[table] = inserted
            dups[table] = len(table_rows) - inserted
        if last_seen:
            cur.execute(_LAST_SEEN, (list(last_seen), list(last_seen.values())))
        if dead:
            cur.execute(
                _INSERT_DEAD,
                (
                    [d.received_at for d in dead],
                    [storable(d.topic, 65_536) for d in dead],  # MQTT caps topics at 64 KiB
                    [d.payload[:payload_cap] for d in dead],
                    [d.reason.value for d in dead],
                    [storable(d.detail) for d in dead],
                    [hashlib.sha256(d.payload).digest() for d in dead],
                    [len(d.payload) for d in dead],
                ),
            )
            new_dead = cur.rowcount
        cur.execute(_NOTIFY, (channels.INGEST,))  # delivered at COMMIT
    return WriteCounts(stored, dups, new_dead)


def _copy_rows(cur: psycopg.Cursor[Any], statement: str, table: str, rows: Sequence[Row]) -> None:
    """One binary ``COPY`` (``statement``) of ``rows``, typed as ``table``'s columns."""
    with cur.copy(statement) as copy:
        copy.set_types(_TYPES[table])
        for row in rows:
            copy.write_row(row)


def _copy_direct(
    conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], table: str, rows: Sequence[Row]
) -> bool:
    """``COPY`` ``rows`` straight into ``table``, in a savepoint; False (and nothing
    written) if one of them is already stored, for the staging path to sort out.

    Redeliveries are rare (they follow a reconnect), so most batches have none, and for
    those one pass over the rows is enough: the staging path writes every row twice (into
    the temporary table, then into the real one with ``ON CONFLICT``), which is most of
    PostgreSQL's work per message (docs/performance.md). Other errors propagate as from
    the staging path (the writer isolates the offending row)."""
    try:
        with conn.transaction():  # a savepoint: a duplicate undoes this COPY only
            _copy_rows(cur, _COPY_DIRECT[table], table, rows)
    except psycopg.errors.UniqueViolation:
        return False
    return True


def telemetry_between(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    chunk_rows: int = 50_000,
) -> Iterator[list[TelemetryRow]]:
    """Stored telemetry with ``start <= ts < end`` in ``(ts, device_id, seq)`` order, in
    chunks of at most ``chunk_rows`` rows, read through a server-side cursor in one
    transaction (open until the iterator is exhausted or closed)."""
    with conn.transaction(), conn.cursor(name="firewatch_train_models") as cur:
        cur.execute(_TELEMETRY_SCAN, (start, end))
        while rows := cur.fetchmany(chunk_rows):
            yield [TelemetryRow._make(r) for r in rows]
