"""Poison isolation: a message the database refuses never stops ingest.

Issue 9 found that one status message with a NUL in a text field failed the batch's COPY,
ingest exited, got the message redelivered and exited again: nothing after it was ever
stored. The contract now refuses NUL (tests/ingest/test_service.py covers that message
end to end), but the class of failure is "a valid message the database refuses", so these
tests make the database refuse rows in ways the contract does not know about: raw rows
handed to the writer, and a CHECK constraint added to the test database.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg

from firewatch.core.backoff import Backoff
from firewatch.core.rows import Reason
from firewatch.core.settings import Settings
from firewatch.ingest.ingest_metrics import IngestMetrics
from firewatch.ingest.writer import BatchWriter, WriteBatch
from tests.builders.city import WATER, WATER_TOPIC
from tests.builders.payloads import water
from tests.builders.rows import status, water_reading
from tests.helpers import ThreadedIngest, publish_all, scalar, wait_until

DEVICE = WATER


def _writer(database_url: str) -> BatchWriter:
    return BatchWriter(database_url, IngestMetrics(), Backoff(0.05, 0.5), threading.Event())


def test_rows_the_database_refuses_become_dead_letters_and_the_rest_commit(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    now = datetime.now(UTC)
    nul = status(DEVICE, now, "online", seq=7, firmware="x\x00y")
    surrogate = status(DEVICE, now, "online", seq=8, firmware="\ud800")
    batch = WriteBatch()
    for seq in range(1, 41):
        batch.add(water_reading(seq), seq, WATER_TOPIC, b"raw %d" % seq)
        if seq == 10:
            batch.add(nul, 100, WATER_TOPIC.replace("telemetry", "status"), b"nul bytes")
        if seq == 30:
            batch.add(surrogate, 101, WATER_TOPIC.replace("telemetry", "status"), b"surrogate")
    with _writer(database_url) as writer:
        result = writer.flush(batch)
    # All 40 good rows committed, the two poison messages became dead letters.
    assert result.stored == {"telemetry": 40}
    assert scalar(db, "SELECT count(*) FROM telemetry") == 40
    assert scalar(db, "SELECT count(*) FROM device_status") == 0
    assert len(result.rejected) == 2
    assert result.transactions > 2  # the batch was split: it did not commit as one
    rows = db.execute(
        "SELECT payload, reason, detail, payload_size FROM dead_letters ORDER BY payload"
    ).fetchall()
    assert [(bytes(p), r, n) for p, r, _d, n in rows] == [
        (b"nul bytes", Reason.DB_REJECTED.value, 9),
        (b"surrogate", Reason.DB_REJECTED.value, 9),
    ]
    details = {bytes(p): d for p, _r, d, _n in rows}
    # the database's own error for the NUL; the client's encoding error for the surrogate
    assert "CharacterNotInRepertoire" in details[b"nul bytes"] or "0x00" in details[b"nul bytes"]
    assert "UnicodeEncodeError" in details[b"surrogate"]
    # every message's ack is released with the batch
    assert len(batch.acks) == 42


def test_a_batch_of_only_poison_and_a_poison_batch_of_one(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    now = datetime.now(UTC)
    with _writer(database_url) as writer:
        for n in (1, 5):
            batch = WriteBatch()
            for i in range(n):
                row = status(DEVICE, now, "online", seq=1000 * n + i, firmware="\x00")
                batch.add(row, i, f"firewatch/v1/U-WD-001/{DEVICE}/status", b"p%d-%d" % (n, i))
            result = writer.flush(batch)
            assert len(result.rejected) == n
    assert scalar(db, "SELECT count(*) FROM dead_letters WHERE reason = 'db_rejected'") == 6


def test_a_constraint_refusing_messages_mid_stream_does_not_stop_ingest(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    """A real worker, real MQTT: poison interleaved with 300 good messages."""
    db.execute("ALTER TABLE telemetry ADD CONSTRAINT no_123_5 CHECK (pressure_kpa <> 123.5)")
    poison_seqs = {50, 51, 177, 299}
    stream = [
        (WATER_TOPIC, water(seq, 123.5 if seq in poison_seqs else 300.0 + seq % 7))
        for seq in range(1, 301)
    ]
    with ThreadedIngest(mqtt_settings) as ingest:
        publish_all(mqtt_settings.mqtt_url or "", stream)
        wait_until(
            lambda: (
                scalar(db, "SELECT count(*) FROM telemetry") == 300 - len(poison_seqs)
                and scalar(db, "SELECT count(*) FROM dead_letters") == len(poison_seqs)
            ),
            30,
            "good rows stored and poison dead-lettered",
        )
        # still running: a message after the poison is stored
        publish_all(mqtt_settings.mqtt_url or "", [(WATER_TOPIC, water(1000))])
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 297, 20, "later row")
        stats = ingest.stop()
    assert stats.rejected == len(poison_seqs)
    assert stats.received == 301
    dead = db.execute("SELECT payload, reason, detail FROM dead_letters").fetchall()
    payloads = {hashlib.sha256(bytes(p)).digest() for p, _r, _d in dead}
    assert payloads == {hashlib.sha256(p).digest() for _t, p in stream if b"123.5" in p}
    assert {r for _p, r, _d in dead} == {"db_rejected"}
    assert all("no_123_5" in d for _p, _r, d in dead), dead[0][2]
    # everything was acknowledged: a new worker on the same session gets nothing again
    with ThreadedIngest(mqtt_settings) as again:
        publish_all(mqtt_settings.mqtt_url or "", [(WATER_TOPIC, water(1001))])
        wait_until(lambda: scalar(db, "SELECT count(*) FROM telemetry") == 298, 20, "new row")
        assert again.stop().received == 1


def test_dead_letters_over_quota_are_counted_not_stored(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    settings = mqtt_settings.model_copy(
        update={"dead_letter_quota_per_device": 5, "dead_letter_quota_total": 8}
    )
    noisy = "firewatch/v1/U-WD-001/NOT-REGISTERED/telemetry"
    other = "firewatch/v1/U-WD-001/ALSO-UNKNOWN/telemetry"
    msgs = [(noisy, water(seq)) for seq in range(1, 101)] + [(other, water(1)), (other, water(2))]
    with ThreadedIngest(settings) as ingest:
        publish_all(settings.mqtt_url or "", msgs)
        wait_until(lambda: ingest.service.stats.received == len(msgs), 20, "all received")
        stats = ingest.stop()
    stored = dict(
        db.execute(
            "SELECT split_part(topic, '/', 4), count(*) FROM dead_letters GROUP BY 1"
        ).fetchall()
    )
    assert stored == {"NOT-REGISTERED": 5, "ALSO-UNKNOWN": 2}
    assert stats.over_quota == 95
    dropped = ingest.service.metrics.registry.get_sample_value(
        "firewatch_ingest_dead_letters_dropped_total", {"reason": "unknown_device"}
    )
    assert dropped == 95


def test_when_even_the_dead_letter_is_refused_a_shortened_one_is_kept(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    """Defence in depth: a schema change nobody foresaw refuses the dead letter too; a
    shortened dead letter is stored instead of stopping ingest in a crash loop."""
    db.execute("ALTER TABLE telemetry ADD CONSTRAINT no_123_5 CHECK (pressure_kpa <> 123.5)")
    db.execute("ALTER TABLE dead_letters ADD CONSTRAINT small CHECK (octet_length(payload) <= 256)")
    batch = WriteBatch()
    batch.add(water_reading(1), 1, WATER_TOPIC, b"ok")
    batch.add(water_reading(2, pressure=123.5), 2, WATER_TOPIC, b"x" * 1000)
    with _writer(database_url) as writer:
        result = writer.flush(batch)
    assert result.stored == {"telemetry": 1}
    (dead,) = result.rejected
    assert dead.payload == b"x" * 256
    row = db.execute("SELECT payload, payload_size, detail FROM dead_letters").fetchone()
    assert row is not None
    assert bytes(row[0]) == b"x" * 256
    assert row[1] == 256  # what was kept; the size that arrived is in the detail
    assert "(payload 1000 bytes, topic 43 characters) was refused too" in row[2]
