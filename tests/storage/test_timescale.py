"""TimescaleDB's storage, maintained by Firewatch itself (issue 13): chunks made ahead over
the window ingest accepts, chunks past retention dropped, chunks past their compression age
compressed (one owner: the extension's policy jobs are removed), concurrent runs compressing
each chunk once, and the rows of a compressed chunk still read, by the feed too.

These run on the TimescaleDB pass of ``make test`` (``FIREWATCH_TEST_FLAVOUR=timescale``)
and are reported skipped on the plain pass, whose counterparts are in ``test_storage.py``
(partitions) and ``test_flavour.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from firewatch.core.settings import Settings
from firewatch.storage.feed import FeedCursor, read_batch
from firewatch.storage.maintenance import compress_due, maintain
from tests.helpers import day_container, maintain_at_once, scalar

pytestmark = pytest.mark.flavour("timescale")

DAY = timedelta(days=1)


def chunks(db: psycopg.Connection[Any], table: str) -> dict[datetime, bool]:
    """range_start -> is_compressed of ``table``'s chunks."""
    rows = db.execute(
        "SELECT range_start, is_compressed FROM timescaledb_information.chunks"
        " WHERE hypertable_name = %s",
        (table,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def put(db: psycopg.Connection[Any], ts: datetime, seq: int, device: str = "D-WD-001-W1") -> None:
    db.execute(
        "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
        " VALUES (%s, %s, %s, now(), 300)",
        (device, seq, ts),
    )


def fed(db: psycopg.Connection[Any], cursor: FeedCursor) -> tuple[list[int], FeedCursor]:
    """The telemetry seqs the feed hands out from ``cursor`` until caught up."""
    seqs: list[int] = []
    for _ in range(1000):
        batch = read_batch(db, cursor, max_age_s=10 * 86_400)
        seqs += [r.seq for r in batch.telemetry]
        cursor = batch.cursor
        if batch.caught_up:
            return seqs, cursor
    raise AssertionError("the feed never caught up")


def test_the_extension_runs_no_policy_of_ours(db: psycopg.Connection[Any]) -> None:
    # migration 0016: compression and retention are maintenance's, not the scheduler's
    procs = {r[0] for r in db.execute("SELECT proc_name FROM timescaledb_information.jobs")}
    assert not procs & {"policy_compression", "policy_retention"}
    # the compression settings the policies used stay
    segment = scalar(
        db,
        "SELECT attname FROM timescaledb_information.compression_settings"
        " WHERE hypertable_name = 'telemetry' AND segmentby_column_index = 1",
    )
    assert segment == "device_id"


def test_chunks_cover_the_accepted_window_before_any_row_arrives(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    today = datetime.now(UTC).date()
    # the backlog limit (7 days) back to premake days ahead, every stream
    for offset in (-7, -1, 0, 1, settings.partition_premake_days):
        day = today + timedelta(days=offset)
        for table in ("telemetry", "events", "device_status"):
            assert day_container(db, table, day) is not None, (table, day)
    assert scalar(db, "SELECT count(*) FROM telemetry") == 0
    assert maintain(db, settings).created == 0  # made once


def test_old_chunks_end_compressed_and_expired_ones_gone(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    now = datetime.now(UTC)
    expired = now - timedelta(days=settings.telemetry_retention_days + 3)
    old = now - timedelta(days=20)  # past the 7-day compression age and the backlog limit
    fresh = now - timedelta(days=2)  # within both: stays as it is
    for seq, ts in enumerate((expired, old, old + timedelta(minutes=1), fresh)):
        put(db, ts, seq)
    assert day_container(db, "telemetry", expired.date()) is not None

    result = maintain(db, settings)
    assert result.dropped >= 1
    assert result.compressed >= 1
    assert day_container(db, "telemetry", expired.date()) is None
    state = chunks(db, "telemetry")
    old_start = datetime.combine(old.date(), datetime.min.time(), UTC)
    fresh_start = datetime.combine(fresh.date(), datetime.min.time(), UTC)
    assert state[old_start] is True
    assert state[fresh_start] is False
    # nothing left uncompressed past the age; every day within it still plain
    age = timedelta(days=max(settings.telemetry_compress_after_days, 8))
    for start, compressed in state.items():
        assert compressed == (start + DAY <= now - age), start
    # the compressed rows still read, in order; the expired one is gone
    got = db.execute("SELECT seq FROM telemetry ORDER BY ts").fetchall()
    assert got == [(1,), (2,), (3,)]

    again = maintain(db, settings)
    assert (again.dropped, again.compressed) == (0, 0)


def test_a_late_reading_into_a_compressed_day_is_stored_and_fed(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    # compress everything past a 1-day age, then write into such a day: DML on compressed
    # chunks is supported; the feed must still see the row exactly once
    short = settings.model_copy(
        update={"telemetry_compress_after_days": 1, "max_backlog_age_s": 0.5 * 86_400}
    )
    day = datetime.now(UTC) - timedelta(days=3)
    put(db, day, 1)
    assert compress_due(db, short) >= 1
    assert chunks(db, "telemetry")[datetime.combine(day.date(), datetime.min.time(), UTC)]
    seqs, cursor = fed(db, FeedCursor.start())
    assert seqs == [1]
    put(db, day + timedelta(seconds=1), 2)
    seqs, _ = fed(db, cursor)
    assert seqs == [2]
    assert scalar(db, "SELECT count(*) FROM telemetry") == 2


def test_runs_started_together_compress_each_chunk_once(
    db: psycopg.Connection[Any], settings: Settings, database_url: str
) -> None:
    now = datetime.now(UTC)
    for k in range(6):  # six old days with rows, none compressed yet
        put(db, now - timedelta(days=12 + k), k)
    due = sum(1 for s, c in chunks(db, "telemetry").items() if not c and s + DAY <= now - 8 * DAY)
    assert due >= 6
    results = maintain_at_once(database_url, settings, 4)
    # telemetry's due chunks plus any of the other streams': each compressed by one run
    assert sum(r.compressed for r in results) >= due
    assert sum(r.compressed for r in results) == scalar(
        db, "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed"
    )
    assert scalar(db, "SELECT count(*) FROM telemetry") == 6


def test_ingest_maintenance_leaves_compression_to_the_analysis_worker(
    db: psycopg.Connection[Any], settings: Settings
) -> None:
    put(db, datetime.now(UTC) - timedelta(days=20), 1)
    assert maintain(db, settings, compress=False).compressed == 0
    assert not any(chunks(db, "telemetry").values())
    assert compress_due(db, settings) == 1
