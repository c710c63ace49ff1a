"""What the GB/T 26875.3 gateway reads from the registry and the duty-check queue
(``storage/gateway.py``; issue 17), and the registry's rules for a panel's GB/T address and
profile name (pure: no database).

The address is the 48-bit source address a user information transmission device (UITD)
puts in every frame. The registry stores it as **exactly 12 hex digits**, most significant
first, lower case (``firewatch/core/gbt_frame.py``'s ``format_address``); input may be in
upper case, but never shorter: ``a1b2`` could be a typo for any of many addresses, so it is
refused rather than padded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from firewatch.core.gbt_profiles import PROFILE_PATTERN, load_profiles
from firewatch.core.settings import Settings

__all__ = [
    "ADDRESS_PATTERN",
    "DEFAULT_PROFILE",
    "DUTY_OUTCOMES",
    "PROFILE_PATTERN",
    "DutyOutcome",
    "GatewayDevice",
    "PendingDutyCheck",
    "check_profile_name",
    "known_profiles",
    "normalise_address",
    "profiles_file_of",
]

#: The stored form (migration 0019's CHECK).
ADDRESS_PATTERN = r"^[0-9a-f]{12}$"
#: A profile's name (migration 0019's CHECK; ``core/gbt_profiles.py`` names its profiles so).
DEFAULT_PROFILE = "standard"

_ADDRESS_IN = re.compile(r"[0-9A-Fa-f]{12}")
_PROFILE = re.compile(PROFILE_PATTERN)

DutyOutcome = Literal["answered", "late", "missed", "not_connected"]
#: How a duty check ended (migration 0019's CHECK): answered in time, answered late, not
#: answered in time (missed), or never sent because the panel had no connection.
DUTY_OUTCOMES: tuple[str, ...] = get_args(DutyOutcome)


@dataclass(frozen=True, slots=True)
class GatewayDevice:
    """The registered panel behind one GB/T address: its id and unit (the topic it is
    published under), the profile its frames are decoded with, and whether it is out of
    service (its frames are no longer taken)."""

    device_id: str
    unit_id: str
    profile: str
    decommissioned: bool


class PendingDutyCheck(NamedTuple):
    """A duty check asked for and not sent yet (oldest first in
    ``storage/gateway.pending_duty_checks``)."""

    id: int
    device_id: str
    requested_by: str
    requested_at: datetime


def normalise_address(value: str, what: str = "gbt_address") -> str:
    """``value`` (surrounding spaces ignored, any case) as the stored address: 12 lowercase
    hex digits. ValueError with a message a person can act on otherwise."""
    text = value.strip()
    if not _ADDRESS_IN.fullmatch(text):
        shown = text[:40]
        raise ValueError(
            f"{what} {shown!r} is not 12 hex digits: give the UITD's whole 48-bit address,"
            " most significant digit first, e.g. 00a1b2c3d4e5"
        )
    return text.lower()


def check_profile_name(value: str, what: str = "gbt_profile") -> str:
    """``value`` (stripped) if it has a profile name's form (:data:`PROFILE_PATTERN`);
    ValueError otherwise. Whether such a profile exists is the caller's check."""
    text = value.strip()
    if not _PROFILE.fullmatch(text):
        raise ValueError(
            f"{what} {text[:40]!r} is not a profile name (1-32 of a-z, 0-9, '_' and '-',"
            f" e.g. {DEFAULT_PROFILE!r})"
        )
    return text


def known_profiles(profiles_file: Path | str | None = None) -> frozenset[str]:
    """The names of the profiles a device may name: the built-in ones and those of the
    operator's ``profiles_file`` (the gateway's ``gateway_profiles_file``).
    :class:`~firewatch.core.gbt_profiles.ProfileError` (a ValueError) for a bad file."""
    return frozenset(load_profiles(profiles_file))


def profiles_file_of(settings: Settings) -> Path | str | None:
    """The operator's profile file the gateway reads (``gateway_profiles_file``), so that
    the registry accepts the same names."""
    return settings.gateway_profiles_file
