"""``/risk``: the per-tier views, a unit's score with its breakdown and history, warnings;
404 for unknown ids and 422 for bad ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.storage.test_risk import T0, score

pytestmark = pytest.mark.anyio


@pytest.fixture
def scored(db: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    now = datetime.now(UTC)
    score(db, "U-WD-001", 20.0, "blue", now - timedelta(days=2))
    score(db, "U-WD-001", 82.5, "red", now - timedelta(hours=1), forced_by=("blacklisted",))
    score(db, "U-WD-002", 55.0, "orange", now - timedelta(hours=1))
    return db


async def test_a_unit_shows_its_level_score_and_why(
    client: httpx.AsyncClient, scored: psycopg.Connection[Any]
) -> None:
    resp = await client.get("/risk/units/U-WD-001")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["level"], body["score"], body["forced_by"]) == ("red", 82.5, ["blacklisted"])
    assert body["score_level"] == "blue"  # forced: the score alone says blue
    assert body["breakdown"] == [{"indicator": "x", "points": 82.5}]

    history = (await client.get("/risk/units/U-WD-001/history")).json()
    assert [h["level"] for h in history] == ["red", "blue"]


async def test_region_views_at_city_district_and_street(
    client: httpx.AsyncClient, scored: psycopg.Connection[Any]
) -> None:
    city = (await client.get("/risk/regions/xuchang")).json()
    assert city["totals"] == {
        "red": 1,
        "orange": 1,
        "yellow": 0,
        "blue": 0,
        "unscored": 6,
    }
    weidu = next(c for c in city["children"] if c["child_id"] == "weidu")
    assert (weidu["red"], weidu["orange"], weidu["unscored"]) == (1, 1, 1)

    top = (await client.get("/risk/regions/weidu/top", params={"limit": 1})).json()
    assert [t["unit_id"] for t in top] == ["U-WD-001"]

    trend = (await client.get("/risk/regions/weidu/trend")).json()
    assert len(trend) == 31
    assert trend[-1]["red"] == 1
    assert trend[-1]["orange"] == 1

    warned = (await client.get("/risk/warnings", params={"region": "weidu"})).json()
    assert {(w["unit_id"], w["to_level"]) for w in warned} == {
        ("U-WD-001", "red"),
        ("U-WD-002", "orange"),
    }


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/risk/regions/atlantis", 404, "no region"),
        ("/risk/regions/atlantis/top", 404, "no region"),
        ("/risk/units/U-NOPE", 404, "no score yet"),
        ("/risk/units/U-XC-001", 404, "no score yet"),  # exists, never scored
        ("/risk/units/U-NOPE/history", 404, "no unit"),
        ("/risk/warnings?region=atlantis", 404, "no region"),
        (
            "/risk/regions/weidu/trend?from=2026-12-05T00:00:00Z&to=2026-12-01T00:00:00Z",
            422,
            "after",
        ),
        ("/risk/regions/weidu/trend?from=2020-01-01T00:00:00Z&to=2026-12-01T00:00:00Z", 422, "400"),
        ("/risk/units/U-WD-001/history?from=2026-12-01T00:00:00", 422, "time zone"),
        ("/risk/regions/weidu/top?limit=0", 422, ""),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    client: httpx.AsyncClient, scored: psycopg.Connection[Any], path: str, code: int, words: str
) -> None:
    resp = await client.get(path)
    assert resp.status_code == code, resp.text
    assert words in resp.text


async def test_history_range_excludes_older_scores(
    client: httpx.AsyncClient, db: psycopg.Connection[Any]
) -> None:
    score(db, "U-JA-001", 10.0, "blue", T0)
    score(db, "U-JA-001", 30.0, "yellow", T0 + timedelta(days=10))
    resp = await client.get(
        "/risk/units/U-JA-001/history",
        params={
            "from": (T0 + timedelta(days=1)).isoformat(),
            "to": (T0 + timedelta(days=20)).isoformat(),
        },
    )
    assert [h["score"] for h in resp.json()] == [30.0]
