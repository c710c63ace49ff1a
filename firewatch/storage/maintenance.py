"""Time-partition upkeep on both storage flavours, and record expiry. Idempotent; run at
ingest start-up, hourly by ingest, and by ``firewatch db maintain``.

* Plain PostgreSQL: daily partitions made ahead and dropped after retention
  (``firewatch_maintain_partitions``, migration 0003).
* TimescaleDB: the same model, done by us rather than by the extension's job scheduler
  (whose jobs fail on PostgreSQL 15.20 with 2.28.3; migration 0016 removed its policies):
  chunks made ahead (``firewatch_premake_chunks``) so no writer ever creates one, chunks
  past retention dropped, chunks past the compression age compressed, one chunk per
  transaction so writers into an old day wait for one chunk at most.
* Both: dead letters and closed anomaly episodes expired after record retention.

Every run holds a transaction-scoped advisory lock, so any number started together (three
ingest workers starting at once, a cron job beside them) take turns instead of racing over
the same partitions or chunks; a chunk another run compressed meanwhile is left alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

import psycopg

from firewatch.core.settings import Settings
from firewatch.storage.migrate import current_flavour

STREAMS = ("telemetry", "events", "device_status")
_LOCK_KEY = 0x4D41494E  # "MAIN": one maintenance run at a time per database

# Uncompressed chunks of a hypertable that end before a cutoff, oldest first.
_DUE_FOR_COMPRESSION = """
SELECT format('%%I.%%I', chunk_schema, chunk_name)
FROM timescaledb_information.chunks
WHERE hypertable_schema = current_schema() AND hypertable_name = %s
  AND NOT is_compressed AND range_end <= %s
ORDER BY range_start
"""
_IS_COMPRESSED = """
SELECT is_compressed FROM timescaledb_information.chunks
WHERE format('%%I.%%I', chunk_schema, chunk_name) = %s
"""


@dataclass(frozen=True)
class MaintenanceResult:
    """What one run did: partitions or chunks made ahead (``created``) and dropped past
    retention (``dropped``), chunks compressed (TimescaleDB), records expired."""

    created: int
    dropped: int
    dead_letters_deleted: int
    anomalies_deleted: int = 0  # closed anomaly episodes past record retention
    compressed: int = 0  # TimescaleDB chunks compressed by this run

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"partitions/chunks made {self.created}, dropped {self.dropped}, compressed "
            f"{self.compressed}; dead letters expired {self.dead_letters_deleted}, anomaly "
            f"episodes expired {self.anomalies_deleted}"
        )


def _retention_days(table: str, settings: Settings) -> int:
    if table == "telemetry":
        return settings.telemetry_retention_days
    return settings.record_retention_days


def _backlog_days(settings: Settings) -> int:
    """Days back that ingest may still write into: every device time validation accepts."""
    return ceil(settings.max_backlog_age_s / 86_400) + 1


def _compress_after_days(table: str, settings: Settings) -> int:
    # Never compress a day that ingest may still write late readings into.
    asked = (
        settings.telemetry_compress_after_days
        if table == "telemetry"
        else settings.record_compress_after_days
    )
    return max(asked, _backlog_days(settings))


def maintain(
    conn: psycopg.Connection[tuple[object, ...]],
    settings: Settings,
    now: datetime | None = None,
    *,
    compress: bool = True,
) -> MaintenanceResult:
    """Bring partitions or chunks in line with settings and expire old records (see the
    module docstring); with ``compress`` also compress the chunks that are due
    (:func:`compress_due`). ``now`` is the clock (tests move it). Raises psycopg errors
    unchanged; a run that fails part way leaves what it finished done."""
    flavour = current_flavour(conn)
    if flavour is None:
        raise RuntimeError("database is not migrated: run `firewatch db upgrade` first")
    now = now or datetime.now(UTC)
    # Cover every device time that validation accepts, plus a few days ahead.
    past_days = _backlog_days(settings)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    ahead_days = settings.partition_premake_days
    created = dropped = 0
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table in STREAMS:
            retention = _retention_days(table, settings)
            if flavour == "postgres":
                row = conn.execute(
                    "SELECT * FROM firewatch_maintain_partitions(%s::regclass, %s, %s, %s)",
                    (table, past_days, ahead_days, retention),
                ).fetchone()
                assert row is not None
                created += int(str(row[0]))
                dropped += int(str(row[1]))
                continue
            row = conn.execute(
                "SELECT firewatch_premake_chunks(%s::regclass, %s, %s)",
                (table, day - timedelta(days=past_days), day + timedelta(days=ahead_days + 1)),
            ).fetchone()
            assert row is not None
            created += int(str(row[0]))
            gone = conn.execute(
                "SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)",
                (table, now - timedelta(days=retention)),
            ).fetchall()
            dropped += len(gone)
        dead_deleted, anomalies_deleted = _expire_records(conn, settings)
    compressed = compress_due(conn, settings, now) if compress else 0
    return MaintenanceResult(created, dropped, dead_deleted, anomalies_deleted, compressed)


def compress_due(
    conn: psycopg.Connection[tuple[object, ...]], settings: Settings, now: datetime | None = None
) -> int:
    """Compress the TimescaleDB chunks past their compression age (never a day ingest may
    still write late readings into); return how many. Nothing on plain PostgreSQL.

    Compression of a day of a city's telemetry takes seconds, so ingest does not call this
    from its writer (``maintain(..., compress=False)``): the analysis worker does, hourly,
    and ``firewatch db maintain`` does."""
    if current_flavour(conn) != "timescale":
        return 0
    now = now or datetime.now(UTC)
    due: list[str] = []
    with conn.transaction():
        for table in STREAMS:
            cutoff = now - timedelta(days=_compress_after_days(table, settings))
            due += [str(r[0]) for r in conn.execute(_DUE_FOR_COMPRESSION, (table, cutoff))]
    compressed = 0
    for chunk in due:
        # One chunk per transaction: an insert of a late reading into this chunk waits for
        # this one compression only, and a run that stops part way keeps what it did.
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            if conn.execute(_IS_COMPRESSED, (chunk,)).fetchone() == (False,):
                conn.execute("SELECT compress_chunk(%s::regclass)", (chunk,))
                compressed += 1
    return compressed


def _expire_records(
    conn: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> tuple[int, int]:
    cur = conn.execute(
        "DELETE FROM dead_letters WHERE received_at < now() - make_interval(days => %s)",
        (settings.record_retention_days,),
    )
    dead_deleted = cur.rowcount
    anomalies_deleted = 0
    # Alarm records: an episode is kept for the retention period after it closed
    # (settings refuse less than a year); open ones are kept however old. The table
    # exists from migration 0004 on; an older schema has nothing to expire.
    if conn.execute("SELECT to_regclass('anomalies')").fetchone() != (None,):
        cur = conn.execute(
            "DELETE FROM anomalies WHERE ended_at < now() - make_interval(days => %s)",
            (settings.record_retention_days,),
        )
        anomalies_deleted = cur.rowcount
    return dead_deleted, anomalies_deleted
