"""Scenario files (TOML): the city, its device mix, the time span, speed-up and faults.

Example (``firewatch/simulators/scenarios/standard.toml`` has a full one)::

    name = "leaks-and-fires"
    seed = 7
    start = "2026-11-20T00:00:00+08:00"   # or "auto": live, ends at the wall clock's now
    duration = "2d"                        # "90s", "30m", "6h", "2d" or seconds
    speedup = 1440                         # simulated seconds per real second (MQTT mode)

    [city]
    units = 40                             # or seed_file = "builtin:xuchang"

    [mix]
    water_points = 1
    tank_fraction = 0.5

    [[faults]]
    type = "pipe_leak"
    device = "random:water"
    at = "6h"
    duration = "4h"
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from firewatch.core.domain import DeviceKind

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"30m"``, ``"6h"``, ``"2d"``.

    Raises ``ValueError`` for anything else.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return float(m[1]) * _UNIT_S[m[2]]
    raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '90s', '30m', '6h', '2d')")


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CitySpec(_Strict):
    """A generated city, or an existing seed file (``builtin:xuchang`` is bundled)."""

    seed_file: str | None = None
    units: int = Field(default=20, ge=1, le=200_000)
    streets_per_district: int = Field(default=3, ge=1, le=100)


class MixSpec(_Strict):
    """Devices per unit. Fractions are the share of units that have the device."""

    panels: int = Field(default=1, ge=0, le=8)
    loops: int = Field(default=2, ge=1, le=16)
    detectors_per_loop: int = Field(default=16, ge=1, le=256)
    zones_per_loop: int = Field(default=4, ge=1, le=64)
    water_points: int = Field(default=1, ge=0, le=16)
    tank_fraction: float = Field(default=0.5, ge=0, le=1)
    pump_room_fraction: float = Field(default=0.3, ge=0, le=1)
    shed_fraction: float = Field(default=0.6, ge=0, le=1)
    ports_per_shed: int = Field(default=12, ge=1, le=256)
    port_rating_a: float = Field(default=3.0, gt=0, le=50)


class IntervalsSpec(_Strict):
    """Reporting intervals in simulated time."""

    water: Duration = 60.0
    shed: Duration = 60.0
    panel_status: Duration = 300.0
    status: Duration = 3600.0


class ConnectionSpec(_Strict):
    """How simulated devices share MQTT connections (gateway style)."""

    devices_per_gateway: int = Field(default=200, ge=1, le=10_000)
    own_connection_kinds: list[DeviceKind] = Field(default_factory=lambda: [DeviceKind.PANEL])
    max_own_connections: int = Field(
        default=200, ge=0, description="Devices beyond this share gateways (threads are finite)."
    )


class FaultSpec(_Strict):
    """One fault to inject (see ``firewatch.simulators.faults.FAULT_TYPES``)."""

    type: str
    device: str = "random"  # a device id, "random" or "random:<kind>"
    count: int = Field(default=1, ge=1, le=10_000)
    at: Duration | None = None  # offset from the start; None: random within the span
    duration: Duration | None = None  # None: the fault type's default
    severity: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class Scenario(_Strict):
    """A complete, validated scenario."""

    name: str = "unnamed"
    description: str = ""
    seed: int = 1
    start: datetime | Literal["auto"] = "auto"
    duration: Duration | None = None  # None: run until stopped (live mode only)
    speedup: float = Field(default=1.0, gt=0, le=1_000_000)
    city: CitySpec = Field(default_factory=CitySpec)
    mix: MixSpec = Field(default_factory=MixSpec)
    intervals: IntervalsSpec = Field(default_factory=IntervalsSpec)
    connections: ConnectionSpec = Field(default_factory=ConnectionSpec)
    faults: list[FaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _aware_start(self) -> Scenario:
        if isinstance(self.start, datetime) and self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-11-20T00:00:00+08:00")
        return self


def load_scenario(path: Path | str) -> Scenario:
    """Read a scenario file; ``builtin:NAME`` names one in ``simulators/scenarios/``.

    Raises ``FileNotFoundError``, ``tomllib.TOMLDecodeError`` or ``pydantic.ValidationError``.
    """
    p = scenario_path(path)
    scenario = Scenario.model_validate(tomllib.loads(p.read_text("utf-8")))
    sf = scenario.city.seed_file
    if sf and not sf.startswith("builtin:") and not Path(sf).is_absolute():
        scenario.city.seed_file = str((p.parent / sf).resolve())
    return scenario


def scenario_path(path: Path | str) -> Path:
    text = str(path)
    if text.startswith("builtin:"):
        return SCENARIO_DIR / f"{text.removeprefix('builtin:')}.toml"
    return Path(path)
