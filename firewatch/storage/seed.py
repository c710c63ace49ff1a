"""The registry tables (``regions``, ``units``, ``devices``): load a city from a TOML seed
file (``firewatch db seed FILE``), and read the registry back for the services.

Idempotent: rows are upserted by id, so loading the same file twice changes nothing and an
edited file updates names, contacts and metadata. Readers: :func:`device_routes` (ingest's
device -> unit, kind snapshot) and :func:`device_profile_rows` (analytics' profiles). The
full registry API comes later.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import psycopg
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from firewatch.core.contract import ID_PATTERN
from firewatch.core.domain import DeviceKind
from firewatch.core.gateway_rows import (
    DEFAULT_PROFILE,
    check_profile_name,
    known_profiles,
    normalise_address,
)

DEFAULT_SEED = "xuchang.toml"
Id = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreetSeed(_Strict):
    id: Id = Field(pattern=ID_PATTERN)
    name: str


class DistrictSeed(_Strict):
    id: Id = Field(pattern=ID_PATTERN)
    name: str
    streets: list[StreetSeed]


class DeviceSeed(_Strict):
    id: Id = Field(pattern=ID_PATTERN)
    kind: DeviceKind
    vendor: str = ""
    model: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: A panel's GB/T 26875.3 address: 12 hex digits (stored in lower case); docs/registry.md.
    gbt_address: str | None = None
    #: The GB/T profile its frames are decoded with (core/gbt_profiles.toml).
    gbt_profile: str = DEFAULT_PROFILE

    @field_validator("gbt_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else normalise_address(value)

    @field_validator("gbt_profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        return check_profile_name(value)

    @model_validator(mode="after")
    def _only_panels(self) -> DeviceSeed:
        if self.kind is not DeviceKind.PANEL and (
            self.gbt_address is not None or self.gbt_profile != DEFAULT_PROFILE
        ):
            raise ValueError(f"device {self.id}: gbt_address and gbt_profile are for panels only")
        return self


class UnitSeed(_Strict):
    id: Id = Field(pattern=ID_PATTERN)
    name: str
    street: Id
    supervision: Literal["high_risk", "key", "general"]
    category: str
    building_class: str
    address: str = ""
    #: WGS-84 degrees (the console's map); both or neither.
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    contacts: dict[str, Any] = Field(default_factory=dict)
    devices: list[DeviceSeed] = Field(default_factory=list)


class CitySeed(_Strict):
    id: Id = Field(pattern=ID_PATTERN)
    name: str
    districts: list[DistrictSeed]
    units: list[UnitSeed]


def read_seed(path: Path | None = None) -> CitySeed:
    """Parse and validate a seed file (the bundled Xuchang demo city if ``path`` is None).

    Raises ``pydantic.ValidationError`` / ``tomllib.TOMLDecodeError`` with the offending field.
    """
    if path is None:
        text = (
            resources.files("firewatch.storage").joinpath("seeds", DEFAULT_SEED).read_text("utf-8")
        )
    else:
        text = path.read_text("utf-8")
    return CitySeed.model_validate(tomllib.loads(text))


def load_seed(
    conn: psycopg.Connection[Any], city: CitySeed, *, profiles: Collection[str] | None = None
) -> dict[str, int]:
    """Upsert the city into the registry tables in one transaction; return counts.
    ValueError for a unit on an unknown street, a GB/T address given twice, or a
    ``gbt_profile`` that is not one of ``profiles`` (None: the built-in ones)."""
    streets = {s.id for d in city.districts for s in d.streets}
    for unit in city.units:
        if unit.street not in streets:
            raise ValueError(f"unit {unit.id}: unknown street {unit.street!r}")
    _check_gbt(city, profiles)
    upsert_region = (
        "INSERT INTO regions (id, parent_id, level, name) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, name = EXCLUDED.name"
    )
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(upsert_region, (city.id, None, "city", city.name))
        for d in city.districts:
            cur.execute(upsert_region, (d.id, city.id, "district", d.name))
            cur.executemany(upsert_region, [(s.id, d.id, "street", s.name) for s in d.streets])
        cur.executemany(
            "INSERT INTO units (id, name, region_id, supervision, category, building_class,"
            " address, latitude, longitude, contacts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, region_id = EXCLUDED.region_id,"
            " supervision = EXCLUDED.supervision, category = EXCLUDED.category,"
            " building_class = EXCLUDED.building_class, address = EXCLUDED.address,"
            " latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,"
            " contacts = EXCLUDED.contacts",
            [
                (
                    u.id,
                    u.name,
                    u.street,
                    u.supervision,
                    u.category,
                    u.building_class,
                    u.address,
                    u.latitude,
                    u.longitude,
                    json.dumps(u.contacts, ensure_ascii=False),
                )
                for u in city.units
            ],
        )
        cur.executemany(
            "INSERT INTO devices (id, unit_id, kind, vendor, model, metadata, gbt_address,"
            " gbt_profile) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET unit_id = EXCLUDED.unit_id, kind = EXCLUDED.kind,"
            " vendor = EXCLUDED.vendor, model = EXCLUDED.model, metadata = EXCLUDED.metadata,"
            " gbt_address = EXCLUDED.gbt_address, gbt_profile = EXCLUDED.gbt_profile",
            [
                (
                    dev.id,
                    u.id,
                    dev.kind.value,
                    dev.vendor,
                    dev.model,
                    json.dumps(dev.metadata, ensure_ascii=False),
                    dev.gbt_address,
                    dev.gbt_profile,
                )
                for u in city.units
                for dev in u.devices
            ],
        )
        # The seed's vendors serve the units their devices are in (issue 14's registry):
        # without this a vendor account could not see or manage the seeded devices' units.
        ids = [dev.id for u in city.units for dev in u.devices]
        cur.execute(
            "INSERT INTO vendors (id, name) SELECT DISTINCT vendor, vendor FROM devices"
            " WHERE id = ANY(%s) AND vendor ~ '^[A-Za-z0-9_.-]{1,64}$' ON CONFLICT DO NOTHING",
            (ids,),
        )
        cur.execute(
            "INSERT INTO installations (vendor_id, unit_id, created_by, note)"
            " SELECT DISTINCT d.vendor, d.unit_id, 'seed', 'from the seed file'"
            " FROM devices d JOIN vendors v ON v.id = d.vendor WHERE d.id = ANY(%s)"
            # any installation, ended ones too: reloading the seed must not undo an admin's end
            " AND NOT EXISTS (SELECT 1 FROM installations i WHERE i.vendor_id = d.vendor"
            " AND i.unit_id = d.unit_id)",
            (ids,),
        )
        # A device the seed moved to another unit: the broker re-pins its topics.
        cur.execute("SELECT pg_notify('firewatch_broker', '')")
    return {
        "districts": len(city.districts),
        "streets": len(streets),
        "units": len(city.units),
        "devices": sum(len(u.devices) for u in city.units),
    }


def _check_gbt(city: CitySeed, profiles: Collection[str] | None) -> None:
    """Each GB/T address once in the file, each profile a known one (ValueError)."""
    held: dict[str, str] = {}
    known: Collection[str] | None = profiles
    for dev in (d for u in city.units for d in u.devices):
        if dev.gbt_address is not None:
            if dev.gbt_address in held:
                raise ValueError(
                    f"device {dev.id}: gbt_address {dev.gbt_address} is device"
                    f" {held[dev.gbt_address]}'s already"
                )
            held[dev.gbt_address] = dev.id
        if dev.gbt_profile != DEFAULT_PROFILE:
            known = known_profiles() if known is None else known
            if dev.gbt_profile not in known:
                raise ValueError(
                    f"device {dev.id}: unknown gbt_profile {dev.gbt_profile!r}"
                    f" (known: {', '.join(sorted(known))})"
                )


# -- reading the registry -----------------------------------------------------------------

# Decommissioned devices are not routed: what they still send is an unknown_device dead
# letter (their history stays).
_ROUTES = "SELECT id, unit_id, kind FROM devices WHERE decommissioned_at IS NULL"
_PROFILES = (
    "SELECT d.id, d.unit_id, d.kind, u.building_class, d.metadata,"
    " COALESCE(u.attributes -> 'thresholds', '{}'::jsonb)"
    " FROM devices d JOIN units u ON u.id = d.unit_id"
)


def device_routes(
    conn: psycopg.Connection[Any], ids: Collection[str] | None = None
) -> list[tuple[str, str, str]]:
    """``(device id, unit id, kind)`` of every registered device in service, or (one indexed query)
    of those among ``ids``. ``kind`` is the stored text: it may be one this version does
    not know."""
    if ids is None:
        return conn.execute(_ROUTES).fetchall()
    return conn.execute(_ROUTES + " AND id = ANY(%s)", (list(ids),)).fetchall()


class ProfileRow(NamedTuple):
    """What a device's detector profile is built from: the device, its unit's building
    class, its metadata, and the unit's threshold overrides (``{}`` when none)."""

    device_id: str
    unit_id: str
    kind: str
    building_class: str
    metadata: dict[str, Any] | None
    thresholds: dict[str, Any] | None


def device_profile_rows(conn: psycopg.Connection[Any]) -> list[ProfileRow]:
    """One :class:`ProfileRow` per registered device."""
    return [ProfileRow._make(r) for r in conn.execute(_PROFILES).fetchall()]
