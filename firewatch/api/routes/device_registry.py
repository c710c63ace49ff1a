"""``/devices``: the device registry (issue 14; docs/registry.md). List, read, register,
change, decommission, and import many devices from a CSV file.

Who may (``firewatch/core/access.py``): reading is ``device_read`` (the monitoring center,
the fire department, a unit's manager for its unit's devices, a vendor for its own);
writing is ``devices_write`` (an admin, and a vendor for its own devices, registering only
into units it serves: ``storage/devices.py``). One device outside a scoped role's scope
answers 403, also when no device has that id: the scope must not reveal which ids exist.

The import takes the file itself as the request body, ``Content-Type: text/csv`` (UTF-8):
``curl --data-binary @devices.csv -H 'Content-Type: text/csv' …/devices/import``. Its size
is bounded by the API's body limit (``FIREWATCH_API_MAX_BODY_BYTES``, 64 KiB: about 800
rows; 413 beyond it, from the guard); larger files go through
``firewatch registry import-devices``. The answer is 200 with a report line per row, also
when rows were rejected (the others are written): read ``summary.rejected``.

These routes are registered after ``routes/devices.py``, so ``GET /devices/health`` keeps
its own route (``health`` and ``import`` are reserved device ids).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status

from firewatch.api.deps import ApiContext, Conn, Context, DeviceReader, DeviceWriter
from firewatch.api.registry_schemas import (
    DecommissionIn,
    DeviceIn,
    DeviceOut,
    DevicePatch,
    ImportReportOut,
    ImportRowOut,
    ImportSummaryOut,
)
from firewatch.api.schemas import ErrorOut
from firewatch.core.access import Forbidden, check_device, unit_scope, vendor_scope
from firewatch.core.csv_import import ImportFileError, decode, summarize
from firewatch.core.device_import import (
    Conflict,
    NotFound,
    RegistryError,
    device_row,
    parse_devices_csv,
)
from firewatch.core.domain import DeviceKind
from firewatch.core.gateway_rows import DEFAULT_PROFILE, known_profiles, profiles_file_of
from firewatch.core.people import Person
from firewatch.storage import device_health
from firewatch.storage import devices as store

router = APIRouter(tags=["registry"])

DeviceId = Annotated[str, Path(min_length=1, max_length=200, description="A device id.")]
Filter = Annotated[str | None, Query(min_length=1, max_length=64)]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        403: "outside your scope: another vendor's device, a unit you do not serve",
        404: "no device has that id",
        409: "the id is taken or decommissioned; the device is decommissioned already; the"
        " GB/T address is another device's",
        413: "the file is larger than the API's body limit",
        415: "not a text/csv body in UTF-8",
        422: "a value the registry refuses, with the reason",
    }
    return {c: {"model": ErrorOut, "description": what[c]} for c in codes}


def refused(err: RegistryError | Forbidden) -> HTTPException:
    """The HTTP answer to a refusal of the registry (``core/device_import.py``)."""
    if isinstance(err, Forbidden):
        return HTTPException(status.HTTP_403_FORBIDDEN, str(err))
    if isinstance(err, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(err))
    if isinstance(err, Conflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(err))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err))


def _in_scope(conn: Conn, person: Person, device_id: str) -> None:
    """404 for an unknown device (to the unscoped roles); 403 unless ``person`` may see it,
    also when it does not exist (a scoped role must not learn which ids exist)."""
    owner = device_health.device_owner(conn, device_id)
    if owner is not None:
        check_device(person, *owner)
        return
    if unit_scope(person) is None and vendor_scope(person) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    # '' is no unit and no vendor's scope: the refusal of a device that is not theirs.
    check_device(person, "", "")
    raise AssertionError("a scoped role was not refused")  # pragma: no cover


def _as_vendor(person: Person) -> str | None:
    return vendor_scope(person)


def _profiles(ctx: ApiContext) -> frozenset[str]:
    """The GB/T profiles a device may name: the gateway's (built-in ones and its file's);
    503 if the operator's profiles file cannot be read (the gateway could not start
    either)."""
    try:
        return known_profiles(profiles_file_of(ctx.settings))
    except ValueError as err:  # ProfileError
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"the GB/T profiles cannot be read: {err}"
        ) from None


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(
    conn: Conn,
    person: DeviceReader,
    unit_id: Filter = None,
    vendor: Filter = None,
    kind: DeviceKind | None = None,
    include_decommissioned: Annotated[
        bool, Query(description="Also devices taken out of service (their history stays).")
    ] = False,
    after: Annotated[
        str | None,
        Query(max_length=64, description="The last id of the previous page: the next page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[DeviceOut]:
    """Registered devices by id, a page at a time (``after``). A unit's manager gets its
    unit's, a vendor its own (a filter outside the scope gives an empty list)."""
    own_unit, own_vendor = unit_scope(person), vendor_scope(person)
    if (own_unit is not None and unit_id not in (None, own_unit)) or (
        own_vendor is not None and vendor not in (None, own_vendor)
    ):
        return []
    rows = store.list_devices(
        conn,
        unit_id=own_unit or unit_id,
        vendor=own_vendor or vendor,
        kind=kind.value if kind is not None else None,
        include_decommissioned=include_decommissioned,
        after=after,
        limit=limit,
    )
    return [DeviceOut.model_validate(r) for r in rows]


@router.post(
    "/devices",
    response_model=DeviceOut,
    status_code=status.HTTP_201_CREATED,
    responses=_errors(403, 409, 422),
)
def register_device(conn: Conn, ctx: Context, person: DeviceWriter, body: DeviceIn) -> DeviceOut:
    """Register one device. A vendor registers only into a unit it serves now, and the
    device is always its own. An id that is (or was) registered is 409: ids are never
    reused; so is a GB/T address another device in service has."""
    profiles = _profiles(ctx) if body.gbt_profile.strip() != DEFAULT_PROFILE else None
    try:
        row = device_row(
            line=1,
            device_id=body.id,
            unit_id=body.unit_id,
            kind=body.kind,
            vendor=body.vendor,
            model=body.model,
            meta=body.metadata,
            gbt_address=body.gbt_address,
            gbt_profile=body.gbt_profile,
            profiles=profiles,
        )
        found = store.register_device(
            conn, row, actor=person.username, as_vendor=_as_vendor(person)
        )
    except (RegistryError, Forbidden) as err:
        raise refused(err) from None
    return DeviceOut.model_validate(found)


async def csv_body(request: Request) -> str:
    """The request body as the text of a CSV file: 415 unless ``text/csv`` (UTF-8), 422
    if it is not UTF-8. (The guard has answered 413 for a body over the limit.)"""
    media, _, params = request.headers.get("content-type", "").partition(";")
    if media.strip().lower() != "text/csv":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the CSV file itself as the body with Content-Type: text/csv (got"
            f" {media.strip()[:60] or 'none'!r})",
        )
    charset = params.strip().lower().removeprefix("charset=").strip('"') if params else "utf-8"
    if charset not in ("utf-8", "utf8"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"only UTF-8 is accepted (charset {charset[:40]!r}): convert the file, e.g. iconv"
            " -f GBK -t UTF-8",
        )
    try:
        return decode(await request.body())
    except ImportFileError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None


@router.post(
    "/devices/import",
    response_model=ImportReportOut,
    responses=_errors(413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "maxLength": 65536}}},
            "description": "The CSV file (UTF-8, a header row; columns: docs/registry.md).",
        }
    },
)
def import_devices(
    conn: Conn,
    ctx: Context,
    person: DeviceWriter,
    text: Annotated[str, Depends(csv_body)],
    dry_run: Annotated[bool, Query(description="Check every row, write nothing.")] = False,
) -> ImportReportOut:
    """Create or update devices from a CSV file, with a report per row (created, updated
    with what changed, unchanged, rejected with the reason); the good rows are written
    even when others are rejected. A vendor's rows follow its rules (its units, its
    devices). 422 for a file that is not a devices CSV at all (header, encoding)."""
    try:
        parsed = parse_devices_csv(text, profiles=_profiles(ctx))
    except ImportFileError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    results = store.import_devices(
        conn,
        parsed.rows,
        rejected=parsed.rejected,
        actor=person.username,
        as_vendor=_as_vendor(person),
        dry_run=dry_run,
    )
    return ImportReportOut(
        dry_run=dry_run,
        summary=ImportSummaryOut(**summarize(results)),
        rows=[ImportRowOut.model_validate(r.to_json()) for r in results],
    )


@router.get("/devices/{device_id}", response_model=DeviceOut, responses=_errors(403, 404))
def get_device(conn: Conn, person: DeviceReader, device_id: DeviceId) -> DeviceOut:
    """One device, in service or decommissioned."""
    _in_scope(conn, person, device_id)
    found = store.get_device(conn, device_id)
    if found is None:  # gone between the two reads: devices are never deleted, but still
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return DeviceOut.model_validate(found)


@router.patch(
    "/devices/{device_id}", response_model=DeviceOut, responses=_errors(403, 404, 409, 422)
)
def update_device(
    conn: Conn, ctx: Context, person: DeviceWriter, device_id: DeviceId, body: DevicePatch
) -> DeviceOut:
    """Change a device in service: its unit (a move: the broker re-pins its topics; a
    vendor only into a unit it serves), vendor (admin), model, metadata, GB/T address and
    profile. A decommissioned device is 409, and so is a GB/T address another device in
    service has."""
    _in_scope(conn, person, device_id)
    address, profile = body.gbt()
    profiles = _profiles(ctx) if profile and profile.strip() != DEFAULT_PROFILE else None
    try:
        found, _changed = store.update_device(
            conn,
            device_id,
            actor=person.username,
            as_vendor=_as_vendor(person),
            unit_id=body.unit_id,
            vendor=body.vendor,
            model=body.model,
            metadata=dict(body.metadata),
            gbt_address=address,
            gbt_profile=profile,
            profiles=profiles,
        )
    except (RegistryError, Forbidden) as err:
        raise refused(err) from None
    return DeviceOut.model_validate(found)


@router.post(
    "/devices/{device_id}/decommission",
    response_model=DeviceOut,
    responses=_errors(403, 404, 409),
)
def decommission_device(
    conn: Conn,
    person: DeviceWriter,
    device_id: DeviceId,
    body: DecommissionIn | None = None,
) -> DeviceOut:
    """Take a device out of service for good: it keeps its row, readings and history;
    ingest stops taking its messages and its broker login is revoked. Its id is never
    registered again (409)."""
    _in_scope(conn, person, device_id)
    try:
        found = store.decommission_device(
            conn,
            device_id,
            actor=person.username,
            as_vendor=_as_vendor(person),
            note=body.note if body is not None else "",
        )
    except (RegistryError, Forbidden) as err:
        raise refused(err) from None
    return DeviceOut.model_validate(found)
