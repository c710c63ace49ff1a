"""storage/risk.py against a real database: history, current level, warnings with their
notifications, and the per-tier views over the demo city (xuchang: weidu has two streets,
three units; every other district one street and one unit)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from firewatch.storage import risk as store
from tests.conftest import Connect

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORDER = {"blue": 0, "yellow": 1, "orange": 2, "red": 3}


def rises(previous: str | None, level: str) -> bool:
    """The model's rule, restated: a rise, or a first score above blue."""
    return ORDER[level] > ORDER[previous or "blue"]


def score(
    conn: psycopg.Connection[Any],
    unit: str,
    value: float,
    level: str,
    at: datetime = T0,
    forced_by: tuple[str, ...] = (),
) -> store.StoredScore:
    return store.record_score(
        conn,
        unit_id=unit,
        computed_at=at,
        as_of=at,
        score=value,
        level=level,
        score_level=level if not forced_by else "blue",
        forced_by=forced_by,
        breakdown=[{"indicator": "x", "points": value}],
        config_version="risk-test",
        trigger="schedule",
        rises=rises,
        warning_reason=f"level {level}",
    )


def outbox(conn: psycopg.Connection[Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    rows = conn.execute("SELECT channel, payload, recipient FROM outbox ORDER BY id").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_a_rise_is_warned_once_with_both_notifications_and_a_fall_is_not(
    db: psycopg.Connection[Any],
) -> None:
    first = score(db, "U-WD-001", 45.0, "yellow")
    assert first.previous_level is None
    assert first.warning_id is not None
    sent = outbox(db)
    assert [c for c, _, _ in sent] == ["supervisor", "notify"]
    assert sent[0][1]["to_level"] == "yellow"
    assert sent[0][1]["from_level"] is None
    assert sent[1][2]["unit_id"] == "U-WD-001"
    assert "responsible" in sent[1][2]

    same = score(db, "U-WD-001", 47.0, "yellow", T0 + timedelta(hours=1))
    assert same.previous_level == "yellow"
    assert same.warning_id is None
    fall = score(db, "U-WD-001", 20.0, "blue", T0 + timedelta(hours=2))
    assert fall.previous_level == "yellow"
    assert fall.warning_id is None
    rise = score(db, "U-WD-001", 80.0, "red", T0 + timedelta(hours=3))
    assert rise.previous_level == "blue"
    assert rise.warning_id is not None
    assert len(outbox(db)) == 4

    assert store.current_levels(db) == {"U-WD-001": "red"}
    history = store.unit_history(db, "U-WD-001", T0, T0 + timedelta(days=1), 10)
    assert [h.level for h in history] == ["red", "blue", "yellow", "yellow"]
    warned = store.warnings(db, None, None, 10)
    assert [(w["from_level"], w["to_level"]) for w in warned] == [("blue", "red"), (None, "yellow")]


def test_a_first_blue_score_raises_no_warning(db: psycopg.Connection[Any]) -> None:
    assert score(db, "U-JA-001", 5.0, "blue").warning_id is None
    assert outbox(db) == []


def test_two_writers_scoring_one_unit_at_once_warn_about_the_rise_once(
    db: psycopg.Connection[Any], connect: Connect
) -> None:
    score(db, "U-WD-002", 10.0, "blue")
    holder = connect()
    barrier = threading.Barrier(2)
    results: list[store.StoredScore] = []

    def write(conn: psycopg.Connection[Any]) -> None:
        barrier.wait()
        results.append(score(conn, "U-WD-002", 75.0, "red", T0 + timedelta(hours=1)))

    threads = [threading.Thread(target=write, args=(c,)) for c in (holder, connect())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 2
    assert sorted(r.previous_level or "" for r in results) == ["blue", "red"]
    assert sum(r.warning_id is not None for r in results) == 1


def test_level_distribution_counts_units_per_child_at_every_tier(
    db: psycopg.Connection[Any],
) -> None:
    score(db, "U-WD-001", 80.0, "red")
    score(db, "U-WD-003", 55.0, "orange")
    score(db, "U-JA-001", 5.0, "blue")
    city = {r["child_id"]: r for r in store.level_distribution(db, "xuchang")}
    assert len(city) == 6
    weidu = city["weidu"]
    assert (weidu["red"], weidu["orange"], weidu["unscored"]) == (1, 1, 1)  # U-WD-002 unscored
    assert weidu["mean_score"] == 67.5
    assert (city["jianan"]["blue"], city["jianan"]["unscored"]) == (1, 0)
    assert city["yuzhou"]["unscored"] == 1
    assert city["yuzhou"]["mean_score"] is None

    district = {r["child_id"]: r for r in store.level_distribution(db, "weidu")}
    assert district["weidu-ximajie"]["red"] == 1
    assert district["weidu-ximajie"]["orange"] == 1
    assert district["weidu-nanguan"]["unscored"] == 1

    street = {r["child_id"]: r for r in store.level_distribution(db, "weidu-ximajie")}
    assert set(street) == {"U-WD-001", "U-WD-003"}
    assert street["U-WD-001"]["tier"] == "unit"
    assert store.level_distribution(db, "nowhere") == []


def test_top_units_put_the_worst_level_first_then_the_highest_score(
    db: psycopg.Connection[Any],
) -> None:
    score(db, "U-WD-001", 40.0, "red", forced_by=("confirmed_fire",))
    score(db, "U-WD-002", 65.0, "orange")
    score(db, "U-WD-003", 90.0, "red")
    score(db, "U-JA-001", 99.0, "red")  # another district
    top = store.top_units(db, "weidu", 10)
    assert [t["unit_id"] for t in top] == ["U-WD-003", "U-WD-001", "U-WD-002"]
    assert top[1]["forced_by"] == ["confirmed_fire"]
    assert [t["unit_id"] for t in store.top_units(db, "xuchang", 2)] == ["U-JA-001", "U-WD-003"]


def test_the_trend_counts_each_units_last_level_of_each_day(db: psycopg.Connection[Any]) -> None:
    day = timedelta(days=1)
    score(db, "U-WD-001", 20.0, "blue", T0)
    score(db, "U-WD-001", 80.0, "red", T0 + day)
    score(db, "U-WD-001", 50.0, "orange", T0 + day + timedelta(hours=2))  # last of day 2
    score(db, "U-WD-002", 35.0, "yellow", T0 + 2 * day)
    trend = store.level_trend(db, "weidu", T0 - day, T0 + 3 * day)
    by_day = {r["day"].isoformat(): (r["red"], r["orange"], r["yellow"], r["blue"]) for r in trend}
    assert by_day == {
        "2026-11-30": (0, 0, 0, 0),
        "2026-12-01": (0, 0, 0, 1),
        "2026-12-02": (0, 1, 0, 0),
        "2026-12-03": (0, 1, 1, 0),
        "2026-12-04": (0, 1, 1, 0),
    }


def test_warnings_filter_by_region_and_time(db: psycopg.Connection[Any]) -> None:
    score(db, "U-WD-001", 80.0, "red", T0)
    score(db, "U-JA-001", 80.0, "red", T0 + timedelta(hours=5))
    assert [w["unit_id"] for w in store.warnings(db, "weidu", None, 10)] == ["U-WD-001"]
    assert [w["unit_id"] for w in store.warnings(db, None, T0 + timedelta(hours=1), 10)] == [
        "U-JA-001"
    ]
    assert store.warnings(db, "weidu-nanguan", None, 10) == []
