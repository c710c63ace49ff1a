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
    duration = ["3h", "8h"]                # a range: drawn per fault
    onset = "2h"                           # ramps in over two hours (label: ramp's start)
    params = { rate_kpa_per_h = { min = 5.0, max = 40.0 } }

    [realism.noise]                        # optional; absent: streams exactly as before
    student_t_df = 3.0                     # (``hard-*.toml`` use every part of it)
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

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
#: ``[low, high]``: a value drawn uniformly per device (or per fault) from this range.
Span = tuple[float, float]
DurationSpan = tuple[Duration, Duration]


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
    #: Share of the panels that are legacy GB/T 26875.3 devices, with ``firewatch simulate
    #: --gbt HOST:PORT``: they go to that gateway over TCP (``gbt_sink.py``), with the vendor
    #: profile ``gbt_profile``. Without ``--gbt`` nothing changes.
    gbt_panels: float = Field(default=0.0, ge=0.0, le=1.0)
    gbt_profile: str = "standard"


class FaultSpec(_Strict):
    """One fault to inject (see ``firewatch.simulators.faults.FAULT_TYPES``).

    ``duration`` and ``onset`` may be ``[low, high]`` ranges and a numeric param may be
    ``{ min = a, max = b }``: drawn per fault when it is resolved. ``onset``: the fault
    ramps in linearly over that time (only the types in ``faults.RAMPED``); its label still
    starts where the ramp begins.
    """

    type: str
    device: str = "random"  # a device id, "random" or "random:<kind>"
    count: int = Field(default=1, ge=1, le=10_000)
    at: Duration | None = None  # offset from the start; None: random within the span
    duration: Duration | DurationSpan | None = None  # None: the fault type's default
    onset: Duration | DurationSpan | None = None  # None: the fault starts at full strength
    severity: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


def _ordered(span: tuple[float, float]) -> tuple[float, float]:
    if span[0] > span[1]:
        raise ValueError(f"range {list(span)} is not [low, high]")
    return span


OrderedSpan = Annotated[Span, AfterValidator(_ordered)]
OrderedDurations = Annotated[DurationSpan, AfterValidator(_ordered)]


class NoiseSpec(_Strict):
    """Sensor noise as real sensors make it. ``student_t_df``: pressure and port
    temperature noise Student-t with this many degrees of freedom (same variance as the
    Gaussian it replaces, heavier tails; ``None`` keeps it Gaussian). ``glitch_rate``: share
    of readings that are a single-sample outlier — off by a fraction drawn from
    ``glitch_size``, or a 0 read. ``*_resolution``: the sensor's quantisation step (0: the
    stream's usual 0.1)."""

    student_t_df: float | None = Field(default=None, gt=2.0, le=1000.0)
    glitch_rate: float = Field(default=0.0, ge=0.0, le=0.2)
    glitch_size: OrderedSpan = (0.2, 0.6)
    pressure_resolution_kpa: float = Field(default=0.0, ge=0.0, le=100.0)
    temp_resolution_c: float = Field(default=0.0, ge=0.0, le=5.0)


class LossSpec(_Strict):
    """Telemetry lost on the way (the device sent it: its ``seq`` advances), not a device
    fault: independent drops at ``drop_rate`` and loss bursts (Poisson, ``bursts_per_day``
    per device) lasting a time drawn from ``burst_duration``."""

    drop_rate: float = Field(default=0.0, ge=0.0, le=0.5)
    bursts_per_day: float = Field(default=0.0, ge=0.0, le=48.0)
    burst_duration: OrderedDurations = (120.0, 1800.0)


MaintenanceActivity = Literal["pump_test", "valve_closed", "pressure_off_nominal"]


def _all_activities() -> list[MaintenanceActivity]:
    return ["pump_test", "valve_closed", "pressure_off_nominal"]


class MaintenanceSpec(_Strict):
    """Planned maintenance of fire-water points, labelled as maintenance (not faults):
    ``per_device_per_week`` windows per water device (Poisson), starting in local working
    ``hours``, lasting a time from ``duration``, each one of ``activities``: the pumps run
    for a test (pressure up, pump on), a valve closed for work (pressure near 0), or the
    system held off its set point (``off_nominal_frac`` of it)."""

    per_device_per_week: float = Field(default=0.0, ge=0.0, le=200.0)
    duration: OrderedDurations = (1800.0, 4 * 3600.0)
    hours: OrderedSpan = (8.0, 17.0)
    activities: list[MaintenanceActivity] = Field(default_factory=_all_activities, min_length=1)
    off_nominal_frac: OrderedSpan = (0.75, 0.9)


class SeasonalSpec(_Strict):
    """Demand that is not the same every day: at weekends (local Saturday, Sunday) water
    demand is scaled by ``weekend_water`` with its peaks ``weekend_shift_h`` later, and bike
    arrivals by ``weekend_charging``; daily demand changes by ``demand_trend_per_day``
    (a fraction per day, from the simulation's start; never below 20 %)."""

    weekend_water: float = Field(default=1.0, ge=0.0, le=5.0)
    weekend_shift_h: float = Field(default=0.0, ge=-6.0, le=6.0)
    weekend_charging: float = Field(default=1.0, ge=0.0, le=5.0)
    demand_trend_per_day: float = Field(default=0.0, ge=-0.5, le=0.5)


class DeviceSpreadSpec(_Strict):
    """Devices that are simply different: per device (or port) a value drawn from each range.
    ``interval_factor`` scales the reporting interval; ``set_point_factor`` the jockey
    pump's real set point against the registered ``static_kpa``; the jockey starts at
    ``jockey_start`` and stops at ``jockey_stop`` of it (the sawtooth's amplitude);
    ``port_k`` (°C per A²) and ``port_tau_s`` are each port's thermal constants;
    ``pressure_offset`` (a fraction of the set point) and ``temp_offset_c`` are sensor
    biases drawn in ``[-x, x]``."""

    interval_factor: OrderedSpan = (1.0, 1.0)
    set_point_factor: OrderedSpan = (1.0, 1.0)
    jockey_start: OrderedSpan = (0.95, 0.95)
    jockey_stop: OrderedSpan = (1.01, 1.01)
    port_k: OrderedSpan = (0.8, 1.2)
    port_tau_s: OrderedSpan = (600.0, 1200.0)
    pressure_offset: float = Field(default=0.0, ge=0.0, le=0.5)
    temp_offset_c: float = Field(default=0.0, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _sane(self) -> DeviceSpreadSpec:
        if self.interval_factor[0] <= 0 or self.port_k[0] <= 0 or self.port_tau_s[0] <= 0:
            raise ValueError("interval_factor, port_k and port_tau_s must be > 0")
        if self.jockey_start[1] >= self.jockey_stop[0]:
            raise ValueError("the jockey pump must start below where it stops")
        return self


class RealismSpec(_Strict):
    """The ``[realism]`` table (``firewatch.simulators.realism``). Absent, the streams are
    exactly what they were before it existed; each part defaults to "off"."""

    noise: NoiseSpec = Field(default_factory=NoiseSpec)
    loss: LossSpec = Field(default_factory=LossSpec)
    maintenance: MaintenanceSpec = Field(default_factory=MaintenanceSpec)
    seasonal: SeasonalSpec = Field(default_factory=SeasonalSpec)
    devices: DeviceSpreadSpec = Field(default_factory=DeviceSpreadSpec)


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
    realism: RealismSpec | None = None  # None: the streams as they always were

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
