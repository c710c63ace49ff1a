"""The risk model's versioned configuration: the indicator catalogue, and the TOML file that
gives each indicator its weight and normalisation, the level cut-offs and the forced
conditions (docs/risk.md, "Changing the model").

The catalogue (:data:`INDICATORS`, :data:`FORCED_CONDITIONS`) is code: what each indicator
measures and where its value comes from. The file is policy: how much each counts. A file
must name every indicator and every forced condition of the catalogue and nothing else, so
that a version string always means one complete model; :func:`load_risk_config` refuses
anything else with a message naming the file, the key and the problem.

File layout (the shipped one is ``risk_model_v1.toml`` next to this module)::

    version = "risk-v1"                  # goes into every score (risk_scores.config_version)
    description = "..."                  # optional
    [levels]                             # score cut-offs, 0 < yellow < orange < red <= 100
    red = 50.0
    orange = 30.0
    yellow = 15.0
    [indicators.false_alarms]            # a ramp indicator
    weight = 5                           # points at full scale; all weights sum to 100
    window_days = 90                     # rollup indicators only: the days of history read
    zero_at = 1.0                        # values at or below: 0 points
    full_at = 10.0                       # values at or above: the full weight; linear between
    [indicators.credit]                  # a category indicator
    weight = 5
    values = { good = 0.0, watch = 0.5, blacklisted = 1.0 }   # share of the weight, 0..1
    [forced.blacklisted]
    enabled = true                       # optional, default true
    level = "red"                        # optional, default "red"
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from firewatch.core.risk_levels import Cutoffs, Level

#: The model the package ships; ``FIREWATCH_RISK_MODEL`` points elsewhere.
DEFAULT_RISK_MODEL = Path(__file__).with_name("risk_model_v1.toml")


class RiskConfigError(ValueError):
    """A risk model file that cannot be used; the message names the file and the key."""


class Source(StrEnum):
    """Where an indicator's value comes from."""

    ROLLUPS = "rollups"  # the unit's daily rollups over the indicator's window
    STATE = "state"  # the unit's state at the time of scoring (UnitState)


class Kind(StrEnum):
    """How an indicator's value becomes a share of its weight (0..1)."""

    RAMP = "ramp"  # 0 at or below zero_at, 1 at or above full_at, linear between
    CATEGORY = "category"  # a share per category value


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator of the catalogue: what it measures, in which unit, from where."""

    name: str
    label: str
    unit: str
    source: Source
    kind: Kind
    categories: tuple[str, ...] = ()  # CATEGORY: the values it knows
    extra: tuple[str, ...] = ()  # further keys its table takes


#: Every indicator, in the order of a breakdown. docs/risk.md explains each.
INDICATORS: tuple[IndicatorSpec, ...] = (
    IndicatorSpec("confirmed_fires", "Confirmed fires", "fires", Source.ROLLUPS, Kind.RAMP),
    IndicatorSpec(
        "false_alarms",
        "False fire alarms",
        "per 100 detectors per 30 d",
        Source.ROLLUPS,
        Kind.RAMP,
    ),
    IndicatorSpec("faults", "Faults started", "per 30 d", Source.ROLLUPS, Kind.RAMP),
    IndicatorSpec(
        "fault_hours", "Time faults stayed open", "device-h per 30 d", Source.ROLLUPS, Kind.RAMP
    ),
    IndicatorSpec(
        "isolated_time",
        "Time detectors were isolated",
        "% of detector-time",
        Source.ROLLUPS,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "offline_hours",
        "Time devices were offline",
        "h per device per 30 d",
        Source.ROLLUPS,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "water_low_hours",
        "Fire water below its minimum (pressure or tank level)",
        "device-h per 30 d",
        Source.ROLLUPS,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "shed_events",
        "E-bike shed over-temperature and over-current events",
        "per 30 d",
        Source.ROLLUPS,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "anomalies",
        "Anomalies found by the detectors, weighted by severity",
        "weighted per 30 d",
        Source.ROLLUPS,
        Kind.RAMP,
        extra=("severity_weights",),
    ),
    IndicatorSpec(
        "ack_minutes", "Mean time to acknowledge an alert", "min", Source.ROLLUPS, Kind.RAMP
    ),
    IndicatorSpec("open_faults", "Fault alerts open now", "alerts", Source.STATE, Kind.RAMP),
    IndicatorSpec(
        "oldest_fault_days", "Age of the oldest open fault", "d", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec(
        "isolated_detectors", "Detectors isolated now", "% of detectors", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec(
        "offline_devices", "Devices offline now", "% of devices", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec("open_major_hazards", "Open major hazards", "hazards", Source.STATE, Kind.RAMP),
    IndicatorSpec(
        "open_general_hazards", "Open general hazards", "hazards", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec(
        "overdue_hazards",
        "Hazards past their rectification deadline",
        "hazards",
        Source.STATE,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "oldest_hazard_days", "Age of the oldest open hazard", "d", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec(
        "hazards_found", "Hazards found in the last 365 days", "hazards", Source.STATE, Kind.RAMP
    ),
    IndicatorSpec(
        "false_declarations",
        "False self-declarations in the last 365 days",
        "declarations",
        Source.STATE,
        Kind.RAMP,
    ),
    IndicatorSpec(
        "credit",
        "Credit status",
        "status",
        Source.STATE,
        Kind.CATEGORY,
        categories=("good", "watch", "blacklisted"),
    ),
    IndicatorSpec(
        "supervision_class",
        "Supervision class",
        "class",
        Source.STATE,
        Kind.CATEGORY,
        categories=("high_risk", "key", "ordinary"),
    ),
)
INDICATOR_SPECS: dict[str, IndicatorSpec] = {s.name: s for s in INDICATORS}

#: Anomaly severities and the keys of ``anomalies.severity_weights``.
SEVERITIES = ("critical", "high", "medium", "low")

#: Forced conditions and the limits each takes (all required, all positive numbers).
FORCED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "confirmed_fire": ("fires", "window_days"),
    "alarm_system_offline": ("hours",),
    "alarm_system_isolated": ("share_pct", "hours"),
    "water_pressure_low": ("hours", "window_days"),
    "blacklisted": (),
}

_MAX_WINDOW_DAYS = 730


@dataclass(frozen=True, slots=True)
class IndicatorConfig:
    """One indicator's parameters from the file."""

    name: str
    weight: float
    window_days: int | None = None  # ROLLUPS indicators only
    zero_at: float = 0.0  # RAMP
    full_at: float = 1.0  # RAMP
    values: Mapping[str, float] | None = None  # CATEGORY: share of the weight per value
    severity_weights: Mapping[str, float] | None = None  # anomalies only

    @property
    def spec(self) -> IndicatorSpec:
        return INDICATOR_SPECS[self.name]

    def normalise(self, value: float | str | None) -> float:
        """The share of the weight (0..1) that ``value`` earns; None (no data) earns 0."""
        if value is None:
            return 0.0
        if isinstance(value, str):
            if self.values is None:
                raise ValueError(f"indicator {self.name} takes a number, got {value!r}")
            return self.values[value]
        if value <= self.zero_at:
            return 0.0
        if value >= self.full_at:
            return 1.0
        return (value - self.zero_at) / (self.full_at - self.zero_at)


@dataclass(frozen=True, slots=True)
class ForcedConfig:
    """A forced condition: when it holds, the level is at least ``level``."""

    name: str
    enabled: bool
    level: Level
    limits: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """A loaded, validated risk model."""

    version: str
    description: str
    cutoffs: Cutoffs
    indicators: tuple[IndicatorConfig, ...]  # in catalogue order
    forced: tuple[ForcedConfig, ...]  # in FORCED_CONDITIONS order
    source: str  # the file it came from

    def indicator(self, name: str) -> IndicatorConfig:
        for ind in self.indicators:
            if ind.name == name:
                return ind
        raise KeyError(name)

    @property
    def lookback_days(self) -> int:
        """Days of daily rollups before ``as_of`` that a score reads (the longest window)."""
        days = [i.window_days for i in self.indicators if i.window_days is not None]
        days += [int(f.limits["window_days"]) for f in self.forced if "window_days" in f.limits]
        return max(days, default=1)


def load_risk_config(path: Path | str | None = None) -> RiskConfig:
    """Read and validate a risk model file (default: the shipped one).

    Raises :class:`RiskConfigError` for a missing or unreadable file, bad TOML, a missing or
    unknown key, a wrong type, weights that are not positive or do not sum to 100, cut-offs
    out of order, or a normalisation that is not increasing.
    """
    p = Path(path) if path is not None else DEFAULT_RISK_MODEL
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise RiskConfigError(f"risk model {p}: cannot read it: {err.strerror or err}") from err
    return parse_risk_config(text, source=str(p))


def parse_risk_config(text: str, *, source: str = "<string>") -> RiskConfig:
    """Validate the TOML ``text`` of a risk model (see :func:`load_risk_config`)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RiskConfigError(f"risk model {source}: not valid TOML: {err}") from err
    return _Parser(source).config(doc)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> RiskConfigError:
        return RiskConfigError(f"risk model {self.source}: {where}: {problem}")

    def table(self, doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        if key not in doc:
            raise self.fail(where, f"missing table [{_join(where, key)}]")
        value = doc[key]
        if not isinstance(value, dict):
            raise self.fail(_join(where, key), "must be a table")
        return value

    def keys(
        self, table: Mapping[str, Any], where: str, required: set[str], optional: set[str]
    ) -> None:
        unknown = sorted(set(table) - required - optional)
        if unknown:
            allowed = ", ".join(sorted(required | optional)) or "none"
            raise self.fail(where, f"unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
        missing = sorted(required - set(table))
        if missing:
            raise self.fail(where, f"missing key(s) {', '.join(missing)}")

    def number(self, table: Mapping[str, Any], key: str, where: str) -> float:
        value = table[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise self.fail(_join(where, key), f"must be a number, got {value!r}")
        return float(value)

    def config(self, doc: Mapping[str, Any]) -> RiskConfig:
        self.keys(doc, "top level", {"version", "levels", "indicators", "forced"}, {"description"})
        version = doc["version"]
        if not isinstance(version, str) or not version.strip():
            raise self.fail("version", "must be a non-empty string")
        description = doc.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", "must be a string")
        return RiskConfig(
            version=version.strip(),
            description=description,
            cutoffs=self.cutoffs(self.table(doc, "levels", "")),
            indicators=self.indicators(self.table(doc, "indicators", "")),
            forced=self.forced(self.table(doc, "forced", "")),
            source=self.source,
        )

    def cutoffs(self, t: Mapping[str, Any]) -> Cutoffs:
        self.keys(t, "levels", {"red", "orange", "yellow"}, set())
        red, orange, yellow = (self.number(t, k, "levels") for k in ("red", "orange", "yellow"))
        try:
            return Cutoffs(red=red, orange=orange, yellow=yellow)
        except ValueError as err:
            raise self.fail("levels", str(err)) from None

    def indicators(self, t: Mapping[str, Any]) -> tuple[IndicatorConfig, ...]:
        self.keys(t, "indicators", set(INDICATOR_SPECS), set())
        out = tuple(self.indicator(spec, t[spec.name]) for spec in INDICATORS)
        cents = sum(round(i.weight * 100) for i in out)
        if cents != 100 * 100:
            raise self.fail("indicators", f"weights must sum to 100, they sum to {cents / 100:g}")
        return out

    def indicator(self, spec: IndicatorSpec, raw: Any) -> IndicatorConfig:
        where = f"indicators.{spec.name}"
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table")
        required = {"weight"} | set(spec.extra)
        if spec.source is Source.ROLLUPS:
            required.add("window_days")
        required |= {"zero_at", "full_at"} if spec.kind is Kind.RAMP else {"values"}
        self.keys(raw, where, required, set())
        weight = self.number(raw, "weight", where)
        if weight <= 0 or weight > 100:
            raise self.fail(f"{where}.weight", f"must be above 0 and at most 100, got {weight:g}")
        if abs(weight * 100 - round(weight * 100)) > 1e-6:
            raise self.fail(f"{where}.weight", f"at most two decimals, got {weight!r}")
        window = None
        if "window_days" in raw:
            w = raw["window_days"]
            if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= _MAX_WINDOW_DAYS:
                raise self.fail(
                    f"{where}.window_days",
                    f"must be a whole number 1..{_MAX_WINDOW_DAYS}, got {w!r}",
                )
            window = w
        if spec.kind is Kind.CATEGORY:
            values = self.shares(raw["values"], f"{where}.values", spec.categories)
            return IndicatorConfig(spec.name, weight, window, values=values)
        zero_at, full_at = self.number(raw, "zero_at", where), self.number(raw, "full_at", where)
        if zero_at < 0:
            raise self.fail(f"{where}.zero_at", f"must be 0 or more, got {zero_at:g}")
        if full_at <= zero_at:
            raise self.fail(where, f"full_at ({full_at:g}) must be above zero_at ({zero_at:g})")
        severity = None
        if "severity_weights" in raw:
            severity = self.weights(raw["severity_weights"], f"{where}.severity_weights")
        return IndicatorConfig(
            spec.name, weight, window, zero_at, full_at, severity_weights=severity
        )

    def shares(self, raw: Any, where: str, categories: tuple[str, ...]) -> dict[str, float]:
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table")
        self.keys(raw, where, set(categories), set())
        out = {c: self.number(raw, c, where) for c in categories}
        for c, v in out.items():
            if not 0 <= v <= 1:
                raise self.fail(f"{where}.{c}", f"must be between 0 and 1, got {v:g}")
        return out

    def weights(self, raw: Any, where: str) -> dict[str, float]:
        if not isinstance(raw, dict):
            raise self.fail(where, "must be a table")
        self.keys(raw, where, set(SEVERITIES), set())
        out = {s: self.number(raw, s, where) for s in SEVERITIES}
        for s, v in out.items():
            if v < 0:
                raise self.fail(f"{where}.{s}", f"must be 0 or more, got {v:g}")
        return out

    def forced(self, t: Mapping[str, Any]) -> tuple[ForcedConfig, ...]:
        self.keys(t, "forced", set(FORCED_CONDITIONS), set())
        out = []
        for name, limit_keys in FORCED_CONDITIONS.items():
            where = f"forced.{name}"
            raw = t[name]
            if not isinstance(raw, dict):
                raise self.fail(where, "must be a table")
            self.keys(raw, where, set(limit_keys), {"enabled", "level"})
            enabled = raw.get("enabled", True)
            if not isinstance(enabled, bool):
                raise self.fail(f"{where}.enabled", f"must be true or false, got {enabled!r}")
            try:
                level = Level(raw.get("level", "red"))
            except ValueError:
                raise self.fail(
                    f"{where}.level",
                    f"must be one of {', '.join(v.value for v in Level)}, got {raw['level']!r}",
                ) from None
            limits = {k: self.number(raw, k, where) for k in limit_keys}
            for k, v in limits.items():
                if v <= 0:
                    raise self.fail(f"{where}.{k}", f"must be above 0, got {v:g}")
            if limits.get("share_pct", 0) > 100:
                raise self.fail(f"{where}.share_pct", "must be at most 100")
            if "window_days" in limits and (
                limits["window_days"] != int(limits["window_days"])
                or limits["window_days"] > _MAX_WINDOW_DAYS
            ):
                raise self.fail(
                    f"{where}.window_days", f"must be a whole number 1..{_MAX_WINDOW_DAYS}"
                )
            out.append(ForcedConfig(name, enabled, level, limits))
        return tuple(out)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
