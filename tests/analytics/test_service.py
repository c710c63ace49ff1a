"""The analytics service (firewatch/analytics/service.py) on a real PostgreSQL and, end to
end, behind a real ingest worker and Mosquitto: committed rows become anomaly episodes,
restarts resume from the checkpoint, a crash replay rewrites nothing, a database outage is
survived, and silence is judged against the injected clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from firewatch.core.settings import Settings
from tests.builders import city
from tests.builders.payloads import NORMAL_KPA, panel_event
from tests.builders.rows import dt, insert_readings, readings, recent_second
from tests.helpers import (
    FakeClock,
    ThreadedAnalytics,
    ThreadedIngest,
    publish_all,
    scalar,
    stored_anomalies,
    stored_episodes,
)

W1, W2, UNIT, PANEL = city.WATER, city.WATER_2, city.UNIT, city.PANEL
NORMAL = NORMAL_KPA
LOW = "rule.pressure_low"


def checkpoint_rows(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT rows_processed FROM analytics_checkpoints").fetchone()
    return -1 if row is None else int(row[0])


def assert_no_duplicates(db: psycopg.Connection[Any]) -> None:
    dup_keys = db.execute(
        "SELECT device_id, detector, metric, component, started_at, count(*) FROM anomalies"
        " GROUP BY 1, 2, 3, 4, 5 HAVING count(*) > 1"
    ).fetchall()
    assert dup_keys == []
    dup_open = db.execute(
        "SELECT device_id, detector, metric, component, count(*) FROM anomalies"
        " WHERE ended_at IS NULL GROUP BY 1, 2, 3, 4 HAVING count(*) > 1"
    ).fetchall()
    assert dup_open == []


def test_rows_become_an_episode_that_opens_and_closes(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    t0 = recent_second()
    n = insert_readings(db, W1, readings(1, t0, [NORMAL] * 5 + [80.0, 75.0, 70.0]))
    with ThreadedAnalytics(settings) as an:
        an.wait(lambda: len(stored_episodes(db, W1, LOW)) == 1, 15, "a pressure_low episode")
        (a,) = stored_episodes(db, W1, LOW)
        assert a["unit_id"] == UNIT
        assert a["kind"] == "low_pressure"
        assert a["metric"] == "pressure_kpa"
        assert a["severity"] == "high"  # 75 kPa: below 100, not below half of it
        assert a["started_at"] == dt(t0 + 50)  # the first reading below the minimum
        assert a["detected_at"] == dt(t0 + 60)  # the second one (two points are needed)
        assert a["ended_at"] is None
        assert "75.0 kPa" in a["explanation"]
        assert "100 kPa minimum" in a["explanation"]
        assert a["evidence"]["value"] == 75.0
        assert a["evidence"]["threshold"] == 100.0
        assert a["revision"] == 1

        n += insert_readings(db, W1, readings(9, t0 + 80, [NORMAL] * 3))
        an.wait(lambda: stored_episodes(db, W1, LOW)[0]["ended_at"] is not None, 15, "the closing")
        stats = an.stop()
    (closed,) = stored_episodes(db, W1, LOW)
    assert closed["id"] == a["id"]
    assert closed["ended_at"] == dt(t0 + 100)  # the third reading back above the minimum
    assert closed["revision"] == 2
    # Nothing else fired on eleven plain readings (no warm-up yet, no silence, no skew).
    assert [x["detector"] for x in stored_anomalies(db)] == [LOW]
    assert stats.rows == n
    assert stats.checkpoints >= 1
    assert checkpoint_rows(db) == n


def test_a_panel_fire_over_mqtt_becomes_a_fire_episode(
    mqtt_settings: Settings, db: psycopg.Connection[Any]
) -> None:
    topic = city.topic(PANEL, "event")
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    url = mqtt_settings.mqtt_url or ""
    with ThreadedIngest(mqtt_settings), ThreadedAnalytics(mqtt_settings) as an:
        publish_all(url, [(topic, panel_event(1, 0b11, ts.isoformat()))])
        an.wait(lambda: len(stored_episodes(db, PANEL, "panel.fire")) == 1, 15, "panel.fire")
        (a,) = stored_episodes(db, PANEL, "panel.fire")
        assert a["unit_id"] == UNIT
        assert a["kind"] == "fire_alarm"
        assert a["severity"] == "critical"
        assert a["origin"] == "reported"
        assert a["component"] == "point smoke detector 1004"
        assert a["started_at"] == ts
        assert a["ended_at"] is None
        assert "fire" in a["evidence"]["flags"]

        # The component reports normal again: the episode closes (a probable false alarm).
        later = ts + timedelta(seconds=3)
        publish_all(url, [(topic, panel_event(2, 0b01, later.isoformat()))])
        an.wait(
            lambda: stored_episodes(db, PANEL, "panel.fire")[0]["ended_at"] is not None, 15, "close"
        )
    (closed,) = stored_episodes(db, PANEL, "panel.fire")
    assert closed["ended_at"] == ts + timedelta(seconds=3)
    assert closed["revision"] == 2
    assert_no_duplicates(db)


def test_a_restart_resumes_from_the_checkpoint_and_continues_open_episodes(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    t0 = recent_second()
    before = insert_readings(db, W1, readings(1, t0, [NORMAL] * 5 + [80.0, 75.0, 70.0]))
    with ThreadedAnalytics(settings) as an:
        an.wait(lambda: len(stored_episodes(db, W1, LOW)) == 1, 15, "the first episode")
        an.wait(lambda: checkpoint_rows(db) == before, 15, "a checkpoint after it")
        first = an.stop()
    assert first.rows == before
    (opened,) = stored_episodes(db, W1, LOW)
    assert opened["ended_at"] is None
    assert opened["severity"] == "high"

    # While it is down: the open episode gets worse (below half the minimum), and a
    # second device starts an episode of its own.
    after = insert_readings(db, W1, readings(9, t0 + 80, [40.0, 45.0]))
    after += insert_readings(db, W2, readings(1, t0, [NORMAL, NORMAL, 60.0, 65.0]))
    with ThreadedAnalytics(settings) as an:
        an.wait(
            lambda: (
                stored_episodes(db, W1, LOW)[0]["severity"] == "critical"
                and len(stored_episodes(db, W2, LOW)) == 1
                and an.service.stats.rows >= after
            ),
            15,
            "the rows written while it was down",
        )
        second = an.stop()

    # Resumed from the cursor: only the new rows were read, none of the old ones again.
    assert second.rows == after
    assert checkpoint_rows(db) == before + after
    (continued,) = stored_episodes(db, W1, LOW)
    assert continued["id"] == opened["id"]
    assert continued["started_at"] == opened["started_at"] == dt(t0 + 50)
    assert continued["ended_at"] is None
    assert continued["revision"] == 2  # escalated: one more revision of the same episode
    (w2,) = stored_episodes(db, W2, LOW)
    assert w2["started_at"] == dt(t0 + 20)
    assert scalar(db, "SELECT count(*) FROM anomalies WHERE detector = %s", LOW) == 2
    assert [x["detector"] for x in stored_anomalies(db)] == [LOW, LOW]
    assert_no_duplicates(db)


def test_replay_after_a_crash_rewrites_nothing(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    t0 = recent_second()
    s = settings.model_copy(update={"analytics_checkpoint_s": 3600.0})  # final one only
    warm = insert_readings(db, W1, readings(1, t0, [NORMAL] * 5))
    with ThreadedAnalytics(s) as an:
        an.wait(lambda: an.service.stats.rows == warm, 15, "the first rows")
        an.stop()
    saved = db.execute("SELECT cursor, state, rows_processed FROM analytics_checkpoints").fetchone()
    assert saved is not None
    assert saved[2] == warm

    # Rows after that checkpoint: W1 opens an episode, W2 opens and closes one.
    new = insert_readings(db, W1, readings(6, t0 + 50, [80.0, 75.0, 70.0]))
    new += insert_readings(
        db, W2, readings(1, t0, [NORMAL, NORMAL, 60.0, 65.0, NORMAL, NORMAL, NORMAL])
    )
    with ThreadedAnalytics(s) as an:
        an.wait(lambda: an.service.stats.rows == new, 15, "the new rows")
        first = an.stop()
    assert first.changes >= 2
    written = stored_anomalies(db)
    assert [(x["device_id"], x["revision"], x["ended_at"] is None) for x in written] == [
        (W1, 1, True),
        (W2, 2, False),
    ]

    # The crash: the anomalies of those rows were committed, the checkpoint after them
    # was not. The next worker resumes from the older one and replays them.
    db.execute(
        "UPDATE analytics_checkpoints SET cursor = %s, state = %s, rows_processed = %s",
        (Jsonb(saved[0]), saved[1], saved[2]),
    )
    with ThreadedAnalytics(s) as an:
        # (batches is counted after changes: once it is 1, the replayed batch is done)
        an.wait(
            lambda: an.service.stats.rows == new and an.service.stats.batches == 1, 15, "the replay"
        )
        assert an.service.stats.changes == first.changes  # the same revisions again…
        assert stored_anomalies(db) == written  # …refused: same ids, revisions, change xids

        # The replayed state continues the stored episode.
        more = insert_readings(db, W1, readings(9, t0 + 80, [NORMAL] * 3))
        an.wait(lambda: stored_episodes(db, W1, LOW)[0]["ended_at"] is not None, 15, "W1 closing")
        replay = an.stop()
    assert replay.rows == new + more
    (w1,) = stored_episodes(db, W1, LOW)
    assert w1["id"] == written[0]["id"]
    assert w1["revision"] == 2
    assert len(stored_anomalies(db)) == 2
    assert checkpoint_rows(db) == warm + new + more
    assert_no_duplicates(db)


@pytest.mark.parametrize("checkpoint_s", [0.2, 3600.0], ids=["checkpointed", "replayed"])
def test_a_database_outage_is_survived(
    settings: Settings, db: psycopg.Connection[Any], checkpoint_s: float
) -> None:
    """checkpointed: the worker reloads a checkpoint of every row it had read;
    replayed: it had saved none, so it reads everything again from the beginning."""
    t0 = recent_second()
    s = settings.model_copy(update={"analytics_checkpoint_s": checkpoint_s})
    replayed = checkpoint_s > 60
    before = insert_readings(db, W1, readings(1, t0, [NORMAL] * 5 + [80.0, 75.0, 70.0]))
    with ThreadedAnalytics(s) as an:
        an.wait(lambda: len(stored_episodes(db, W1, LOW)) == 1, 15, "the first episode")
        if replayed:
            an.wait(lambda: an.service.stats.batches == 1, 15, "the first batch")
            assert checkpoint_rows(db) == -1
        else:
            an.wait(lambda: checkpoint_rows(db) == before, 15, "a checkpoint")
        (opened,) = stored_episodes(db, W1, LOW)
        killed = scalar(
            db,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'",
        )
        assert killed >= 2  # the worker's query and wake-up connections
        an.wait(lambda: an.service.stats.reconnects >= 1, 15, "a reconnect")

        after = insert_readings(db, W1, readings(9, t0 + 80, [40.0, 45.0]))
        after += insert_readings(db, W2, readings(1, t0, [NORMAL, NORMAL, 60.0, 65.0]))
        an.wait(
            lambda: (
                stored_episodes(db, W1, LOW)[0]["severity"] == "critical"
                and len(stored_episodes(db, W2, LOW)) == 1
            ),
            15,
            "anomalies of rows written after the outage",
        )
        stats = an.stop()
    assert stats.reconnects >= 1
    assert stats.rows == before + after + (before if replayed else 0)
    # The checkpoint counts each row once, however often it was read.
    assert checkpoint_rows(db) == before + after
    (w1,) = stored_episodes(db, W1, LOW)
    assert w1["id"] == opened["id"]
    assert w1["started_at"] == dt(t0 + 50)
    assert w1["revision"] == 2  # the escalation, not a rewrite of revision 1
    assert w1["ended_at"] is None
    assert scalar(db, "SELECT count(*) FROM anomalies") == 2
    assert_no_duplicates(db)


def test_silence_is_judged_against_the_injected_clock(
    settings: Settings, db: psycopg.Connection[Any]
) -> None:
    interval = 60.0
    base = float(int(time.time()) - 1800)
    n = insert_readings(db, W1, readings(1, base, [NORMAL] * 6, step=interval))
    last = base + 5 * interval
    clock = FakeClock(last + 5)
    limit = max(settings.analytics_dropout_factor * interval, settings.analytics_dropout_min_s)
    with ThreadedAnalytics(settings, clock=clock) as an:
        an.wait(lambda: an.service.stats.rows == n, 15, "the readings")
        an.wait(lambda: an.service.stats.batches >= 1 and checkpoint_rows(db) == n, 15, "idle")
        assert stored_episodes(db, W1, "link.dropout") == []  # 5 s of silence is nothing

        clock.now = last + limit + 1
        an.wait(lambda: len(stored_episodes(db, W1, "link.dropout")) == 1, 15, "a dropout")
        (a,) = stored_episodes(db, W1, "link.dropout")
        assert a["started_at"] == dt(last)
        assert a["detected_at"] == dt(clock.now)
        assert a["ended_at"] is None
        assert a["evidence"]["usual_interval_s"] == interval
        assert "usually every 60 s" in a["explanation"]

        back = clock.now + 1
        insert_readings(db, W1, [(7, back, NORMAL)])
        an.wait(
            lambda: stored_episodes(db, W1, "link.dropout")[0]["ended_at"] is not None, 15, "close"
        )
    (closed,) = stored_episodes(db, W1, "link.dropout")
    assert closed["id"] == a["id"]
    assert closed["ended_at"] == dt(back)
    assert [x["detector"] for x in stored_anomalies(db)] == ["link.dropout"]
