"""``POST /units`` and ``PATCH /units/{unit_id}``: an admin writes one unit (issue 14;
docs/registry.md). Registry writes are ``registry_write`` (admin).

A unit written here is checked exactly like a row of the units file
(``core/unit_import.py``: street, class, type, building class, coordinates, phones) and
written by the same code (``storage/units.py``), so the API and
``firewatch registry import-units`` cannot disagree; each change is audited in
``registry_events``. A partial change is merged into the stored unit first, then checked
whole.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status

from firewatch.api.deps import Conn, RegistryWriter
from firewatch.api.registry_schemas import ContactIn, UnitIn, UnitPatch
from firewatch.api.routes.device_registry import refused
from firewatch.api.schemas import ErrorOut
from firewatch.api.tier_schemas import UnitOut, contact_out
from firewatch.core.device_import import RegistryError
from firewatch.core.unit_import import REQUIRED, parse_row
from firewatch.storage import regions as registry
from firewatch.storage.units import street_ids, unit_cells, write_unit

router = APIRouter(tags=["registry"])

UnitId = Annotated[str, Path(min_length=1, max_length=64, description="A unit id.")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no unit has that id"},
    409: {"model": ErrorOut, "description": "a unit has that id already"},
    422: {"model": ErrorOut, "description": "a value the registry refuses, with the reason"},
}
#: A body field -> the units-file columns it manages.
_COLUMNS = {
    "address": ("address",),
    "latitude": ("latitude", "longitude"),
    "longitude": ("latitude", "longitude"),
    "responsible": ("responsible_name", "responsible_phone"),
    "maintenance": ("maintenance_name", "maintenance_phone"),
}


def _contact_cells(role: str, contact: ContactIn | None) -> dict[str, str]:
    return {
        f"{role}_name": contact.name if contact else "",
        f"{role}_phone": contact.phone if contact else "",
    }


def _cells(body: UnitIn | UnitPatch) -> dict[str, str]:
    """The fields ``body`` sets, as the cells of a units-file row (stripped)."""
    cells: dict[str, str] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name in ("responsible", "maintenance"):
            cells.update(_contact_cells(name, value))
        elif value is None:
            cells[name] = ""
        else:
            cells[name] = repr(value) if isinstance(value, float) else str(value).strip()
    return cells


def _write(
    conn: Conn, cells: dict[str, str], columns: set[str], actor: str, create: bool
) -> UnitOut:
    try:
        row = parse_row(1, cells, street_ids(conn))
        write_unit(conn, row, columns, actor=actor, create=create)
    except RegistryError as err:
        raise refused(err) from None
    except ValueError as err:  # the units file's own checks (core/unit_import.py)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    found = registry.find_unit(conn, row.id)
    assert found is not None
    # An admin calls units: their contacts' phones are whole (routes/units.py).
    return UnitOut.model_validate(
        {
            **found,
            "responsible": contact_out(found["responsible"], full_phone=True),
            "maintenance": contact_out(found["maintenance"], full_phone=True),
        }
    )


@router.post(
    "/units", response_model=UnitOut, status_code=status.HTTP_201_CREATED, responses=_ERRORS
)
def create_unit(conn: Conn, person: RegistryWriter, body: UnitIn) -> UnitOut:
    """Register one unit (as one row of the units file, docs/analysis.md). 409 if the id
    exists: change it with ``PATCH``."""
    cells = _cells(body)
    columns = set(REQUIRED) | {c for f in body.model_fields_set for c in _COLUMNS.get(f, ())}
    return _write(conn, cells, columns, person.username, create=True)


@router.patch("/units/{unit_id}", response_model=UnitOut, responses=_ERRORS)
def update_unit(conn: Conn, person: RegistryWriter, unit_id: UnitId, body: UnitPatch) -> UnitOut:
    """Change what the body gives; ``null`` clears the address, the location (give both
    coordinates) or a contact. Other contact entries and the unit's attributes are kept."""
    stored = unit_cells(conn, unit_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    cells = {**stored, **_cells(body)}
    columns = set(REQUIRED) | {c for f in body.model_fields_set for c in _COLUMNS.get(f, ())}
    return _write(conn, cells, columns, person.username, create=False)
