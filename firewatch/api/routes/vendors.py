"""``/vendors`` and ``/installations``: device vendors and the units they serve (issue 14;
docs/registry.md).

Who may (``firewatch/core/access.py``): reading is ``vendors_read`` (the monitoring center,
and a vendor for itself only: another vendor's id answers 403, whether it exists or not);
registering a vendor and opening or ending an installation is ``registry_write`` (admin).
A vendor registers devices only into the units it serves now (``/devices``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from firewatch.api.deps import Conn, RegistryWriter, VendorReader
from firewatch.api.registry_schemas import (
    InstallationEndIn,
    InstallationIn,
    InstallationOut,
    VendorIn,
    VendorOut,
)
from firewatch.api.routes.device_registry import refused
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import Forbidden, vendor_scope
from firewatch.core.device_import import RegistryError
from firewatch.core.people import Person
from firewatch.storage import vendors as store

router = APIRouter(tags=["registry"])

VendorId = Annotated[str, Path(min_length=1, max_length=64, description="A vendor id.")]
InstallationId = Annotated[int, Path(ge=1, le=2**63 - 1, description="An installation id.")]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        403: "another vendor's record",
        404: "no vendor, unit or installation has that id",
        409: "the vendor exists; it serves the unit already; the installation has ended",
    }
    return {c: {"model": ErrorOut, "description": what[c]} for c in codes}


def _check_vendor(person: Person, vendor_id: str) -> None:
    """403 unless ``person`` may see ``vendor_id`` (a vendor: only itself)."""
    own = vendor_scope(person)
    if own is not None and own != vendor_id:
        raise Forbidden(f"vendor {vendor_id!r} is outside your scope (you are {own})")


@router.get("/vendors", response_model=list[VendorOut])
def list_vendors(conn: Conn, person: VendorReader) -> list[VendorOut]:
    """Every vendor with the units it serves now; a vendor sees only itself."""
    return [
        VendorOut.model_validate(v) for v in store.list_vendors(conn, only=vendor_scope(person))
    ]


@router.post(
    "/vendors",
    response_model=VendorOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(409),
)
def add_vendor(conn: Conn, person: RegistryWriter, body: VendorIn) -> VendorOut:
    """Register a vendor; then open its installations and give its people accounts
    (``firewatch user add --role vendor --vendor ID``)."""
    try:
        found = store.add_vendor(
            conn, body.id, body.name, actor=person.username, contact=dict(body.contact)
        )
    except RegistryError as err:
        raise refused(err) from None
    return VendorOut.model_validate(found)


@router.get("/vendors/{vendor_id}", response_model=VendorOut, responses=_errors(403, 404))
def get_vendor(conn: Conn, person: VendorReader, vendor_id: VendorId) -> VendorOut:
    """One vendor with the units it serves now."""
    _check_vendor(person, vendor_id)
    found = store.get_vendor(conn, vendor_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no vendor {vendor_id!r}")
    return VendorOut.model_validate(found)


@router.get(
    "/vendors/{vendor_id}/installations",
    response_model=list[InstallationOut],
    responses=_errors(403, 404),
)
def list_installations(
    conn: Conn,
    person: VendorReader,
    vendor_id: VendorId,
    open_only: Annotated[
        bool, Query(alias="open", description="Only the installations open now.")
    ] = False,
) -> list[InstallationOut]:
    """The vendor's installations (which unit, since, until), open ones first; ended ones
    stay as history."""
    _check_vendor(person, vendor_id)
    if store.get_vendor(conn, vendor_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no vendor {vendor_id!r}")
    rows = store.installations(conn, vendor_id, open_only=open_only)
    return [InstallationOut.model_validate(r) for r in rows]


@router.post(
    "/vendors/{vendor_id}/installations",
    response_model=InstallationOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(404, 409),
)
def open_installation(
    conn: Conn, person: RegistryWriter, vendor_id: VendorId, body: InstallationIn
) -> InstallationOut:
    """The vendor serves this unit from now: it may register devices there."""
    try:
        row = store.install(conn, vendor_id, body.unit_id, actor=person.username, note=body.note)
    except RegistryError as err:
        raise refused(err) from None
    return InstallationOut.model_validate(row)


@router.post(
    "/installations/{installation_id}/end",
    response_model=InstallationOut,
    responses=_errors(404, 409),
)
def end_installation(
    conn: Conn,
    person: RegistryWriter,
    installation_id: InstallationId,
    body: InstallationEndIn | None = None,
) -> InstallationOut:
    """End an installation now (it stays as history). The vendor's devices in that unit
    stay registered and its own; it can no longer register devices there."""
    try:
        row = store.end_installation(
            conn,
            installation_id,
            actor=person.username,
            note=body.note if body is not None else "",
        )
    except RegistryError as err:
        raise refused(err) from None
    return InstallationOut.model_validate(row)
