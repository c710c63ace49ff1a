"""The stream tables' SQL (``firewatch/storage/streams.py``) on a real PostgreSQL, without
ingest around it: what one batch write stores and counts, and the telemetry scan.
``tests/ingest/`` covers the writer that calls it (retries, poison isolation, acks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firewatch.core.rows import DeadLetter, Reason, Row, TelemetryRow
from firewatch.storage.streams import create_staging, telemetry_between, write_batch
from tests.builders import city
from tests.builders.rows import status, water_reading
from tests.conftest import Connect
from tests.helpers import scalar

DEVICE = city.WATER
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_a_batch_is_stored_once_and_redeliveries_are_counted(connect: Connect) -> None:
    conn = connect()
    create_staging(conn)
    rows: dict[str, list[Row]] = {
        "telemetry": [water_reading(seq, T0 + timedelta(seconds=seq)) for seq in (1, 2, 3)],
        "events": [],
        "device_status": [
            status(DEVICE, T0, "online", seq=4, firmware="1.0"),
            status(DEVICE, T0 + timedelta(1), "offline", seq=5, firmware="1.0"),
        ],
    }
    dead = [DeadLetter(T0, "firewatch/v1/x", b"\x00" * 10, Reason.NOT_JSON, "bad\x00detail")]
    seen = {DEVICE: T0 + timedelta(minutes=5)}
    with conn.transaction():
        first = write_batch(conn, rows, dead, seen, payload_cap=4)
    assert first.stored == {"telemetry": 3, "device_status": 2}
    assert first.duplicates == {"telemetry": 0, "device_status": 0}
    assert first.dead_letters == 1
    # the same batch again (a redelivery): nothing new; an older last-seen time is ignored
    with conn.transaction():
        again = write_batch(conn, rows, dead, {DEVICE: T0}, payload_cap=4)
    assert again.stored == {"telemetry": 0, "device_status": 0}
    assert again.duplicates == {"telemetry": 3, "device_status": 2}
    assert again.dead_letters == 0
    assert scalar(conn, "SELECT count(*) FROM telemetry") == 3
    assert scalar(conn, "SELECT state FROM device_state WHERE device_id = %s", DEVICE) == "offline"
    assert scalar(conn, "SELECT last_rx FROM device_last_seen") == T0 + timedelta(minutes=5)
    stored = conn.execute("SELECT payload, payload_size, detail FROM dead_letters").fetchall()
    assert stored == [(b"\x00" * 4, 10, "bad\\x00detail")]  # capped, sized, storable


def test_a_batch_with_some_rows_already_stored_adds_only_the_new_ones(connect: Connect) -> None:
    """The direct COPY meets the stored rows and is undone; the staging path stores the
    rest, counts the redeliveries, and the rows carry the batch's own transaction id (the
    feed cuts by it, docs/adr/0004) whichever path stored them."""
    conn = connect()
    create_staging(conn)
    with conn.transaction():
        write_batch(
            conn, {"telemetry": [water_reading(s, T0 + timedelta(seconds=s)) for s in (1, 2)]}
        )
    mixed = [water_reading(s, T0 + timedelta(seconds=s)) for s in (2, 3, 3, 4)]
    with conn.transaction():
        counts = write_batch(conn, {"telemetry": mixed})
        xid = scalar(conn, "SELECT pg_current_xact_id()::text")
    assert counts.stored == {"telemetry": 2}
    assert counts.duplicates == {"telemetry": 2}  # seq 2 stored before, seq 3 twice in it
    assert scalar(conn, "SELECT array_agg(seq ORDER BY seq) FROM telemetry") == [1, 2, 3, 4]
    assert scalar(conn, "SELECT count(*) FROM telemetry WHERE ingest_xid::text = %s", xid) == 2
    # A fresh batch goes in by the direct COPY, still under its transaction's id.
    with conn.transaction():
        counts = write_batch(conn, {"telemetry": [water_reading(5, T0 + timedelta(seconds=5))]})
        xid = scalar(conn, "SELECT pg_current_xact_id()::text")
    assert (counts.stored, counts.duplicates) == ({"telemetry": 1}, {"telemetry": 0})
    assert scalar(conn, "SELECT seq FROM telemetry WHERE ingest_xid::text = %s", xid) == 5


def test_a_batch_write_needs_the_callers_transaction(connect: Connect) -> None:
    """Outside one, the staging tables would empty between the COPY and the INSERT."""
    conn = connect()
    create_staging(conn)
    with pytest.raises(RuntimeError, match="transaction"):
        write_batch(conn, {"telemetry": [water_reading(1, T0)]})
    assert scalar(conn, "SELECT count(*) FROM telemetry") == 0


def test_telemetry_between_reads_a_window_in_order_in_chunks(connect: Connect) -> None:
    conn = connect()
    create_staging(conn)
    rows = [water_reading(seq, T0 + timedelta(seconds=seq)) for seq in (5, 1, 4, 2, 3)]
    with conn.transaction():
        write_batch(conn, {"telemetry": rows})
    start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=4)
    chunks = list(telemetry_between(conn, start, end, chunk_rows=2))
    assert [[r.seq for r in chunk] for chunk in chunks] == [[1, 2], [3]]
    assert all(isinstance(r, TelemetryRow) for chunk in chunks for r in chunk)
