"""Units from a CSV file: parse and validate each row (pure: no database).

The columns (a header row, UTF-8, comma-separated; order free; names case-insensitive):

=================== ========= ===========================================================
column              required  meaning
=================== ========= ===========================================================
id                  yes       the unit's id, ``[A-Za-z0-9_.-]{1,64}`` (it is in topics)
name                yes       the unit's name (at most 200 characters)
street              yes       id of the street (a ``regions`` row of level ``street``)
category            yes       supervision class: ``high_risk``, ``key`` or ``ordinary``
type                yes       what the unit is: ``hotel``, ``school`` … (``[a-z][a-z0-9_]*``)
building_class      yes       one of :data:`BUILDING_CLASSES` (sets the water minimum)
address             no        at most 500 characters
latitude, longitude no        WGS-84 decimal degrees, both or neither
responsible_name,   no        the unit's fire-safety responsible person and phone
responsible_phone
maintenance_name,   no        the maintenance contact and phone
maintenance_phone
=================== ========= ===========================================================

The registry stores the supervision class in ``units.supervision``, where an ordinary unit
is still called ``general`` (docs/domain.md, open question 9): ``ordinary`` maps to
``general`` (and ``general`` is accepted as the same class). The unit type goes to
``units.category``; contacts to ``units.contacts`` as ``{"responsible": {"name", "phone"}}``
(the key alerting's notifications read). An optional column present in the header is
managed by the import (an empty cell clears the value); one absent leaves the stored value
alone.

A row is either a :class:`UnitRow` or a :class:`Rejected` with the reason; problems with
the file itself (encoding, header) raise :class:`ImportFileError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

from firewatch.core.contract import ID_PATTERN
from firewatch.core.csv_import import Rejected, limited_text, read_rows
from firewatch.core.domain import MIN_STATIC_PRESSURE_KPA

__all__ = [
    "BUILDING_CLASSES",
    "CATEGORY_OF_SUPERVISION",
    "SUPERVISION_OF_CATEGORY",
    "Contact",
    "ParsedFile",
    "UnitRow",
    "parse_row",
    "parse_units_csv",
]

#: Supervision class as written in the file -> as stored in ``units.supervision``.
SUPERVISION_OF_CATEGORY = {
    "high_risk": "high_risk",
    "key": "key",
    "ordinary": "general",
    "general": "general",  # the registry's name of ordinary, accepted as the same class
}
#: ``units.supervision`` -> the class as the import and the API name it.
CATEGORY_OF_SUPERVISION = {"high_risk": "high_risk", "key": "key", "general": "ordinary"}
#: Building classes a unit may have: the rows of the minimum-pressure table, except
#: ``sprinkler``, which is a kind of system, not of building (docs/domain.md, question 11).
BUILDING_CLASSES = tuple(sorted(k for k in MIN_STATIC_PRESSURE_KPA if k != "sprinkler"))

REQUIRED = ("id", "name", "street", "category", "type", "building_class")
OPTIONAL = (
    "address",
    "latitude",
    "longitude",
    "responsible_name",
    "responsible_phone",
    "maintenance_name",
    "maintenance_phone",
)
#: Optional columns that only come in pairs.
PAIRS = (
    ("latitude", "longitude"),
    ("responsible_name", "responsible_phone"),
    ("maintenance_name", "maintenance_phone"),
)
MAX_NAME = 200
MAX_ADDRESS = 500
_ID = re.compile(ID_PATTERN)
_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^(0[12]\d|0[3-9]\d{2})(\d{7,8})$")


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str


@dataclass(frozen=True)
class UnitRow:
    """A valid row, in the registry's terms (``supervision`` as stored, ``category`` the
    unit type). ``line``: its line in the file (the header is line 1)."""

    line: int
    id: str
    name: str
    street: str
    supervision: str
    category: str
    building_class: str
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    responsible: Contact | None = None
    maintenance: Contact | None = None


@dataclass(frozen=True)
class ParsedFile:
    """A parsed file: valid rows, rejected rows, and the columns the header names."""

    rows: list[UnitRow]
    rejected: list[Rejected]
    columns: frozenset[str]


def normalize_phone(raw: str) -> str:
    """A Chinese phone number in one form: a mobile as its 11 digits (``+86`` / ``0086``
    dropped), a landline as ``area-local`` (``0374-1234567``; area codes ``01x``/``02x``
    have three digits, the others four). Spaces, hyphens and brackets in ``raw`` are
    ignored. ValueError for anything else."""
    digits = re.sub(r"[\s\-()]", "", raw)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if _MOBILE.match(digits):
        return digits
    m = _LANDLINE.match(digits)
    if m:
        return f"{m[1]}-{m[2]}"
    raise ValueError(
        f"not a phone number: {raw!r} (a mobile 1xxxxxxxxxx or a landline 0xxx-xxxxxxx)"
    )


def _coordinate(raw: str, what: str, bound: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{what} is not a number: {raw!r}") from None
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise ValueError(f"{what} {raw} is outside -{bound:g}..{bound:g}")
    return value


def _contact(cells: dict[str, str], role: str) -> Contact | None:
    name, phone = cells.get(f"{role}_name", ""), cells.get(f"{role}_phone", "")
    if not name and not phone:
        return None
    if not name:
        raise ValueError(f"{role}_phone without {role}_name")
    if not phone:
        raise ValueError(f"{role}_name without {role}_phone")
    return Contact(limited_text(name, f"{role}_name", MAX_NAME), normalize_phone(phone))


def parse_row(line: int, cells: dict[str, str], streets: Collection[str]) -> UnitRow:
    """One row (cells by column, stripped) as a :class:`UnitRow`; ValueError with the
    reason if it is not valid. ``streets``: the street ids that exist."""
    missing = [c for c in REQUIRED if not cells.get(c)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    uid = cells["id"]
    if not _ID.match(uid):
        raise ValueError(f"id {uid!r} is not [A-Za-z0-9_.-]{{1,64}}")
    street = cells["street"]
    if street not in streets:
        raise ValueError(f"unknown street {street!r}")
    category = cells["category"].lower()
    if category not in SUPERVISION_OF_CATEGORY:
        raise ValueError(f"unknown category {cells['category']!r} (high_risk, key or ordinary)")
    unit_type = cells["type"]
    if not _TYPE.match(unit_type):
        raise ValueError(f"type {unit_type!r} is not a lowercase name like hotel or school")
    bclass = cells["building_class"]
    if bclass not in BUILDING_CLASSES:
        raise ValueError(f"unknown building_class {bclass!r} ({', '.join(BUILDING_CLASSES)})")
    lat_raw, lon_raw = cells.get("latitude", ""), cells.get("longitude", "")
    lat = lon = None
    if lat_raw or lon_raw:
        if not (lat_raw and lon_raw):
            raise ValueError("latitude and longitude must both be given, or neither")
        lat = _coordinate(lat_raw, "latitude", 90.0)
        lon = _coordinate(lon_raw, "longitude", 180.0)
        if lat == 0.0 and lon == 0.0:
            raise ValueError("coordinates 0, 0 are a placeholder, not a location")
    return UnitRow(
        line=line,
        id=uid,
        name=limited_text(cells["name"], "name", MAX_NAME),
        street=street,
        supervision=SUPERVISION_OF_CATEGORY[category],
        category=unit_type,
        building_class=bclass,
        address=limited_text(cells.get("address", ""), "address", MAX_ADDRESS),
        latitude=lat,
        longitude=lon,
        responsible=_contact(cells, "responsible"),
        maintenance=_contact(cells, "maintenance"),
    )


def parse_units_csv(text: str, streets: Collection[str]) -> ParsedFile:
    """Every row of a units CSV file (see the module docstring): valid rows and rejected
    ones (a wrong number of fields, a missing required field, a bad value, an unknown
    street, an id already on an earlier line: only the first row of an id is considered,
    and imported if valid). Blank lines are skipped.
    Raises :class:`ImportFileError` for a file without a usable header."""
    rows, rejected, header = read_rows(
        text,
        required=REQUIRED,
        optional=OPTIONAL,
        pairs=PAIRS,
        parse=lambda line, cells: parse_row(line, cells, streets),
        invalid=ValueError,
    )
    return ParsedFile(rows, rejected, frozenset(header))
