"""Devices of the registry: what a device record may hold, and devices from a CSV file
(pure: no database; issue 14, docs/registry.md).

One validation serves every way a device enters the registry (``POST /devices``,
``PATCH /devices/{id}``, ``POST /devices/import``, ``firewatch registry import-devices``):
:func:`device_row` checks one device's fields and its metadata against :data:`METADATA`;
the storage layer then checks what needs the database (the unit exists, the vendor serves
it, the id is free) and merges the row into what is stored.

The CSV columns (a header row, UTF-8 with or without a byte-order mark, comma-separated;
order free; names case-insensitive):

================== ======== ==============================================================
column             required meaning
================== ======== ==============================================================
id                 yes      the device's id, ``[A-Za-z0-9_.-]{1,64}`` (it is in topics and
                            is the device's broker login); ``health`` and ``import`` are
                            reserved (they are API paths under ``/devices/``)
unit_id            yes      the unit it is installed in (a device moved to another unit is
                            re-pinned by the broker)
kind               yes      ``panel``, ``water`` or ``ebike_shed`` (never changes)
vendor             no       the vendor id (a registered vendor); a vendor importing its own
                            file may leave it empty or give its own id
model              no       the model name, at most 200 characters
gbt_address        no       a panel's GB/T 26875.3 address: the UITD's 48-bit source address
                            as exactly 12 hex digits, most significant first (stored in
                            lower case; unique among devices in service; panels only)
gbt_profile        no       the GB/T profile its frames are decoded with (a name of
                            ``core/gbt_profiles.py``'s profiles; empty: ``standard``)
point … ports …    no       metadata (:data:`METADATA`): thresholds and facts the detectors
                            read, each for one or two kinds
================== ======== ==============================================================

An optional column present in the header is managed by the file: an empty cell clears
that value (vendor: unknown; model: none; a metadata key: removed, so the default applies
again); a column absent leaves the stored value alone. Metadata keys this file does not
know (set by a seed file or the simulator) are always kept.

A row is a :class:`DeviceRow` or a :class:`Rejected` with the reason; a file that cannot be
read as a devices file at all raises :class:`ImportFileError` (re-exported from
``unit_import``: the same encoding and header rules).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from firewatch.core.contract import ID_PATTERN
from firewatch.core.csv_import import ImportFileError, Rejected, limited_text, read_rows
from firewatch.core.domain import DeviceKind
from firewatch.core.gateway_rows import (
    DEFAULT_PROFILE,
    check_profile_name,
    known_profiles,
    normalise_address,
)

__all__ = [
    "METADATA",
    "Conflict",
    "DeviceRow",
    "MetaField",
    "NotFound",
    "ParsedFile",
    "RegistryError",
    "check_gbt",
    "check_metadata",
    "device_row",
    "meta_value",
    "parse_devices_csv",
]

WATER, SHED, PANEL = DeviceKind.WATER, DeviceKind.EBIKE_SHED, DeviceKind.PANEL
MAX_MODEL = 200
MAX_TEXT = 200
#: A file (or an API body) with more data rows than this is refused whole: split it.
MAX_ROWS = 10_000
#: Ids that are path segments of routes under ``/devices/``: a device with one of them
#: would be unreachable at ``/devices/{id}``.
RESERVED_IDS = frozenset({"health", "import"})
_ID = re.compile(ID_PATTERN)


class RegistryError(ValueError):
    """A registry change that is refused, with a message saying why (the API answers 422
    with it, an import reports it for the row, the CLI prints it)."""


class NotFound(RegistryError, LookupError):
    """No device, vendor, unit or installation has that id (the API: 404)."""


class Conflict(RegistryError):
    """The change contradicts the records: the id is taken, the device decommissioned,
    the installation already open or ended (the API: 409)."""


@dataclass(frozen=True)
class MetaField:
    """One metadata key a device may carry: for which kinds, its type and its bounds
    (inclusive, ``low_open``: the lower bound itself is refused)."""

    kinds: frozenset[DeviceKind]
    type: type  # float, int or str
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()


#: The metadata keys the registry manages: what ``analytics/profiles.py`` resolves
#: thresholds from (``design_kpa``, ``min_kpa``, ``tank_*``, ``port_*``), what the
#: simulator and the console read (``role``, ``ports``), and where the sensor is
#: (``point``). Bounds are plausibility limits, not standards: a value outside them is a
#: typo (kPa given in MPa, a port count of 1,200).
METADATA: dict[str, MetaField] = {
    "point": MetaField(frozenset({WATER}), str, "where the sensor is (roof tank outlet …)"),
    "role": MetaField(
        frozenset({WATER}),
        str,
        "what the sensor measures",
        choices=("pressure", "tank", "pump_room"),
    ),
    "design_kpa": MetaField(
        frozenset({WATER}), float, "design pressure, kPa (above: over-pressure)", 0, 10_000, True
    ),
    "min_kpa": MetaField(
        frozenset({WATER}),
        float,
        "minimum static pressure, kPa (default: the building class's)",
        0,
        10_000,
        True,
    ),
    "tank_capacity_m": MetaField(frozenset({WATER}), float, "tank height, m", 0, 100, True),
    "tank_low_m": MetaField(
        frozenset({WATER}), float, "fire-reserve level, m (default: a fraction of capacity)", 0, 100
    ),
    "ports": MetaField(frozenset({SHED}), int, "charging ports", 1, 500),
    "port_rating_a": MetaField(
        frozenset({SHED}), float, "rated current of a port, A", 0, 100, True
    ),
    "port_alarm_c": MetaField(frozenset({SHED}), float, "port temperature alarm, °C", 20, 200),
}
REQUIRED = ("id", "unit_id", "kind")
OPTIONAL = ("vendor", "model", "gbt_address", "gbt_profile", *METADATA)


@dataclass(frozen=True)
class DeviceRow:
    """One device as a file row or a request gives it. ``vendor`` / ``model`` None: not
    given (keep what is stored; a new device has none). ``meta``: metadata keys to set;
    ``clear``: keys to remove. ``line``: its line in the file (1 for a request).
    ``gbt_address`` / ``gbt_profile`` None: not given (keep; a new device has no address
    and the ``standard`` profile); ``''``: remove the address, back to ``standard``."""

    line: int
    id: str
    unit_id: str
    kind: DeviceKind
    vendor: str | None = None
    model: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    clear: frozenset[str] = frozenset()
    gbt_address: str | None = None
    gbt_profile: str | None = None


@dataclass(frozen=True)
class ParsedFile:
    """A parsed file: valid rows, rejected rows, and the columns the header names."""

    rows: list[DeviceRow]
    rejected: list[Rejected]
    columns: frozenset[str]


def _text(value: str, what: str, limit: int) -> str:
    return limited_text(value, what, limit, RegistryError)


def check_id(value: str, what: str = "id") -> str:
    """``value`` if it is a valid registry id (vendor, unit or device), else
    :class:`RegistryError`."""
    if not _ID.match(value):
        raise RegistryError(f"{what} {value[:80]!r} is not [A-Za-z0-9_.-]{{1,64}}")
    return value


def meta_value(key: str, value: Any, kind: DeviceKind) -> Any:
    """``value`` (a CSV cell's text, or a JSON number or string) as metadata ``key`` of a
    ``kind`` device stores it; :class:`RegistryError` with the reason otherwise."""
    spec = METADATA.get(key)
    if spec is None:
        raise RegistryError(f"unknown metadata key {key[:40]!r} (known: {', '.join(METADATA)})")
    if kind not in spec.kinds:
        kinds = " and ".join(sorted(k.value for k in spec.kinds))
        raise RegistryError(f"{key} is for {kinds} devices, not {kind.value}")
    if spec.type is str:
        if not isinstance(value, str):
            raise RegistryError(f"{key} must be text")
        text = _text(value, key, MAX_TEXT)
        if spec.choices and text not in spec.choices:
            raise RegistryError(f"{key} {text[:40]!r} is not one of {', '.join(spec.choices)}")
        return text
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RegistryError(f"{key} must be a number")
    number: float | int
    try:
        if spec.type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value.strip() if isinstance(value, str) else value)
        else:
            number = float(value)
    except (ValueError, OverflowError):
        raise RegistryError(
            f"{key} is not {'a whole number' if spec.type is int else 'a number'}: "
            f"{str(value)[:40]!r}"
        ) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise RegistryError(f"{key} must be finite")
    low, high = spec.low, spec.high
    too_low = low is not None and (number <= low if spec.low_open else number < low)
    if too_low or (high is not None and number > high):
        lower = f"above {low:g}" if spec.low_open else f"at least {low:g}"
        raise RegistryError(f"{key} {number:g} is out of range ({lower}, at most {high:g})")
    return number


def check_metadata(kind: DeviceKind, meta: Mapping[str, Any]) -> None:
    """What holds between a device's metadata values (its whole metadata after a change):
    a minimum below the design pressure, a reserve level within the tank. Keys that are
    not :data:`METADATA`'s (or not numbers) are not checked."""

    def num(key: str) -> float | None:
        v = meta.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    if kind is WATER:
        low, design = num("min_kpa"), num("design_kpa")
        if low is not None and design is not None and low >= design:
            raise RegistryError(f"min_kpa {low:g} is not below design_kpa {design:g}")
        level, capacity = num("tank_low_m"), num("tank_capacity_m")
        if level is not None and capacity is not None and level > capacity:
            raise RegistryError(f"tank_low_m {level:g} is above tank_capacity_m {capacity:g}")


def check_gbt(
    kind: DeviceKind,
    address: str | None,
    profile: str | None,
    profiles: Collection[str] | None = None,
) -> tuple[str | None, str | None]:
    """A device's GB/T address and profile as stored (None: not given; ``''``: clear):
    the address as 12 lowercase hex digits (upper case accepted, never fewer digits) and
    for a panel only; the profile one of ``profiles`` (None: the built-in ones,
    ``core/gbt_profiles.toml``), and other than ``standard`` only for a panel.
    :class:`RegistryError` with the reason otherwise."""
    if address:
        try:
            address = normalise_address(address)
        except ValueError as err:
            raise RegistryError(str(err)) from None
        if kind is not PANEL:
            raise RegistryError(f"gbt_address is for panel devices, not {kind.value}")
    if profile and profile.strip() != DEFAULT_PROFILE:
        try:
            profile = check_profile_name(profile)
            known = known_profiles() if profiles is None else profiles
        except ValueError as err:  # a bad name, or the operator's profile file (ProfileError)
            raise RegistryError(str(err)) from None
        if profile not in known:
            raise RegistryError(
                f"unknown gbt_profile {profile!r} (known: {', '.join(sorted(known))}; more in"
                " the gateway's profiles file)"
            )
        if kind is not PANEL:
            raise RegistryError(f"gbt_profile is for panel devices, not {kind.value}")
    elif profile:
        profile = DEFAULT_PROFILE
    return address, profile


def parse_kind(value: str) -> DeviceKind:
    """The kind named ``value``; :class:`RegistryError` otherwise."""
    try:
        return DeviceKind(value.strip().lower())
    except ValueError:
        kinds = ", ".join(k.value for k in DeviceKind)
        raise RegistryError(f"unknown kind {value[:40]!r} ({kinds})") from None


def device_row(
    *,
    line: int,
    device_id: str,
    unit_id: str,
    kind: str | DeviceKind,
    vendor: str | None = None,
    model: str | None = None,
    meta: Mapping[str, Any] | None = None,
    gbt_address: str | None = None,
    gbt_profile: str | None = None,
    profiles: Collection[str] | None = None,
) -> DeviceRow:
    """A checked :class:`DeviceRow`: ids, kind, vendor (``''``: unknown), model, every
    metadata value (``None``: remove the key), the GB/T address and profile
    (:func:`check_gbt`, against ``profiles``). :class:`RegistryError` with the first
    problem otherwise."""
    check_id(device_id)
    if device_id in RESERVED_IDS:
        raise RegistryError(
            f"id {device_id!r} is reserved (it is a path of the API: /devices/{device_id})"
        )
    check_id(unit_id, "unit_id")
    k = kind if isinstance(kind, DeviceKind) else parse_kind(kind)
    if vendor:
        check_id(vendor, "vendor")
    if model is not None:
        _text(model, "model", MAX_MODEL)
    values: dict[str, Any] = {}
    clear: set[str] = set()
    for key, value in (meta or {}).items():
        if value is None or value == "":
            if key not in METADATA:
                raise RegistryError(f"unknown metadata key {key[:40]!r}")
            clear.add(key)
        else:
            values[key] = meta_value(key, value, k)
    check_metadata(k, values)
    address, profile = check_gbt(k, gbt_address, gbt_profile, profiles)
    return DeviceRow(
        line, device_id, unit_id, k, vendor, model, values, frozenset(clear), address, profile
    )


def parse_row(
    line: int, cells: Mapping[str, str], profiles: Collection[str] | None = None
) -> DeviceRow:
    """One row (cells by column, stripped) as a :class:`DeviceRow`; :class:`RegistryError`
    with the reason if it is not valid. A metadata cell that is empty in a column for
    another kind is ignored (a file mixing kinds has such cells); an empty GB/T cell means
    no address, the ``standard`` profile."""
    missing = [c for c in REQUIRED if not cells.get(c)]
    if missing:
        raise RegistryError(f"missing {', '.join(missing)}")
    kind = parse_kind(cells["kind"])
    meta = {
        key: cells[key]
        for key in METADATA
        if key in cells and (cells[key] or kind in METADATA[key].kinds)
    }
    return device_row(
        line=line,
        device_id=cells["id"],
        unit_id=cells["unit_id"],
        kind=kind,
        vendor=cells.get("vendor"),
        model=cells.get("model"),
        meta=meta,
        gbt_address=cells.get("gbt_address"),
        gbt_profile=cells.get("gbt_profile"),
        profiles=profiles,
    )


def parse_devices_csv(text: str, *, profiles: Collection[str] | None = None) -> ParsedFile:
    """Every row of a devices CSV file (see the module docstring): valid rows and rejected
    ones (a wrong number of fields, a missing required field, a bad value, an id already on
    an earlier line: only the first row of an id is considered). Blank lines are skipped.
    Raises :class:`ImportFileError` for a file without a usable header, one that is not
    CSV, or one with more than :data:`MAX_ROWS` rows. A ``gbt_profile`` must be one of
    ``profiles`` (None: the built-in ones)."""
    if profiles is None:
        try:
            profiles = known_profiles()
        except ValueError as err:  # the shipped file is broken: no row could be checked
            raise ImportFileError(f"the GB/T profiles cannot be read: {err}") from None
    known = profiles
    rows, rejected, header = read_rows(
        text,
        required=REQUIRED,
        optional=OPTIONAL,
        parse=lambda line, cells: parse_row(line, cells, known),
        invalid=RegistryError,
        max_rows=MAX_ROWS,
        nul_is_binary=True,
    )
    return ParsedFile(rows, rejected, frozenset(header))
