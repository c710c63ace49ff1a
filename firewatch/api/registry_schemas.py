"""Request and response bodies of the registry's write API (issue 14; docs/registry.md):
vendors, installations, devices, units.

Every request field is bounded here (length, range, pattern), so that no input reaches the
database unchecked; what needs the records (the unit exists, the vendor serves it, a phone
number's form, metadata per kind) is checked by ``core/device_import.py`` and
``core/unit_import.py`` and answered 422 with their reason. Bodies are strict (a number is
not a string) and refuse unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from firewatch.core.contract import ID_PATTERN
from firewatch.core.device_import import MAX_MODEL, MAX_TEXT, METADATA
from firewatch.core.domain import DeviceKind
from firewatch.core.unit_import import BUILDING_CLASSES, MAX_ADDRESS, MAX_NAME

RegistryId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]
Note = Annotated[str, Field(max_length=500)]
MetaKey = Annotated[str, Field(min_length=1, max_length=40)]
MetaValue = int | float | Annotated[str, Field(max_length=MAX_TEXT)]
#: Bounded here, checked by core/device_import.py (a 422 that says what is wrong).
GbtAddress = Annotated[
    str,
    Field(
        max_length=64,
        description="A panel's GB/T 26875.3 address: its UITD's 48-bit source address as"
        " exactly 12 hex digits, most significant first (any case; answered in lower case)."
        " Unique among devices in service; panels only.",
        examples=["00a1b2c3d4e5"],
    ),
]
GbtProfile = Annotated[
    str,
    Field(
        max_length=64,
        description="The GB/T profile the gateway decodes its frames with: standard,"
        " year-first, xor-checksum, or one of the gateway's profiles file. Panels only.",
    ),
]
_META_DOC = "Thresholds and facts the detectors read (docs/registry.md): " + ", ".join(
    f"{k} ({'/'.join(sorted(f.kinds))})" for k, f in METADATA.items()
)


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


# -- vendors and installations ---------------------------------------------------------------


class VendorIn(_In):
    """``POST /vendors``: a device maker or installer."""

    id: RegistryId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    contact: Annotated[
        dict[
            Annotated[str, Field(min_length=1, max_length=40)],
            Annotated[str, Field(max_length=200)],
        ],
        Field(max_length=10, description="Free contact fields: name, phone, email …"),
    ] = {}


class VendorOut(BaseModel):
    id: str
    name: str
    contact: dict[str, Any]
    created_at: datetime
    units: list[str] = Field(description="The units it serves now (open installations).")


class InstallationIn(_In):
    """``POST /vendors/{id}/installations``: the vendor serves this unit from now."""

    unit_id: RegistryId
    note: Note = ""


class InstallationEndIn(_In):
    """``POST /installations/{id}/end`` (the body is optional)."""

    note: Note = ""


class InstallationOut(BaseModel):
    id: int
    vendor_id: str
    unit_id: str
    since: datetime
    until: datetime | None = Field(description="null while it is open")
    created_by: str
    note: str


# -- devices -----------------------------------------------------------------------------------


class DeviceIn(_In):
    """``POST /devices``: register one device. A vendor may leave ``vendor`` out (it is
    always its own) and register only into a unit it serves."""

    id: RegistryId
    unit_id: RegistryId
    kind: Annotated[DeviceKind, Field(strict=False)]  # (JSON text: strict wants the enum)
    vendor: Annotated[str, Field(max_length=64, pattern=r"^([A-Za-z0-9_.-]{1,64})?$")] = ""
    model: Annotated[str, Field(max_length=MAX_MODEL)] = ""
    metadata: Annotated[
        dict[MetaKey, MetaValue], Field(max_length=len(METADATA), description=_META_DOC)
    ] = {}
    gbt_address: GbtAddress | None = None
    gbt_profile: GbtProfile = "standard"


class DevicePatch(_In):
    """``PATCH /devices/{id}``: what to change; a field left out is kept. ``unit_id``
    moves the device (the broker re-pins it). A metadata value ``null`` removes the key
    (its default applies again). ``gbt_address`` ``null`` (or ``""``) removes the address,
    ``gbt_profile`` ``null`` (or ``""``) puts back ``standard``. The kind never changes."""

    unit_id: RegistryId | None = None
    vendor: Annotated[str, Field(max_length=64, pattern=r"^([A-Za-z0-9_.-]{1,64})?$")] | None = None
    model: Annotated[str, Field(max_length=MAX_MODEL)] | None = None
    metadata: Annotated[
        dict[MetaKey, MetaValue | None],
        Field(max_length=len(METADATA), description=_META_DOC),
    ] = {}
    gbt_address: GbtAddress | None = None
    gbt_profile: GbtProfile | None = None

    def gbt(self) -> tuple[str | None, str | None]:
        """The address and profile to set: None where the body leaves the field out,
        ``""`` where it gives null or ``""`` (clear)."""
        given = self.model_fields_set
        address = self.gbt_address if "gbt_address" in given else None
        profile = self.gbt_profile if "gbt_profile" in given else None
        return (
            "" if "gbt_address" in given and address is None else address,
            "" if "gbt_profile" in given and profile is None else profile,
        )


class DecommissionIn(_In):
    """``POST /devices/{id}/decommission`` (the body is optional)."""

    note: Note = ""


class DeviceOut(BaseModel):
    id: str
    unit_id: str
    kind: str
    vendor: str = Field(description="'' when unknown")
    model: str
    metadata: dict[str, Any]
    gbt_address: str | None = Field(
        description="GB/T 26875.3 address (12 lowercase hex digits); null: none"
    )
    gbt_profile: str = Field(description="GB/T profile its frames are decoded with")
    created_at: datetime
    decommissioned_at: datetime | None
    decommissioned_by: str | None
    decommission_note: str | None


class ImportRowOut(BaseModel):
    line: int = Field(description="The row's line in the file (the header is line 1).")
    id: str
    outcome: Literal["created", "updated", "unchanged", "rejected"]
    reason: str | None = Field(default=None, description="Why it was rejected.")
    changed: list[str] | None = Field(default=None, description="What an update changed.")


class ImportSummaryOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int


class ImportReportOut(BaseModel):
    """A devices import: one line per data row of the file, in file order."""

    dry_run: bool = Field(description="true: every check ran, nothing was written")
    summary: ImportSummaryOut
    rows: list[ImportRowOut]


# -- units -------------------------------------------------------------------------------------

Category = Literal["high_risk", "key", "ordinary"]
BuildingClass = Annotated[str, Field(json_schema_extra={"enum": list(BUILDING_CLASSES)})]
UnitType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class ContactIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    phone: Annotated[str, Field(min_length=1, max_length=40)]


class UnitIn(_In):
    """``POST /units``: one unit, as a row of the units file (docs/analysis.md)."""

    id: RegistryId
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
    street: RegistryId
    category: Category = Field(description="Supervision class.")
    type: UnitType = Field(description="What the unit is: hotel, school …")
    building_class: BuildingClass
    address: Annotated[str, Field(max_length=MAX_ADDRESS)] = ""
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    responsible: ContactIn | None = None
    maintenance: ContactIn | None = None


class UnitPatch(_In):
    """``PATCH /units/{id}``: what to change; a field left out is kept, ``null`` clears an
    optional one (address, location, a contact)."""

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)] | None = None
    street: RegistryId | None = None
    category: Category | None = None
    type: UnitType | None = None
    building_class: BuildingClass | None = None
    address: Annotated[str, Field(max_length=MAX_ADDRESS)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    responsible: ContactIn | None = None
    maintenance: ContactIn | None = None
