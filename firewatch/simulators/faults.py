"""The fault catalogue, fault resolution (scenario specs → concrete faults) and labels.

Every :class:`~firewatch.simulators.model.Fault` is resolved *before* the run: its device,
its window ``[start, end)`` and every random choice that the behaviour and the label must
agree on (the port, the detectors, the drop fraction, the clock offset …) are fixed here
and stored in ``Fault.params``. Behaviours (``behaviour.py``) only read them, and
:func:`labels_for` copies them into the ground-truth labels. Same specs, devices, rng
state and span give the same faults.

Also here, because behaviours and resolution share them: city local time (UTC+8), the
charging-window test and the panel's detector layout (the malformed-payload generator and
the slow-onset ramps are in ``fault_shapes.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from firewatch.core.domain import DeviceKind, Severity
from firewatch.simulators.fault_shapes import RAMPED, draw_span
from firewatch.simulators.model import Fault, Label, SimDevice

LOCAL_UTC_OFFSET_S = 8 * 3600.0  # the city's local time is UTC+8
WATER, SHED, PANEL = DeviceKind.WATER, DeviceKind.EBIKE_SHED, DeviceKind.PANEL
ANY_KIND = frozenset(DeviceKind)
TELEMETRY_KINDS = frozenset({WATER, SHED})
MALFORMED_VARIANTS = ("truncated", "nan", "wrong_type", "missing_field")
#: Readings the stuck/drift sensor faults can affect, by kind (shed: per port but ambient).
SENSOR_FIELDS: dict[DeviceKind, tuple[str, ...]] = {
    WATER: ("pressure_kpa", "level_m", "room_temp_c"),
    SHED: ("temp_c", "current_a", "ambient_c"),
}


def local_hour(t: float) -> float:
    """Hour of day in city local time (UTC+8), in [0, 24)."""
    return ((t + LOCAL_UTC_OFFSET_S) % 86_400.0) / 3600.0


def allowed_hours(device: SimDevice) -> tuple[float, float]:
    """The shed's charging window ``[from, to)`` in local hours (default 06-23)."""
    raw = device.metadata.get("allowed_hours", (6, 23))
    return float(raw[0]), float(raw[1])


def charging_allowed(hours: tuple[float, float], t: float) -> bool:
    """True if local time at ``t`` lies in the window ``hours`` (which may wrap midnight)."""
    a, b = hours
    h = local_hour(t)
    if a == b:
        return True
    return a <= h < b if a < b else (h >= a or h < b)


@dataclass(frozen=True, slots=True)
class PanelLayout:
    """Detector addressing of a panel: address = loop*1000 + index (index from 1); the
    zone of an index is ``(index-1) // (detectors_per_loop // zones_per_loop)``."""

    loops: int = 2
    detectors_per_loop: int = 16
    zones_per_loop: int = 4

    @classmethod
    def of(cls, device: SimDevice) -> PanelLayout:
        m = device.metadata
        return cls(
            max(1, int(m.get("loops", 2))),
            max(1, int(m.get("detectors_per_loop", 16))),
            max(1, int(m.get("zones_per_loop", 4))),
        )

    def detectors(self) -> list[int]:
        """Every detector address, loop by loop."""
        n = self.detectors_per_loop
        return [loop * 1000 + i for loop in range(1, self.loops + 1) for i in range(1, n + 1)]

    def zone_of(self, addr: int) -> tuple[int, int]:
        """(loop, zone) of a detector address."""
        size = max(1, self.detectors_per_loop // self.zones_per_loop)
        return addr // 1000, (addr % 1000 - 1) // size

    def zone_members(self, loop: int, zone: int) -> list[int]:
        return [a for a in self.detectors() if self.zone_of(a) == (loop, zone)]


@dataclass(frozen=True, slots=True)
class FaultType:
    """One kind of injectable fault. ``params`` holds the defaults; a ``None`` default is
    chosen at random when the fault is resolved."""

    name: str
    kinds: frozenset[DeviceKind]
    severity: Severity
    duration_s: float
    description: str
    params: Mapping[str, Any] = field(default_factory=dict)
    roles: frozenset[str] | None = None  # water roles it applies to (None: any)
    prefer_own_connection: bool = False  # random selection prefers devices with a will


_H = 3600.0
FAULT_TYPES: dict[str, FaultType] = {
    ft.name: ft
    for ft in (
        FaultType(
            "pipe_leak",
            frozenset({WATER}),
            Severity.MEDIUM,
            5 * _H,
            "slow pressure decay below normal; the jockey pump cycles much more often",
            {"rate_kpa_per_h": 30.0, "jockey_factor": 4.0},
        ),
        FaultType(
            "pipe_burst",
            frozenset({WATER}),
            Severity.CRITICAL,
            _H,
            "pressure drops 60-80 % within one interval; jockey and main pump run",
            {"drop_frac": None},
        ),
        FaultType(
            "pump_failure",
            frozenset({WATER}),
            Severity.HIGH,
            3 * _H,
            "pumps never start when called; pressure sags below the jockey threshold",
            {"floor_frac": 0.5},
        ),
        FaultType(
            "closed_valve",
            frozenset({WATER}),
            Severity.HIGH,
            2 * _H,
            "pressure at the point falls to 0-20 kPa and stays flat",
            {"residual_kpa": None},
        ),
        FaultType(
            "tank_draining",
            frozenset({WATER}),
            Severity.HIGH,
            6 * _H,
            "tank level falls steadily; the fill valve does not refill",
            {"rate_m_per_h": 0.4},
            roles=frozenset({"tank"}),
        ),
        FaultType(
            "stuck_sensor",
            TELEMETRY_KINDS,
            Severity.MEDIUM,
            4 * _H,
            "a reading frozen at its last value (exactly repeated)",
            {"field": None, "port": None},
        ),
        FaultType(
            "sensor_drift",
            TELEMETRY_KINDS,
            Severity.LOW,
            12 * _H,
            "a reading drifts linearly away from the truth (% of the reading per hour)",
            {"field": None, "port": None, "pct_per_h": None},
        ),
        FaultType(
            "dropout",
            ANY_KIND,
            Severity.MEDIUM,
            2 * _H,
            "device silent: no messages and no will, then resumes",
        ),
        FaultType(
            "thermal_runaway_precursor",
            frozenset({SHED}),
            Severity.CRITICAL,
            1.5 * _H,
            "a charging port warms slowly above its peers, then runs away (>1 °C/s) at the end",
            {"port": None, "slow_c_per_min": None, "fast_c_per_s": 1.5, "fast_s": 180.0},
        ),
        FaultType(
            "over_current",
            frozenset({SHED}),
            Severity.HIGH,
            _H,
            "one port draws 1.5-2x its rated current",
            {"port": None, "factor": None},
        ),
        FaultType(
            "charging_outside_hours",
            frozenset({SHED}),
            Severity.LOW,
            2 * _H,
            "a port charges during forbidden local hours",
            {"port": None},
        ),
        FaultType(
            "shed_smoke",
            frozenset({SHED}),
            Severity.CRITICAL,
            20 * 60.0,
            "smoke detected; ambient temperature rising a little",
            {"rise_c_per_min": 0.15, "max_rise_c": 6.0},
        ),
        FaultType(
            "real_fire_cascade",
            frozenset({PANEL}),
            Severity.CRITICAL,
            30 * 60.0,
            "detectors of one zone go into fire one after another; system fire bit set",
            {"loop": None, "zone": None, "count": 4},
        ),
        FaultType(
            "false_alarm_storm",
            frozenset({PANEL}),
            Severity.MEDIUM,
            6 * _H,
            "one detector alarms and is reset again and again",
            {"detector": None, "count": 8},
        ),
        FaultType(
            "offline_with_will",
            ANY_KIND,
            Severity.MEDIUM,
            2 * _H,
            "connection lost abruptly (broker publishes the will), reconnects at the end",
            prefer_own_connection=True,
        ),
        FaultType(
            "offline_without_will",
            ANY_KIND,
            Severity.MEDIUM,
            3 * _H,
            "device silent without a will, then resumes normally",
        ),
        FaultType(
            "clock_skew",
            ANY_KIND,
            Severity.LOW,
            2 * _H,
            "device clock off by offset_s (beyond +300 s ingest rejects ts_in_future)",
            {"offset_s": None},
        ),
        FaultType(
            "malformed_payload",
            ANY_KIND,
            Severity.LOW,
            _H,
            "a fraction of messages carry broken payloads (cut JSON, NaN, strings, missing)",
            {"fraction": 0.5, "variants": MALFORMED_VARIANTS},
        ),
    )
}


class FaultSpecInput(BaseModel):
    """One fault request. ``device``: a device id, ``"random"`` or ``"random:<kind>"``;
    ``at_s`` (alias ``at``): offset from the span's start, ``None`` = random;
    ``duration_s`` (alias ``duration``): ``None`` = the type's default, or a ``(low, high)``
    range drawn per fault; ``onset_s`` (alias ``onset``): a ramp-in time (or range) for the
    types in :data:`RAMPED`, stored in the fault's params (and so its label's details)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str
    device: str = "random"
    count: int = Field(default=1, ge=1)
    at_s: float | None = Field(default=None, ge=0, validation_alias=AliasChoices("at_s", "at"))
    duration_s: float | tuple[float, float] | None = Field(
        default=None, validation_alias=AliasChoices("duration_s", "duration")
    )
    onset_s: float | tuple[float, float] | None = Field(
        default=None, validation_alias=AliasChoices("onset_s", "onset")
    )
    severity: Severity | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("duration_s", "onset_s")
    @classmethod
    def _positive(cls, v: float | tuple[float, float] | None) -> float | tuple[float, float] | None:
        values = v if isinstance(v, tuple) else () if v is None else (v,)
        if any(x <= 0 for x in values) or (isinstance(v, tuple) and v[0] > v[1]):
            raise ValueError(f"needs a time > 0 or a [low, high] range of them, got {v!r}")
        return v


def _as_input(spec: FaultSpecInput | BaseModel | Mapping[str, Any]) -> FaultSpecInput:
    if isinstance(spec, FaultSpecInput):
        return spec
    data = spec.model_dump() if isinstance(spec, BaseModel) else dict(spec)
    return FaultSpecInput.model_validate(data)


def _applies(ft: FaultType, d: SimDevice) -> bool:
    return d.kind in ft.kinds and (ft.roles is None or d.metadata.get("role") in ft.roles)


def _choose_params(
    ft: FaultType, d: SimDevice, given: Mapping[str, Any], rng: random.Random, dur: float
) -> dict[str, Any]:
    """The type's defaults, overridden by ``given``, with every ``None`` chosen from rng."""
    unknown = set(given) - set(ft.params)
    if unknown:
        raise ValueError(
            f"fault {ft.name}: unknown params {sorted(unknown)}, known: "
            f"{sorted(ft.params) or 'none'}"
        )
    p: dict[str, Any] = {**ft.params, **given}
    for key, value in given.items():  # { min = a, max = b }: drawn per fault
        if isinstance(value, Mapping) and set(value) == {"min", "max"}:
            p[key] = round(rng.uniform(float(value["min"]), float(value["max"])), 3)
    if "field" in p:
        p["field"] = p["field"] or ("temp_c" if d.kind is SHED else "pressure_kpa")
        if p["field"] not in SENSOR_FIELDS[d.kind] or (
            p["field"] == "level_m" and d.metadata.get("role") != "tank"
        ):
            raise ValueError(
                f"fault {ft.name}: field {p['field']!r} not in "
                f"{SENSOR_FIELDS[d.kind]} for {d.kind.value}"
            )
        if p["field"] == "ambient_c":
            p["port"] = None  # the shed's own sensor
    ports = int(d.metadata.get("ports", 8)) if d.kind is SHED else 0
    if "port" in p:
        if d.kind is SHED and p["port"] is None and p.get("field") != "ambient_c":
            p["port"] = rng.randint(1, ports)
        if d.kind is SHED and p["port"] is not None and not 1 <= int(p["port"]) <= ports:
            raise ValueError(f"fault {ft.name}: port {p['port']} not in 1..{ports} on {d.id}")
        if d.kind is not SHED:
            del p["port"]
    fill: dict[str, Callable[[], Any]] = {
        "drop_frac": lambda: round(rng.uniform(0.6, 0.8), 3),
        "residual_kpa": lambda: round(rng.uniform(2.0, 20.0), 1),
        "pct_per_h": lambda: rng.choice([2.0, -2.0]),
        "slow_c_per_min": lambda: round(rng.uniform(0.3, 0.5), 3),
        "factor": lambda: round(rng.uniform(1.5, 2.0), 3),
        "offset_s": lambda: rng.choice([600.0, -900.0]),
    }
    for key, draw in fill.items():
        if key in p and p[key] is None:
            p[key] = draw()
    if d.kind is PANEL and ft.name == "real_fire_cascade":
        _cascade(p, PanelLayout.of(d), rng, dur)
    if d.kind is PANEL and ft.name == "false_alarm_storm":
        _storm(p, PanelLayout.of(d), rng, dur)
    return p


def _cascade(p: dict[str, Any], lay: PanelLayout, rng: random.Random, dur: float) -> None:
    loop = int(p["loop"]) if p["loop"] is not None else rng.randint(1, lay.loops)
    zones = sorted({lay.zone_of(a)[1] for a in lay.detectors() if a // 1000 == loop})
    zone = int(p["zone"]) if p["zone"] is not None else rng.choice(zones)
    members = lay.zone_members(loop, zone)
    if not members:
        raise ValueError(f"real_fire_cascade: loop {loop} zone {zone} has no detectors")
    rng.shuffle(members)
    dets = members[: max(1, min(int(p["count"]), len(members)))]
    gap = min(90.0, 0.8 * dur / len(dets))  # every alarm well inside the window
    offsets = [round(rng.uniform(0.0, 0.2) * gap + i * gap, 1) for i in range(len(dets))]
    p.update(loop=loop, zone=zone, detectors=dets, offsets_s=offsets)


def _storm(p: dict[str, Any], lay: PanelLayout, rng: random.Random, dur: float) -> None:
    det = int(p["detector"]) if p["detector"] is not None else rng.choice(lay.detectors())
    count = max(1, int(p["count"]))
    slot = dur / count
    alarms = []
    for i in range(count):
        on = i * slot + rng.uniform(0.0, 0.4) * slot
        alarms.append([round(on, 1), round(on + min(rng.uniform(60.0, 240.0), 0.5 * slot), 1)])
    p.update(detector=det, count=count, zone=list(lay.zone_of(det)), alarms_s=alarms)


def _random_start(
    ft: FaultType, d: SimDevice, rng: random.Random, start: float, end: float, dur: float
) -> float:
    """A start in [start, end - dur]; shed faults prefer charging-relevant hours."""
    lo, hi = start, max(start, end - dur)
    want: Callable[[float], bool] = lambda _t: True  # noqa: E731
    if d.kind is SHED and ft.name == "charging_outside_hours":
        want = lambda t: not charging_allowed(allowed_hours(d), t)  # noqa: E731
    elif d.kind is SHED and ft.name in ("thermal_runaway_precursor", "over_current"):
        hours = allowed_hours(d)
        want = lambda t: charging_allowed(hours, t) and charging_allowed(hours, t + dur)  # noqa: E731
    t = lo
    for _ in range(500):
        t = rng.uniform(lo, hi) if hi > lo else lo
        if want(t):
            break
    return t


def resolve_faults(
    specs: Sequence[FaultSpecInput | BaseModel | Mapping[str, Any]],
    devices: Sequence[SimDevice],
    rng: random.Random,
    start: float,
    end: float,
) -> list[Fault]:
    """Concrete faults for ``specs`` over the span ``[start, end)``, in spec order.

    Specs may be :class:`FaultSpecInput`, any pydantic model with the same fields (the
    scenario's ``FaultSpec``: ``at``/``duration``) or mappings. Random devices are drawn
    from ``rng`` among devices the type applies to, never giving one device two overlapping
    faults; ``offline_with_will`` prefers own-connection devices. A fault running past
    ``end`` is cut at ``end``. Raises ``ValueError`` for an unknown type or device, a kind
    mismatch, a start outside the span, unknown params, or no free device.
    """
    span = end - start
    if span <= 0:
        raise ValueError(f"empty span: start {start} is not before end {end}")
    by_id = {d.id: d for d in devices}
    busy: dict[str, list[tuple[float, float]]] = {d.id: [] for d in devices}
    out: list[Fault] = []
    for raw in specs:
        spec = _as_input(raw)
        ft = FAULT_TYPES.get(spec.type)
        if ft is None:
            raise ValueError(f"unknown fault type {spec.type!r}; known: {sorted(FAULT_TYPES)}")
        ranged = isinstance(spec.duration_s, tuple)  # then drawn per fault below
        dur = (
            span
            if isinstance(spec.duration_s, tuple)
            else min(spec.duration_s or ft.duration_s, span)
        )
        if spec.onset_s is not None and ft.name not in RAMPED:
            raise ValueError(f"fault {ft.name}: no onset (only {sorted(RAMPED)} ramp in)")
        if spec.at_s is not None and spec.at_s >= span:
            raise ValueError(
                f"fault {spec.type}: at {spec.at_s:g}s is outside the span (0..{span:g}s)"
            )
        pool = _pool(ft, spec.device, devices, by_id)
        for _ in range(spec.count):
            if ranged:
                drawn = draw_span(spec.duration_s, rng)
                dur = min(max(1.0, drawn or ft.duration_s), span)
            for _attempt in range(200):  # random picks avoid overlapping faults
                d = pool if isinstance(pool, SimDevice) else rng.choice(pool)
                at = spec.at_s
                s = start + at if at is not None else _random_start(ft, d, rng, start, end, dur)
                e = min(s + dur, end)
                if isinstance(pool, SimDevice) or all(e <= a or s >= b for a, b in busy[d.id]):
                    break
            else:
                msg = f"no device free for {spec.device!r} without overlapping another fault"
                raise ValueError(f"fault {ft.name}: {msg}")
            busy[d.id].append((s, e))
            params = _choose_params(ft, d, spec.params, rng, e - s)
            if spec.onset_s is not None:
                params["onset_s"] = round(min(draw_span(spec.onset_s, rng) or 0.0, e - s), 1)
            out.append(Fault(ft.name, d.id, s, e, spec.severity or ft.severity, params))
    return out


def _pool(
    ft: FaultType, selector: str, devices: Sequence[SimDevice], by_id: Mapping[str, SimDevice]
) -> list[SimDevice] | SimDevice:
    """The candidate devices of a random selector, or the one named device."""
    if selector == "random" or selector.startswith("random:"):
        kind_name = selector.partition(":")[2]
        if kind_name and kind_name not in {k.value for k in DeviceKind}:
            raise ValueError(
                f"fault {ft.name}: unknown kind in {selector!r}; "
                f"kinds: {[k.value for k in DeviceKind]}"
            )
        pool = [d for d in devices if _applies(ft, d) and (not kind_name or d.kind == kind_name)]
        if not pool:
            raise ValueError(
                f"fault {ft.name}: no device matches {selector!r} "
                f"(applies to {sorted(k.value for k in ft.kinds)})"
            )
        if ft.prefer_own_connection and any(d.own_connection for d in pool):
            pool = [d for d in pool if d.own_connection]
        return pool
    d = by_id.get(selector)
    if d is None:
        raise ValueError(f"fault {ft.name}: unknown device {selector!r}")
    if not _applies(ft, d):
        roles = f" with role in {sorted(ft.roles)}" if ft.roles else ""
        raise ValueError(
            f"fault {ft.name} does not apply to {d.id} ({d.kind.value}); it needs "
            f"{sorted(k.value for k in ft.kinds)}{roles}"
        )
    return d


def labels_for(faults: Sequence[Fault], devices: Sequence[SimDevice]) -> list[Label]:
    """One ground-truth label per fault; ``details`` = the resolved params (port, detectors,
    zone, offsets …) plus the type's description."""
    by_id = {d.id: d for d in devices}
    labels: list[Label] = []
    for f in faults:
        d = by_id[f.device_id]
        details = {**f.params, "description": FAULT_TYPES[f.type].description}
        if d.kind is WATER:
            details.setdefault("role", str(d.metadata.get("role", "pressure")))
        labels.append(Label(d.id, d.unit_id, d.kind, f.type, f.start, f.end, f.severity, details))
    return labels
