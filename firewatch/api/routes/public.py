"""``/public``: what focused supervision publishes ("one public"), read-only and without
personal data (docs/supervision.md, "What is public").

* ``/public/draws``, ``/public/draws/{id}``: every draw from the moment it is committed,
  with its inputs, their hash and the seed's commitment; the seed and the result once the
  draw is published (or cancelled: a cancellation never hides a result). The document of
  ``/public/draws/{id}`` is all anyone needs to verify the draw
  (``firewatch supervise verify --file``).
* ``/public/inspections``: inspection results (outcome, hazards by category, severity,
  deadline and state) of inspections that are not part of an unpublished draw.

Inspectors appear by their public code; units by id, name and street.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.deps import Conn
from firewatch.api.routes.supervision import draw_out, draw_summary
from firewatch.api.schemas import ErrorOut
from firewatch.api.supervision_schemas import (
    DrawOut,
    DrawSummaryOut,
    PublicHazardOut,
    PublicInspectionOut,
    UnitRef,
)
from firewatch.core.supervision import NotFound
from firewatch.storage import draws as draw_store
from firewatch.storage import inspections as inspection_store

router = APIRouter(prefix="/public", tags=["public"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no draw has that id"}
}


@router.get("/draws", response_model=list[DrawSummaryOut])
def public_draws(
    conn: Conn,
    period: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DrawSummaryOut]:
    """Every draw, newest first, cancelled ones included."""
    return [
        draw_summary(d, public=True)
        for d in draw_store.list_draws(conn, period=period, limit=limit)
    ]


@router.get("/draws/{draw_id}", response_model=DrawOut, responses=_NOT_FOUND)
def public_draw(conn: Conn, draw_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> DrawOut:
    """A draw's published document: enough to verify it."""
    try:
        return draw_out(conn, draw_store.get_draw(conn, draw_id), public=True)
    except NotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None


@router.get("/inspections", response_model=list[PublicInspectionOut])
def public_inspections(
    conn: Conn,
    unit: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    draw: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PublicInspectionOut]:
    """Inspection results, newest first."""
    rows = inspection_store.list_inspections(
        conn, unit_id=unit, draw_id=draw, public=True, limit=limit
    )
    return [
        PublicInspectionOut(
            id=r["id"],
            unit=UnitRef(id=r["unit_id"], name=r["unit_name"], street=r["street"]),
            draw_id=r["draw_id"],
            inspected_at=r["inspected_at"],
            outcome=r["outcome"],
            false_declaration=r["false_declaration"],
            reinspection_of=r["reinspection_of"],
            inspectors=r["inspectors"],
            hazards=[PublicHazardOut.model_validate(h) for h in r["hazards"]],
        )
        for r in rows
    ]
