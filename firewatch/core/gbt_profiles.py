"""Vendor profiles for GB/T 26875.3-2011 devices: the quirks a device may have, chosen per device.

A profile says how one device family deviates from our reading of the standard: the order of the
six bytes of every time field, the checksum algorithm, the zone of the device clock and extra
(vendor) component type codes. The gateway delimits a frame without a profile, looks the device up
by its source address, then decodes with that device's profile.

The built-in profiles live in ``gbt_profiles.toml`` next to this module; an operator may add more
in a TOML file of the same layout::

    [profiles.acme]
    time_order = "YMDhms"        # any order of the letters s m h D M Y (default "smhDMY")
    checksum = "xor8"            # "sum8" (default, the standard's) or "xor8"
    utc_offset_minutes = 480     # the device clock's zone (default China standard time)
    [profiles.acme.component_types]
    201 = "vendor gas detector"  # 128..254 are the standard's user-defined codes
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The shipped profile file (package data: pyproject's ``core/*.toml``).
BUILTIN_PROFILES = Path(__file__).with_name("gbt_profiles.toml")

#: The standard's time order: second, minute, hour, day, month, year-2000.
STANDARD_TIME_ORDER = "smhDMY"
CHECKSUMS = frozenset({"sum8", "xor8"})

#: A profile name (also checked by the registry and by the devices table's CHECK).
PROFILE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_NAME = re.compile(PROFILE_PATTERN)
_KEYS = frozenset({"time_order", "checksum", "utc_offset_minutes", "component_types"})


class ProfileError(ValueError):
    """A profile, or a profile file, that is not valid."""


def _xor8(data: bytes) -> int:
    # Fold the bytes as one big integer, halving its width each round: the XOR of all bytes is
    # preserved because the halves stay byte-aligned, and the work stays in C (about 10 rounds
    # for a 1 KiB ADU) instead of a Python loop per byte.
    width = len(data)
    x = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        x = (x & ((1 << 8 * half) - 1)) ^ (x >> 8 * half)
        width = half
    return x


@dataclass(frozen=True, slots=True)
class Profile:
    """One device family's protocol variant.

    ``time_order`` is a permutation of ``smhDMY`` (s second, m minute, h hour, D day, M month,
    Y year-2000) and applies to every 6-byte time (the frame's time tag and each object's time).
    ``checksum`` is ``sum8`` (low byte of the arithmetic sum of control unit + ADU, the standard)
    or ``xor8`` (XOR of those bytes). ``utc_offset_minutes`` is the zone of the device clock.
    ``component_types`` adds vendor component codes to the standard's table. Raises
    :class:`ProfileError` on a value outside these.
    """

    name: str
    time_order: str = STANDARD_TIME_ORDER
    checksum: str = "sum8"
    utc_offset_minutes: int = 480
    # hash=False: a dict is not hashable, and a profile should still be usable as a key.
    component_types: dict[int, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ProfileError(f"profile name {self.name!r}: want 1-32 of [a-z0-9_-]")
        if sorted(self.time_order) != sorted(STANDARD_TIME_ORDER):
            raise ProfileError(
                f"profile {self.name}: time_order {self.time_order!r} is not an order of smhDMY"
            )
        if self.checksum not in CHECKSUMS:
            raise ProfileError(
                f"profile {self.name}: checksum {self.checksum!r} is not one of sum8, xor8"
            )
        if not -720 <= self.utc_offset_minutes <= 840:
            raise ProfileError(
                f"profile {self.name}: utc_offset_minutes {self.utc_offset_minutes} "
                "is not in -720..840"
            )
        for code, label in self.component_types.items():
            if not 1 <= code <= 255 or not label:
                raise ProfileError(
                    f"profile {self.name}: component type {code} {label!r}: want a code in "
                    "1..255 and a non-empty name"
                )

    def checksum_of(self, data: bytes) -> int:
        """The checksum byte of ``data`` (control unit followed by the ADU) under this profile."""
        if self.checksum == "sum8":
            return sum(data) & 0xFF
        return _xor8(data)

    def component_name(self, code: int) -> str | None:
        """The name of component type ``code``: the vendor's table first, then the standard's."""
        # Imported here, not at module level: domain.py may import the gbt modules (the new
        # panel event types), and a top-level import both ways would be circular.
        from firewatch.core.domain import COMPONENT_TYPES

        return self.component_types.get(code) or COMPONENT_TYPES.get(code)


#: The standard as we read it (same values as ``[profiles.standard]`` in the shipped file).
STANDARD = Profile("standard")


def load_profiles(path: Path | str | None = None) -> dict[str, Profile]:
    """The built-in profiles plus those of the TOML file at ``path`` (if given), by name.

    A user profile may replace a built-in one except ``standard``, whose meaning the registry's
    default relies on. Raises :class:`ProfileError` for a missing or unreadable file, bad TOML,
    an unknown key, a wrong type or a value a :class:`Profile` refuses.
    """
    profiles = _read(BUILTIN_PROFILES)
    if path is not None:
        for name, profile in _read(Path(path)).items():
            if name == STANDARD.name:
                raise ProfileError(
                    f"{path}: profile 'standard' is built in and cannot be redefined"
                )
            profiles[name] = profile
    return profiles


def _read(path: Path) -> dict[str, Profile]:
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError(f"{path}: cannot read it: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProfileError(f"{path}: not valid TOML: {err}") from err
    extra = set(doc) - {"profiles"}
    if extra:
        raise ProfileError(f"{path}: unknown top-level key(s) {sorted(extra)}; want [profiles.*]")
    tables = doc.get("profiles", {})
    if not isinstance(tables, dict):
        raise ProfileError(f"{path}: 'profiles' must be a table of tables")
    return {name: _profile(path, name, table) for name, table in tables.items()}


def _profile(path: Path, name: str, table: Any) -> Profile:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {sorted(unknown)}")
    time_order = table.get("time_order", STANDARD_TIME_ORDER)
    checksum = table.get("checksum", "sum8")
    offset = table.get("utc_offset_minutes", 480)
    raw_types = table.get("component_types", {})
    if not isinstance(time_order, str) or not isinstance(checksum, str):
        raise ProfileError(f"{where}: time_order and checksum must be strings")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise ProfileError(f"{where}: utc_offset_minutes must be an integer")
    if not isinstance(raw_types, dict):
        raise ProfileError(f'{where}: component_types must be a table of code = "name"')
    types: dict[int, str] = {}
    for key, label in raw_types.items():
        # TOML keys are strings; the codes are decimal numbers.
        if not key.isdigit() or not isinstance(label, str):
            raise ProfileError(f'{where}: component_types {key!r} = {label!r}: want 201 = "name"')
        types[int(key)] = label
    try:
        return Profile(name, time_order, checksum, offset, types)
    except ProfileError as err:
        raise ProfileError(f"{path}: {err}") from err
