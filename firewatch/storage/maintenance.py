"""Time-partition upkeep: make partitions ahead, drop them after retention (plain PostgreSQL),
or keep TimescaleDB's retention policies in line with Settings; expire old dead letters and
closed anomaly episodes. Idempotent; run at ingest start-up, hourly by ingest, and by
``firewatch db maintain``.

Runs hold a transaction-scoped advisory lock, so any number of them started together (three
ingest workers starting at once, a cron job beside them) take turns instead of racing over
the same partitions or policies; on TimescaleDB a retention policy is replaced only when its
value changed, not on every run."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import psycopg

from firewatch.core.settings import Settings
from firewatch.storage.migrate import current_flavour

STREAMS = ("telemetry", "events", "device_status")
_LOCK_KEY = 0x4D41494E  # "MAIN": one maintenance run at a time per database

_POLICY_IN_LINE = """
SELECT EXISTS (
    SELECT 1 FROM timescaledb_information.jobs
    WHERE proc_name = 'policy_retention' AND hypertable_name = %s
      AND (config->>'drop_after')::interval = make_interval(days => %s))
"""


@dataclass(frozen=True)
class MaintenanceResult:
    created: int
    dropped: int
    dead_letters_deleted: int
    anomalies_deleted: int = 0  # closed anomaly episodes past record retention


def maintain(conn: psycopg.Connection[tuple[object, ...]], settings: Settings) -> MaintenanceResult:
    """Bring partitions / policies in line with settings. Raises psycopg errors unchanged."""
    flavour = current_flavour(conn)
    if flavour is None:
        raise RuntimeError("database is not migrated: run `firewatch db upgrade` first")
    created = dropped = 0
    # Cover every device time that validation accepts, plus a few days ahead.
    past_days = ceil(settings.max_backlog_age_s / 86_400) + 1
    ahead_days = settings.partition_premake_days
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for table in STREAMS:
            retention = (
                settings.telemetry_retention_days
                if table == "telemetry"
                else settings.record_retention_days
            )
            if flavour == "postgres":
                row = conn.execute(
                    "SELECT * FROM firewatch_maintain_partitions(%s::regclass, %s, %s, %s)",
                    (table, past_days, ahead_days, retention),
                ).fetchone()
                assert row is not None
                created += int(str(row[0]))
                dropped += int(str(row[1]))
            elif conn.execute(_POLICY_IN_LINE, (table, retention)).fetchone() != (True,):
                conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (table,))
                conn.execute(
                    "SELECT add_retention_policy(%s, make_interval(days => %s))",
                    (table, retention),
                )
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
    return MaintenanceResult(created, dropped, dead_deleted, anomalies_deleted)
