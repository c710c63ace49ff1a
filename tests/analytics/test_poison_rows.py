"""Rows the database can hold but ingest never writes do not stop analytics.

Issue 9: a status message at year 1 (``0001-01-01T00:00:00+01:00``, 1 BC in UTC) was
stored, and ``firewatch analytics`` died in ``feed.read_batch`` on every restart. Ingest
now refuses such times, so these rows are inserted directly: each is recorded in
``skipped_rows`` with its reason, and the rows after it are processed as usual.
"""

from __future__ import annotations

from typing import Any

import psycopg

from firewatch.core.settings import Settings
from tests.builders import city
from tests.builders.payloads import NORMAL_KPA as NORMAL
from tests.builders.rows import insert_readings, readings, recent_second
from tests.helpers import ThreadedAnalytics, scalar, stored_episodes

W1 = city.WATER
LOW = "rule.pressure_low"

POISON = [
    # (table, insert statement): each holds a value only a direct insert could write
    (
        "device_status",
        "INSERT INTO device_status (device_id, seq, ts, received_at, state)"
        " VALUES ('D-WD-001-W1', 0, '0001-01-01T00:00:00+01:00', now(), 'offline')",
    ),
    (
        "telemetry",
        "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
        " VALUES ('D-WD-001-W2', 1, 'infinity', now(), 300)",
    ),
    (
        "telemetry",
        "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
        " VALUES ('D-WD-001-W2', 2, now(), now(), 'Infinity')",
    ),
    (
        "telemetry",
        "INSERT INTO telemetry (device_id, seq, ts, received_at, ambient_c, port_no,"
        " port_temp_c, port_current_a, port_charging)"
        " VALUES ('D-JA-001-E1', 3, now(), now(), 20, '{1,2}', '{30}', '{1,1}', '{t,t}')",
    ),
    (
        "events",
        "INSERT INTO events (device_id, seq, ts, received_at, event_type, system_type,"
        " system_addr, status_word, flags) VALUES ('D-WD-001-P1', 4, now(), now(), 'telepathy',"
        " 1, 1, 2, '{fire}')",
    ),
    (
        "dead_letters",
        "INSERT INTO dead_letters (received_at, topic, payload, reason, detail,"
        " payload_sha256, payload_size) VALUES (now(), 'firewatch/v1/U/D/telemetry', 'x',"
        " 'no-such-reason', '', '\\x00', 1)",
    ),
]
# A device time no reader accepts. TimescaleDB refuses infinite times in a hypertable's
# time column ("timestamp out of range"), so there the row is one far in the future.
INFINITE_TIME = (
    "telemetry",
    "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
    " VALUES ('D-WD-001-W2', 5, '-infinity', '294276-01-01', 300)",
)
FAR_TIME = (
    "telemetry",
    "INSERT INTO telemetry (device_id, seq, ts, received_at, pressure_kpa)"
    " VALUES ('D-WD-001-W2', 5, '2500-01-01', '294276-01-01', 300)",
)


def test_rows_no_reader_can_process_are_recorded_and_skipped(
    settings: Settings, db: psycopg.Connection[Any], flavour: str
) -> None:
    t0 = recent_second()
    poison = [*POISON, INFINITE_TIME if flavour == "postgres" else FAR_TIME]
    for _table, sql in poison:
        db.execute(sql)
    # Real readings around the poison: the detectors must still see these.
    insert_readings(db, W1, readings(1, t0, [NORMAL] * 5 + [80.0, 75.0, 70.0]))
    with ThreadedAnalytics(settings) as an:
        an.wait(lambda: len(stored_episodes(db, W1, LOW)) == 1, 20, "the low-pressure episode")
        an.wait(
            lambda: scalar(db, "SELECT count(*) FROM skipped_rows") == len(poison),
            20,
            "every poison row recorded",
        )
        stats = an.stop()
    assert stats.skipped == len(poison)
    recorded = db.execute("SELECT source, reason, row_key FROM skipped_rows").fetchall()
    assert sorted(s for s, _r, _k in recorded) == sorted(t for t, _sql in poison)
    reasons = " | ".join(r for _s, r, _k in recorded)
    for expected in (
        "outside 1970-2200",
        "not a finite number",
        "different lengths",
        "unknown event type",
        "unreadable row",
    ):
        assert expected in reasons
    # A restart resumes past the poison and records nothing twice.
    with ThreadedAnalytics(settings) as an:
        insert_readings(db, W1, readings(9, t0 + 80, [NORMAL] * 3))
        an.wait(lambda: stored_episodes(db, W1, LOW)[0]["ended_at"] is not None, 20, "the closing")
        assert an.stop().skipped == 0
    assert scalar(db, "SELECT count(*) FROM skipped_rows") == len(poison)
