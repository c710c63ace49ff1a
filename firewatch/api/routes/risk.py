"""``/risk``: unit risk scores with their breakdown and history, per-tier views, warnings.

Read-only: scores are computed by the risk worker (``firewatch risk``), never by a request.
Every region tier is addressed by its region id (the city, a district or a street); a unit
by its unit id.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, Field

from firewatch.api.deps import Conn, RiskReader, UnitRiskReader
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import check_unit
from firewatch.storage import regions as registry
from firewatch.storage import risk as store
from firewatch.storage.risk import ScoreRow

router = APIRouter(prefix="/risk", tags=["risk"])

RegionId = Annotated[
    str, Path(min_length=1, max_length=200, description="A region id: city, district or street.")
]
UnitId = Annotated[str, Path(min_length=1, max_length=200, description="A unit id.")]
_REGION_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no region has that id"}
}
_UNIT_404: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such unit, or it has no score yet"}
}
#: Longest span one request may cover (days), so a request cannot ask for a decade.
MAX_SPAN_DAYS = 400


class Contribution(BaseModel):
    """One indicator's part of a score (as the model wrote it; docs/risk.md)."""

    model_config = {"extra": "allow"}


class ScoreOut(BaseModel):
    """A stored risk score: ``score`` (0–100) is the sum of the breakdown's contributions;
    ``level`` is ``score_level`` unless a condition in ``forced_by`` forced it."""

    id: int
    unit_id: str
    computed_at: datetime
    as_of: datetime = Field(description="Data up to this time went into the score.")
    score: float
    level: str
    score_level: str = Field(description="The level the score alone gives.")
    forced_by: list[str]
    breakdown: Any = Field(description="Each indicator's value, weight and contribution.")
    config_version: str
    trigger: str = Field(description="What made it run: schedule, event, manual.")


class ChildLevels(BaseModel):
    """How many of a child region's units (or, under a street, the unit itself) are at each
    level."""

    child_id: str
    name: str
    tier: str
    red: int
    orange: int
    yellow: int
    blue: int
    unscored: int
    mean_score: float | None


class RegionRiskOut(BaseModel):
    region_id: str
    totals: dict[str, int] = Field(description="Units per level over the whole region.")
    children: list[ChildLevels]


class TopUnit(BaseModel):
    unit_id: str
    name: str
    street_id: str
    level: str
    score: float
    score_level: str
    forced_by: list[str]
    computed_at: datetime


class TrendDay(BaseModel):
    day: str
    red: int
    orange: int
    yellow: int
    blue: int


class WarningOut(BaseModel):
    id: int
    unit_id: str
    unit_name: str
    score_id: int
    from_level: str | None
    to_level: str
    reason: str
    raised_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def _score_out(row: ScoreRow) -> ScoreOut:
    return ScoreOut.model_validate(row, from_attributes=True)


def _require_region(conn: Conn, region_id: str) -> None:
    if registry.region_exists(conn, region_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region has id {region_id!r}")


def _span(
    since: datetime | None, until: datetime | None, default_days: int
) -> tuple[datetime, datetime]:
    """The request's time range, defaulted and checked (422 when reversed or too long)."""
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=default_days)
    if start.tzinfo is None or end.tzinfo is None:
        raise HTTPException(422, "from and to need a time zone (e.g. Z)")
    if start > end:
        raise HTTPException(422, "from is after to")
    if end - start > timedelta(days=MAX_SPAN_DAYS):
        raise HTTPException(422, f"at most {MAX_SPAN_DAYS} days per request")
    return start, end


@router.get("/regions/{region_id}", response_model=RegionRiskOut, responses=_REGION_404)
def region_risk(conn: Conn, _person: RiskReader, region_id: RegionId) -> RegionRiskOut:
    """The level distribution under a region: per child (districts of the city, streets of a
    district, units of a street) and in total."""
    _require_region(conn, region_id)
    children = [ChildLevels.model_validate(r) for r in store.level_distribution(conn, region_id)]
    totals = {
        level: sum(getattr(c, level) for c in children) for level in (*store.LEVELS, "unscored")
    }
    return RegionRiskOut(region_id=region_id, totals=totals, children=children)


@router.get("/regions/{region_id}/top", response_model=list[TopUnit], responses=_REGION_404)
def region_top(
    conn: Conn,
    _person: RiskReader,
    region_id: RegionId,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> list[TopUnit]:
    """The region's highest-risk units: worst level first, then highest score."""
    _require_region(conn, region_id)
    return [TopUnit.model_validate(r) for r in store.top_units(conn, region_id, limit)]


@router.get("/regions/{region_id}/trend", response_model=list[TrendDay], responses=_REGION_404)
def region_trend(
    conn: Conn,
    _person: RiskReader,
    region_id: RegionId,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
) -> list[TrendDay]:
    """Units per level at the end of each UTC day (default: the last 30 days)."""
    _require_region(conn, region_id)
    start, end = _span(since, until, 30)
    rows = store.level_trend(conn, region_id, start, end)
    return [TrendDay.model_validate({**r, "day": r["day"].isoformat()}) for r in rows]


@router.get("/units/{unit_id}", response_model=ScoreOut, responses=_UNIT_404)
def unit_risk(conn: Conn, person: UnitRiskReader, unit_id: UnitId) -> ScoreOut:
    """A unit's current score, with the breakdown that explains it (a unit's manager: its
    own unit only)."""
    check_unit(person, unit_id)
    scores = store.last_scores(conn, [unit_id])
    if unit_id not in scores:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"unit {unit_id!r} does not exist or has no score yet"
        )
    return _score_out(scores[unit_id])


@router.get("/units/{unit_id}/history", response_model=list[ScoreOut], responses=_UNIT_404)
def unit_risk_history(
    conn: Conn,
    person: UnitRiskReader,
    unit_id: UnitId,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[ScoreOut]:
    """A unit's stored scores, newest first (default: the last 90 days)."""
    check_unit(person, unit_id)
    if not registry.unit_exists(conn, unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit has id {unit_id!r}")
    start, end = _span(since, until, 90)
    return [_score_out(r) for r in store.unit_history(conn, unit_id, start, end, limit)]


@router.get("/warnings", response_model=list[WarningOut])
def list_warnings(
    conn: Conn,
    _person: RiskReader,
    region: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    since: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[WarningOut]:
    """Risk warnings (a unit's level rose), newest first; of one region's units if given."""
    if region is not None:
        _require_region(conn, region)
    return [WarningOut.model_validate(r) for r in store.warnings(conn, region, since, limit)]
