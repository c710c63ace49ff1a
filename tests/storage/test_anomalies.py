"""Anomaly episodes, checkpoints and their retention (firewatch/storage/anomalies.py) on a
real PostgreSQL."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from firewatch.core.anomalies import Anomaly
from firewatch.core.domain import Severity
from firewatch.core.settings import Settings
from firewatch.storage import channels
from firewatch.storage.anomalies import load_checkpoint, save_checkpoint, upsert_anomalies
from firewatch.storage.feed import FeedCursor
from firewatch.storage.maintenance import maintain
from tests.builders.alerts import anomaly
from tests.conftest import Connect
from tests.helpers import scalar

DAY = 86_400.0


def episode(**changes: Any) -> Anomaly:
    """The water point's low pressure, open, with times to the microsecond."""
    now = time.time()
    fields: dict[str, Any] = {
        "started_at": now - 120.123456,
        "detected_at": now - 60.5,
        "last_at": now - 1.25,
        "explanation": "pressure 62 kPa below the 100 kPa minimum",
        "evidence": {"pressure_kpa": 62.0, "minimum_kpa": 100.0},
    }
    return anomaly(**{**fields, **changes})


def stored(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT *, extract(epoch FROM started_at)::float8 AS started_s,"
            " extract(epoch FROM detected_at)::float8 AS detected_s,"
            " extract(epoch FROM last_at)::float8 AS last_s,"
            " extract(epoch FROM ended_at)::float8 AS ended_s"
            " FROM anomalies ORDER BY id"
        ).fetchall()


def test_insert_stores_every_field(connect: Connect) -> None:
    conn = connect()
    a = episode(evidence={"temps": np.array([61.5, 66.0]), "peak": np.float32(66.0)})
    b = episode(component="port-3", model_version=7, severity=Severity.CRITICAL, score=1.0)
    assert upsert_anomalies(conn, [a, b]) == 2
    rows = stored(conn)
    assert len(rows) == 2
    first, second = rows
    assert first["device_id"] == a.device_id
    assert first["unit_id"] == a.unit_id
    assert (first["detector"], first["kind"], first["metric"]) == (a.detector, a.kind, a.metric)
    assert (first["component"], first["origin"], first["severity"]) == ("", "inferred", "high")
    assert first["score"] == pytest.approx(0.8)
    assert first["started_s"] == pytest.approx(a.started_at, abs=1e-6)
    assert first["detected_s"] == pytest.approx(a.detected_at, abs=1e-6)
    assert first["last_s"] == pytest.approx(a.last_at, abs=1e-6)
    assert first["ended_at"] is None
    assert first["explanation"] == a.explanation
    assert first["evidence"] == {"temps": [61.5, 66.0], "peak": 66.0}
    assert first["model_version"] is None
    assert first["revision"] == 1
    assert first["change_xid"] > 0
    assert (second["component"], second["model_version"], second["severity"]) == (
        "port-3",
        7,
        "critical",
    )
    assert upsert_anomalies(conn, []) == 0


def test_a_higher_revision_updates_and_a_stale_one_is_ignored(connect: Connect) -> None:
    conn = connect()
    a = episode()
    assert upsert_anomalies(conn, [a]) == 1
    (before,) = stored(conn)
    closed = replace(
        a,
        revision=3,
        severity=Severity.MEDIUM,
        score=0.4,
        last_at=a.last_at + 30,
        ended_at=a.last_at + 31,
        explanation="recovered",
        evidence={"pressure_kpa": 101.0},
        model_version=2,
        detected_at=a.detected_at + 999,  # must not move: when it was first raised
        unit_id="U-ELSEWHERE",  # identity of how it began: kept
    )
    assert upsert_anomalies(conn, [closed]) == 1
    (after,) = stored(conn)
    assert after["id"] == before["id"]
    assert after["revision"] == 3
    assert after["severity"] == "medium"
    assert after["score"] == pytest.approx(0.4)
    assert after["last_s"] == pytest.approx(closed.last_at, abs=1e-6)
    assert after["ended_s"] == pytest.approx(closed.ended_at, abs=1e-6)
    assert after["explanation"] == "recovered"
    assert after["evidence"] == {"pressure_kpa": 101.0}
    assert after["model_version"] == 2
    assert after["detected_s"] == pytest.approx(a.detected_at, abs=1e-6)
    assert after["unit_id"] == a.unit_id
    assert after["change_xid"] > before["change_xid"]
    assert after["updated_at"] > before["updated_at"]
    assert after["created_at"] == before["created_at"]

    # A replay of older or equal versions (a restart from an earlier checkpoint) is ignored.
    for stale in (a, replace(a, revision=2, severity=Severity.LOW), replace(closed, score=0.9)):
        assert upsert_anomalies(conn, [stale]) == 0
    (unchanged,) = stored(conn)
    assert unchanged == after


def test_one_call_with_several_versions_keeps_the_newest(connect: Connect) -> None:
    conn = connect()
    a = episode()
    versions = [replace(a, revision=2, score=0.2), replace(a, revision=4, score=0.4), a]
    assert upsert_anomalies(conn, versions) == 1
    (row,) = stored(conn)
    assert (row["revision"], row["score"]) == (4, pytest.approx(0.4))


def test_the_episode_key_is_unique(connect: Connect) -> None:
    conn = connect()
    a = episode()
    for rev in range(1, 5):
        upsert_anomalies(conn, [replace(a, revision=rev)])
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 1
    # Another component, detector or start is another episode.
    others = [
        replace(a, component="port-1"),
        replace(a, detector="stat.cusum"),
        replace(a, started_at=a.started_at + 1e-3),
    ]
    assert upsert_anomalies(conn, others) == 3
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 4
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO anomalies (device_id, unit_id, detector, kind, metric, component,"
            " origin, severity, score, started_at, detected_at, last_at, explanation, revision)"
            " SELECT device_id, unit_id, detector, kind, metric, component, origin, severity,"
            " score, started_at, detected_at, last_at, explanation, 9 FROM anomalies LIMIT 1"
        )


def test_bad_values_are_refused(connect: Connect) -> None:
    conn = connect()
    with pytest.raises(ValueError, match="non-finite"):
        upsert_anomalies(conn, [episode(last_at=float("nan"))])
    with pytest.raises(psycopg.errors.CheckViolation):
        upsert_anomalies(conn, [episode(score=1.5)])
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 0


def test_changes_notify_and_stale_replays_do_not(connect: Connect, database_url: str) -> None:
    conn = connect()
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {channels.ANOMALIES}")
        a = episode()
        upsert_anomalies(conn, [a])
        notes = list(listener.notifies(timeout=10.0, stop_after=1))
        assert [n.channel for n in notes] == [channels.ANOMALIES]
        assert upsert_anomalies(conn, [a]) == 0
        conn.execute("SELECT pg_notify(%s, 'marker')", (channels.ANOMALIES,))
        # Notifications arrive in commit order: the marker comes first, so none was sent.
        notes = list(listener.notifies(timeout=10.0, stop_after=1))
        assert [n.payload for n in notes] == ["marker"]


def test_anomalies_and_checkpoint_commit_or_roll_back_together(connect: Connect) -> None:
    conn = connect()
    cursor = FeedCursor.at_horizon(conn).to_json()

    class Crash(Exception):
        pass

    def crash_after_writing() -> None:
        with conn.transaction():
            upsert_anomalies(conn, [episode()])
            save_checkpoint(conn, "0/1", cursor, b"state", 1, 10)
            raise Crash

    with pytest.raises(Crash):
        crash_after_writing()
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 0
    assert load_checkpoint(conn, "0/1") is None

    with conn.transaction():
        upsert_anomalies(conn, [episode()])
        save_checkpoint(conn, "0/1", cursor, b"state", 1, 10)
    assert scalar(conn, "SELECT count(*) FROM anomalies") == 1
    saved = load_checkpoint(conn, "0/1")
    assert saved is not None
    assert FeedCursor.from_json(saved.cursor) == FeedCursor.from_json(cursor)


def test_checkpoint_round_trip_and_overwrite(connect: Connect) -> None:
    conn = connect()
    assert load_checkpoint(conn, "0/2") is None
    cursor = FeedCursor.start().to_json()
    state = bytes(range(256)) * 10
    save_checkpoint(conn, "0/2", cursor, state, 3, 12_345)
    first = load_checkpoint(conn, "0/2")
    assert first is not None
    assert (first.shard, first.cursor, first.state) == ("0/2", cursor, state)
    assert (first.state_format, first.rows_processed) == (3, 12_345)

    later = FeedCursor.at_horizon(conn).to_json()
    save_checkpoint(conn, "0/2", later, b"\x00new", 4, 99_999)
    second = load_checkpoint(conn, "0/2")
    assert second is not None
    assert (second.cursor, second.state, second.state_format) == (later, b"\x00new", 4)
    assert second.rows_processed == 99_999
    assert second.saved_at >= first.saved_at
    assert scalar(conn, "SELECT count(*) FROM analytics_checkpoints") == 1
    save_checkpoint(conn, "1/2", cursor, b"", 1, 0)  # shards are independent
    assert load_checkpoint(conn, "0/2") == second


def test_maintain_expires_only_closed_episodes_past_retention(
    connect: Connect, settings: Settings
) -> None:
    conn = connect()
    now = time.time()
    year = 365 * DAY
    old_open = episode(metric="a", started_at=now - 2 * year, last_at=now - 1)
    old_closed = episode(metric="b", started_at=now - 500 * DAY, ended_at=now - 400 * DAY)
    recent_closed = episode(metric="c", started_at=now - 40 * DAY, ended_at=now - 10 * DAY)
    just_kept = episode(metric="d", started_at=now - 380 * DAY, ended_at=now - 360 * DAY)
    upsert_anomalies(conn, [old_open, old_closed, recent_closed, just_kept])

    settings = settings.model_copy(update={"record_retention_days": 365})
    result = maintain(conn, settings)
    assert result.anomalies_deleted == 1
    left = [r[0] for r in conn.execute("SELECT metric FROM anomalies ORDER BY metric")]
    assert left == ["a", "c", "d"]
    assert maintain(conn, settings).anomalies_deleted == 0


def test_db_anomalies_lists_the_newest_first(
    db: psycopg.Connection[Any],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from firewatch.cli import main

    assert settings.database_url

    def episode_of(device: str, t: float, ended: float | None) -> Anomaly:
        return anomaly(
            device,
            t,
            score=0.7,
            detected_at=t + 60,
            last_at=t + 60,
            ended_at=ended,
            explanation=f"pressure low at {device}",
        )

    upsert_anomalies(
        db,
        [
            episode_of("D-WD-001-W1", 1_795_000_000, None),
            episode_of("D-WD-001-W2", 1_795_000_600, 1_795_001_000),
        ],
    )
    monkeypatch.setenv("FIREWATCH_DATABASE_URL", settings.database_url)
    assert main(["db", "anomalies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[3] for ln in lines] == ["D-WD-001-W2", "D-WD-001-W1"]
    assert [ln.split()[4] for ln in lines] == ["ended", "open"]
    assert main(["db", "anomalies", "--open", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["device_id"] for r in rows] == ["D-WD-001-W1"]
    assert rows[0]["ended_at"] is None
