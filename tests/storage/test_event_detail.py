"""``events.detail`` (migration 0018, issue 17): a nullable ``jsonb`` column on both storage
flavours, which one batch write stores by the direct COPY and by the staging path and the
feed hands back as a dict; the migration also applies to a table that already holds rows
(on TimescaleDB: in a compressed chunk), and such a chunk takes rows with a detail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.core.domain import PanelEventType
from firewatch.storage.feed import FeedCursor, read_batch
from firewatch.storage.migrate import upgrade
from firewatch.storage.streams import create_staging, write_batch
from tests.builders import city
from tests.builders.rows import event
from tests.helpers import scalar

DETAIL = {"quantity": "pressure", "value": 312.5, "unit": "kPa", "raw": 3125, "ok": None}
ANALOG = PanelEventType.ANALOG


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def details(conn: psycopg.Connection[Any]) -> dict[int, Any]:
    return dict(conn.execute("SELECT seq, detail FROM events ORDER BY seq").fetchall())


def test_the_column_is_nullable_jsonb_on_the_table_and_its_parts(
    db: psycopg.Connection[Any], flavour: str
) -> None:
    assert db.execute(
        "SELECT data_type, is_nullable, column_default FROM information_schema.columns"
        " WHERE table_name = 'events' AND column_name = 'detail'"
    ).fetchone() == ("jsonb", "YES", None)
    if flavour == "postgres":  # every day partition has it (inherited)
        parts = scalar(
            db,
            "SELECT count(*) FROM pg_inherits i JOIN pg_attribute a ON a.attrelid = i.inhrelid"
            " WHERE i.inhparent = 'events'::regclass AND a.attname = 'detail'",
        )
        assert parts == scalar(
            db, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"
        )
        assert parts > 0


def test_a_batch_stores_detail_by_either_path_and_the_feed_reads_it(
    db: psycopg.Connection[Any],
) -> None:
    t = now()
    first = [
        event(city.PANEL, t, ANALOG, 0, seq=1, detail=DETAIL),
        event(city.PANEL, t + timedelta(seconds=1), ANALOG, 0, seq=2),  # no detail: NULL
    ]
    create_staging(db)
    with db.transaction():
        counts = write_batch(db, {"events": first})  # the direct COPY
    assert counts.stored == {"events": 2}
    # seq 1 again with another detail and a new seq 3: the staging path; the first one stays
    again = [
        event(city.PANEL, t, ANALOG, 0, seq=1, detail={"value": 1.0}),
        event(city.PANEL, t + timedelta(seconds=2), ANALOG, 0, seq=3, detail={"n": 7, "b": True}),
    ]
    with db.transaction():
        counts = write_batch(db, {"events": again})
    assert (counts.stored, counts.duplicates) == ({"events": 1}, {"events": 1})
    assert details(db) == {1: DETAIL, 2: None, 3: {"n": 7, "b": True}}
    batch = read_batch(db, FeedCursor.start(), max_age_s=86_400)
    assert {e.seq: e.detail for e in batch.events} == details(db)


def test_the_migration_applies_to_a_table_with_rows_and_compressed_chunks(
    db: psycopg.Connection[Any], flavour: str
) -> None:
    t = now()
    # the table as 0017 left it, with a row already stored (compressed on TimescaleDB)
    db.execute("ALTER TABLE events DROP COLUMN detail")
    db.execute("DELETE FROM schema_migrations WHERE version = 18 AND name = 'event_detail'")
    db.execute(
        "INSERT INTO events (device_id, seq, ts, received_at, event_type, system_type,"
        " system_addr, status_word, flags) VALUES (%s, 1, %s, %s, 'system_status', 1, 0, 1, '{}')",
        (city.PANEL, t, t),
    )
    if flavour == "timescale":
        db.execute("SELECT compress_chunk(c) FROM show_chunks('events') c")
        compressed = scalar(
            db,
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'events' AND is_compressed",
        )
        assert compressed >= 1

    assert upgrade(db) == ["0018_event_detail"]

    assert details(db) == {1: None}
    db.execute(
        "INSERT INTO events (device_id, seq, ts, received_at, event_type, system_type,"
        " system_addr, status_word, flags, detail)"
        " VALUES (%s, 2, %s, %s, 'analog', 0, 0, 0, '{}', %s::jsonb)",
        (city.PANEL, t + timedelta(seconds=1), t, '{"value": 312.5}'),
    )  # into the same (compressed) chunk
    assert details(db) == {1: None, 2: {"value": 312.5}}
