"""The incremental refresh: late data updates its own bucket and nothing else, the tiers
add up, a restart counts nothing twice, an hour still filling waits, open episodes grow
with the clock, a moved unit takes its share along, a backfill rebuilds the same rows,
and old rows expire."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from firewatch.analysis.refresh import CURSOR_NAME, Rollups
from firewatch.analysis.service import check_settings, prune_expired
from firewatch.core.domain import Severity
from firewatch.core.rollups import MEASURES
from firewatch.core.settings import Settings
from firewatch.storage.anomalies import upsert_anomalies
from firewatch.storage.rollup_marks import RefreshCursor, load_cursor, pending_count
from firewatch.storage.rollup_tiers import day_start
from firewatch.storage.rollups import compute_device_hours
from tests.builders import city
from tests.builders.alerts import anomaly
from tests.builders.rollups import Clock, ingest, revisions, rollup_row, settle
from tests.builders.rows import water_row

H = timedelta(hours=1)
M = timedelta(minutes=1)
WATERS = [city.WATER, city.WATER_2, "D-WD-002-W1", "D-WD-003-W1", "D-YZ-001-W1"]


def readings(devices: list[str], start: datetime, n_hours: int, seed: int = 1) -> list[Any]:
    """A reading per device every 2 minutes for ``n_hours``, some of them low."""
    rng = random.Random(seed)
    return [
        water_row(d, start + i * 2 * M, rng.choice([60.0, 95.0, 250.0, 320.0]), seq=i)
        for d in devices
        for i in range(n_hours * 30)
    ]


def measures(
    conn: psycopg.Connection[Any],
) -> dict[tuple[str, str, str, datetime], tuple[Any, ...]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM rollups").fetchall()
    return {
        (r["tier"], r["subject_id"], r["grain"], r["bucket"]): tuple(
            round(r[m], 6) if isinstance(r[m], float) else r[m] for m in MEASURES
        )
        for r in rows
    }


def test_late_reading_recomputes_only_its_own_buckets(
    db: psycopg.Connection[Any], rollups: Rollups, clock: Clock, hour: datetime
) -> None:
    ingest(db, readings(WATERS[:2], hour, 4))
    clock.at(hour + 6 * H)
    cursor = settle(rollups, db)
    before = revisions(db)
    assert set(before.values()) == {1}
    samples = rollup_row(db, "device", city.WATER, "hour", hour + H)
    assert samples is not None
    assert samples["pressure_samples"] == 30

    late = hour + H + 31 * M  # mid-hour: its hold stays inside the hour
    ingest(db, [water_row(city.WATER, late, 40.0, seq=10_000)])
    settle(rollups, db, cursor)
    after = revisions(db)
    day = day_start(hour + H, rollups.offset_h)
    touched = {
        ("device", city.WATER, "hour", hour + H),
        ("device", city.WATER, "day", day),
        ("unit", city.UNIT, "hour", hour + H),
        ("unit", city.UNIT, "day", day),
        ("street", "weidu-ximajie", "hour", hour + H),
        ("street", "weidu-ximajie", "day", day),
        ("district", "weidu", "hour", hour + H),
        ("district", "weidu", "day", day),
        ("city", "xuchang", "hour", hour + H),
        ("city", "xuchang", "day", day),
    }
    assert set(after) == set(before)
    assert {k for k in after if after[k] != before[k]} == touched
    assert all(after[k] == 2 for k in touched)
    row = rollup_row(db, "device", city.WATER, "hour", hour + H)
    assert row is not None
    assert row["pressure_samples"] == 31
    assert row["pressure_min_kpa"] == 40.0
    unit = rollup_row(db, "unit", city.UNIT, "hour", hour + H)
    assert unit is not None
    assert unit["pressure_samples"] == 61


def test_units_and_regions_are_the_sums_of_their_parts(
    db: psycopg.Connection[Any], rollups: Rollups, clock: Clock, hour: datetime
) -> None:
    ingest(db, readings(WATERS, hour, 3))
    episodes = [
        anomaly(
            city.PANEL,
            (hour + 10 * M).timestamp(),
            detector="panel.fault",
            kind="panel_fault",
            metric="status",
            component="c1",
            severity=Severity.MEDIUM,
            ended_at=(hour + 2 * H).timestamp(),
        ),
        anomaly(
            "D-JA-001-P1",
            (hour + 20 * M).timestamp(),
            detector="panel.fire",
            kind="fire_alarm",
            metric="status",
            component="c2",
            severity=Severity.CRITICAL,
            ended_at=(hour + 30 * M).timestamp(),
        ),
        anomaly(
            "D-WD-002-P1",
            (hour + 70 * M).timestamp(),
            detector="panel.bus_fault",
            kind="bus_fault",
            metric="status",
            component="system",
            severity=Severity.HIGH,
            ended_at=(hour + 80 * M).timestamp(),
        ),
    ]
    upsert_anomalies(db, episodes)
    clock.at(hour + 6 * H)
    settle(rollups, db)
    got = measures(db)
    assert got, "nothing was rolled up"
    parent = {
        r[0]: r[1]
        for r in db.execute(
            "SELECT subject_id, parent_id FROM rollups GROUP BY subject_id, parent_id"
        ).fetchall()
    }
    tiers = {key[0] for key in got}
    assert tiers == {"device", "unit", "street", "district", "city"}
    index = {name: i for i, name in enumerate(MEASURES)}
    for (tier, subject, grain, bucket), values in got.items():
        if tier == "device":
            continue
        children = [
            v
            for (t, s, g, b), v in got.items()
            if g == grain
            and b == bucket
            and parent.get(s) == subject
            and (t == "device") == (tier == "unit")
        ]
        assert children, (tier, subject, grain, bucket)
        for name, i in index.items():
            column = [c[i] for c in children]
            if name == "faults_by_type":
                total: dict[str, int] = {}
                for c in column:
                    for k, n in c.items():
                        total[k] = total.get(k, 0) + n
                assert values[i] == total, (tier, subject, grain, bucket)
            elif name == "pressure_min_kpa":
                assert values[i] == min((c for c in column if c is not None), default=None)
            elif name == "shed_peak_temp_c":
                assert values[i] is None
            elif name == "pressure_mean_kpa":
                n = sum(c[index["pressure_samples"]] for c in children if c[i] is not None)
                want = sum(
                    c[i] * c[index["pressure_samples"]] for c in children if c[i] is not None
                )
                expected = None if n == 0 else pytest.approx(want / n)
                assert values[i] == expected, (tier, subject, grain, bucket)
            else:
                assert values[i] == pytest.approx(sum(column)), (name, tier, subject, bucket)
    # and a day is the sum of its hours
    day = day_start(hour, rollups.offset_h)
    hours = [
        v
        for (t, s, g, b), v in got.items()
        if (t, s, g) == ("device", city.WATER, "hour") and day <= b < day + 24 * H
    ]
    assert got[("device", city.WATER, "day", day)][index["pressure_samples"]] == sum(
        h[index["pressure_samples"]] for h in hours
    )
    street = got[("street", "weidu-ximajie", "hour", hour)]
    assert street[index["faults"]] == 1
    assert street[index["fault_open_min"]] == pytest.approx(50)
    assert got[("district", "jianan", "hour", hour)][index["fire_alarms"]] == 1
    city_hour = got[("city", "xuchang", "hour", hour + H)]
    assert city_hour[index["faults_by_type"]] == {"bus_fault": 1}


def test_a_restart_at_any_point_counts_nothing_twice(
    settings: Settings, db: psycopg.Connection[Any], clock: Clock, hour: datetime
) -> None:
    ingest(db, readings(WATERS[:3], hour, 2))
    clock.at(hour + 5 * H)
    clean = Rollups(settings, clock=clock)
    clean.load_limits(db)
    settle(clean, db)
    want = measures(db)
    db.execute("DELETE FROM rollups")
    db.execute("DELETE FROM analysis_cursor")
    db.execute("DELETE FROM rollup_pending")

    # 1. marks queued and the cursor saved, then the process dies before recomputing
    first = Rollups(settings, clock=clock)
    first.load_limits(db)
    cursor, marked, _ = first.mark(db, RefreshCursor())
    assert marked > 0
    assert load_cursor(db, CURSOR_NAME) == cursor
    # 2. a restart computes some buckets and dies before its write commits
    second = Rollups(settings, clock=clock)
    second.load_limits(db)
    compute_device_hours(db, [(city.WATER, hour)], second.limits, now=second.now())
    # 3. the next restart goes on from the saved cursor and its queue
    third = Rollups(settings, clock=clock)
    third.load_limits(db)
    saved = load_cursor(db, CURSOR_NAME)
    assert saved is not None
    settle(third, db, saved)
    assert measures(db) == want
    assert pending_count(db) == 0
    # 4. reading the same window again (a cursor that was never saved) changes no value
    settle(third, db, RefreshCursor())
    assert measures(db) == want
    assert max(revisions(db).values()) == 2


def test_an_hour_still_filling_waits_then_is_rolled_up(
    settings: Settings, db: psycopg.Connection[Any], clock: Clock
) -> None:
    now = datetime.now(UTC).replace(minute=20, second=0, microsecond=0)
    current = now.replace(minute=0)
    ingest(db, [water_row(city.WATER, current + i * M, 90.0, seq=i) for i in range(10)])
    clock.at(now)
    r = Rollups(settings, clock=clock)
    r.load_limits(db)
    cursor = settle(r, db)
    assert rollup_row(db, "device", city.WATER, "hour", current) is None
    assert pending_count(db) > 0
    clock.at(now + timedelta(seconds=settings.analysis_live_every_s))
    cursor = settle(r, db, cursor)
    row = rollup_row(db, "device", city.WATER, "hour", current)
    assert row is not None
    assert row["pressure_samples"] == 10
    assert row["pressure_low_min"] == pytest.approx(9 + 5)  # the last reading holds 300 s


def test_an_open_episode_grows_with_the_clock_and_closes(
    settings: Settings, db: psycopg.Connection[Any], clock: Clock, hour: datetime
) -> None:
    quick = settings.model_copy(update={"analysis_live_every_s": 1.0})
    r = Rollups(quick, clock=clock)
    r.load_limits(db)
    start = hour + 10 * M
    offline = anomaly(
        city.WATER,
        start.timestamp(),
        detector="link.offline",
        kind="device_offline",
        metric="messages",
        severity=Severity.MEDIUM,
    )
    upsert_anomalies(db, [offline])
    clock.at(hour + 30 * M)
    cursor = settle(r, db)
    clock.at(hour + 30 * M + timedelta(seconds=2))
    cursor = settle(r, db, cursor)
    row = rollup_row(db, "device", city.WATER, "hour", hour)
    assert row is not None
    assert row["offline_min"] == pytest.approx(20 + 2 / 60)
    clock.at(hour + 2 * H + 15 * M)  # no new data: the clock alone moves the open episode
    cursor = settle(r, db, cursor)  # marks the hours since the last round
    clock.at(hour + 2 * H + 15 * M + timedelta(seconds=2))
    cursor = settle(r, db, cursor)  # and recomputes them once they have waited
    minutes = [rollup_row(db, "device", city.WATER, "hour", hour + k * H) for k in (0, 1, 2)]
    assert [m["offline_min"] if m else None for m in minutes] == [
        pytest.approx(50),
        pytest.approx(60),
        pytest.approx(15, abs=0.1),
    ]
    ended = anomaly(
        city.WATER,
        start.timestamp(),
        detector="link.offline",
        kind="device_offline",
        metric="messages",
        severity=Severity.MEDIUM,
        revision=2,
        ended_at=(hour + H + 5 * M).timestamp(),
    )
    upsert_anomalies(db, [ended])
    clock.at(hour + 4 * H)
    settle(r, db, cursor)
    minutes = [rollup_row(db, "device", city.WATER, "hour", hour + k * H) for k in (0, 1, 2)]
    assert [m["offline_min"] if m else None for m in minutes] == [
        pytest.approx(50),
        pytest.approx(5),
        0.0,
    ]
    day = rollup_row(db, "unit", city.UNIT, "day", day_start(hour, r.offset_h))
    assert day is not None
    assert day["offline_min"] == pytest.approx(
        55 if day_start(hour + H, r.offset_h) == day_start(hour, r.offset_h) else 50
    )


def test_a_moved_unit_takes_its_share_to_its_new_street(
    db: psycopg.Connection[Any], rollups: Rollups, clock: Clock, hour: datetime
) -> None:
    ingest(db, readings(["D-WD-002-W1"], hour, 1))
    clock.at(hour + 3 * H)
    cursor = settle(rollups, db)
    old = rollup_row(db, "street", "weidu-nanguan", "hour", hour)
    assert old is not None
    assert old["pressure_samples"] == 30
    db.execute("UPDATE units SET region_id = 'weidu-ximajie' WHERE id = 'U-WD-002'")
    ingest(
        db, [water_row("D-WD-002-W1", hour + 31 * M + 30 * timedelta(seconds=1), 300.0, seq=999)]
    )
    settle(rollups, db, cursor)
    old = rollup_row(db, "street", "weidu-nanguan", "hour", hour)
    new = rollup_row(db, "street", "weidu-ximajie", "hour", hour)
    district = rollup_row(db, "district", "weidu", "hour", hour)
    assert old is not None
    assert old["pressure_samples"] == 0
    assert new is not None
    assert new["pressure_samples"] == 31
    assert district is not None
    assert district["pressure_samples"] == 31


def test_a_backfill_rebuilds_the_same_rows(
    db: psycopg.Connection[Any], rollups: Rollups, clock: Clock, hour: datetime
) -> None:
    ingest(db, readings(WATERS, hour, 3))
    upsert_anomalies(
        db,
        [
            anomaly(
                city.PANEL,
                (hour + 50 * M).timestamp(),
                detector="panel.isolated",
                kind="component_isolated",
                metric="status",
                component="c",
                severity=Severity.MEDIUM,
                ended_at=(hour + 2 * H).timestamp(),
            )
        ],
    )
    clock.at(hour + 6 * H)
    settle(rollups, db)
    want = measures(db)
    db.execute("DELETE FROM rollups")
    done = rollups.refresh_since(db, hour - 2 * H)
    assert done > 0
    assert measures(db) == want


def test_old_rows_expire_by_grain(
    settings: Settings, db: psycopg.Connection[Any], rollups: Rollups, clock: Clock, hour: datetime
) -> None:
    ingest(db, readings([city.WATER], hour, 1))
    clock.at(hour + 3 * H)
    settle(rollups, db)
    kept = len(revisions(db))
    db.execute(
        "INSERT INTO rollups (tier, subject_id, grain, bucket) VALUES"
        " ('unit', 'U-WD-001', 'hour', now() - interval '40 days'),"
        " ('unit', 'U-WD-001', 'day', now() - interval '40 days'),"
        " ('unit', 'U-WD-001', 'day', now() - interval '500 days')"
    )
    assert prune_expired(db, settings, now=clock()) == 2
    assert len(revisions(db)) == kept + 1


def test_settings_the_rollups_cannot_work_with_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="whole number of hours"):
        check_settings(settings.model_copy(update={"analytics_utc_offset_h": 5.5}))
    with pytest.raises(ValueError, match="HOUR_RETENTION_DAYS=7"):
        check_settings(settings.model_copy(update={"analysis_hour_retention_days": 7}))
    check_settings(settings)


def test_a_window_that_holds_too_many_rows_shrinks(
    settings: Settings, db: psycopg.Connection[Any], clock: Clock, hour: datetime
) -> None:
    for k in range(6):  # six ingest transactions of 30 rows
        ingest(db, readings([WATERS[k % len(WATERS)]], hour + k * 10 * M, 1, seed=k))
    small = settings.model_copy(update={"analysis_round_rows": 40})
    r = Rollups(small, clock=clock)
    r.load_limits(db)
    clock.at(hour + 4 * H)
    settle(r, db)
    assert r.stats.windows >= 5
    want = measures(db)
    db.execute("DELETE FROM rollups")
    big = Rollups(settings, clock=clock)
    big.load_limits(db)
    settle(big, db)
    assert measures(db) == want


def test_an_old_day_touched_again_is_recomputed_whole(
    settings: Settings, db: psycopg.Connection[Any], clock: Clock
) -> None:
    short = settings.model_copy(update={"analysis_hour_retention_days": 10})
    r = Rollups(short, clock=clock)
    r.load_limits(db)
    day = day_start(datetime.now(UTC), r.offset_h) - timedelta(days=12)
    ingest(db, [water_row(city.WATER, day + k * H, 90.0, seq=k) for k in (2, 20)])
    r.refresh_since(db, day)
    old = rollup_row(db, "device", city.WATER, "day", day)
    assert old is not None
    assert old["pressure_samples"] == 2
    assert prune_expired(db, short, now=clock()) > 0
    assert rollup_row(db, "device", city.WATER, "hour", day + 2 * H) is None
    # an offline episode that began that evening ends only now: its hours are marked
    start = day + 22 * H
    upsert_anomalies(
        db,
        [
            anomaly(
                city.WATER,
                start.timestamp(),
                detector="link.offline",
                kind="device_offline",
                metric="messages",
                severity=Severity.MEDIUM,
                ended_at=(start + 30 * M).timestamp(),
            )
        ],
    )
    settle(r, db)
    again = rollup_row(db, "device", city.WATER, "day", day)
    assert again is not None
    assert again["pressure_samples"] == 2  # the day's other hours were recomputed too
    assert again["offline_min"] == pytest.approx(30)
    assert again["revision"] == 2
