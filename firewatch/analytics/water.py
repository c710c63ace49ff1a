"""Fire-water detectors: pressure points, tanks and pump rooms (GB 50974 / GB 55036).

* pressure below the building class's static minimum (critical below half of it) or above
  the design pressure; a sudden drop (burst); a shift below/above the usual pressure at
  that time of day (leak, pump failure, drifting sensor); a frozen sensor;
* tank level below the fire-reserve level; a frozen level sensor;
* pump room below 5 °C (pipes and pumps at risk of freezing); a shift; a frozen sensor;
* jockey-pump short cycling: starts per hour far above the device's own usual rate (a
  leak makes the jockey pump run much more often before pressure visibly falls).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from firewatch.analytics.episodes import EpisodeSpec, EpisodeTracker, tracker_columns
from firewatch.analytics.frames import TelemetryFrame
from firewatch.analytics.profiles import DeviceProfile
from firewatch.analytics.series import (
    F64,
    I64,
    Checkpointable,
    Composite,
    SeriesTable,
    TrackedTable,
    clip,
    nz,
    rounds,
)
from firewatch.analytics.statistical import MeasuredSeries, MetricSpec, Rule
from firewatch.core.anomalies import Anomaly
from firewatch.core.domain import Severity

PRESSURE = MetricSpec(
    metric="pressure_kpa",
    label="pressure",
    unit="kPa",
    resolution=0.1,
    rules=(
        Rule(
            "pressure_low",
            "low_pressure",
            True,
            lambda p: p.thresholds.min_kpa,
            Severity.HIGH,
            "below the {thr} {unit} minimum for this building",
            critical_below_frac=0.5,
        ),
        Rule(
            "pressure_high",
            "over_pressure",
            False,
            lambda p: p.thresholds.design_kpa,
            Severity.MEDIUM,
            "above the {thr} {unit} design pressure",
        ),
    ),
    shift_kind="pressure_deviation",
    drop_frac=0.3,
)
LEVEL = MetricSpec(
    metric="level_m",
    label="tank level",
    unit="m",
    digits=2,
    resolution=0.01,
    rules=(
        Rule(
            "level_low",
            "low_tank_level",
            True,
            lambda p: p.thresholds.tank_low_m,
            Severity.HIGH,
            "below the {thr} {unit} fire-reserve level",
        ),
    ),
    seasonal=False,
    shift_limit=None,
)
ROOM = MetricSpec(
    metric="room_temp_c",
    label="pump-room temperature",
    unit="°C",
    resolution=0.1,
    rel_floor=0.0,
    rules=(
        Rule(
            "room_cold",
            "pump_room_cold",
            True,
            lambda p: p.thresholds.room_min_c,
            Severity.HIGH,
            "below the {thr} {unit} minimum for a pump room",
        ),
    ),
    shift_kind="temperature_deviation",
)

_JOCKEY_FAST = 1.0 / 60  # starts/h memory: about an hour of one-minute samples
_JOCKEY_SLOW = 1.0 / 3000  # the device's usual rate: about two days


class JockeyCycling(TrackedTable):
    """Jockey-pump starts per hour against the device's own usual rate.

    Per water device: the last jockey state, an hour-scale EWMA of starts per hour and a
    slow (two-day) one learned outside anomalies. Short cycling: the fast rate above
    ``factor`` × the usual rate and at least ``min_per_h``, for 15 minutes.
    """

    def __init__(
        self,
        unit_of: Callable[[str], str],
        factor: float = 2.5,
        min_per_h: float = 4.0,
        warmup: int = 720,
    ) -> None:
        self.factor, self.min_per_h, self.warmup = factor, min_per_h, warmup
        spec = EpisodeSpec(
            "stat.jockey_cycling",
            "jockey_short_cycling",
            "jockey_running",
            min_hits=5,
            min_duration_s=900.0,
            clear_hits=30,
        )
        cols = {
            "n": 0.0,
            "last": np.nan,
            "last_t": np.nan,
            "fast": np.nan,
            "slow": np.nan,
            **tracker_columns(spec.detector),
        }
        self.table = SeriesTable(cols)
        self.tracker = EpisodeTracker(spec, self.table, unit_of)

    def process(self, devices: Sequence[str], t: F64, rx: F64, on: F64) -> list[Anomaly]:
        ok = ~np.isnan(on)
        idx = ok.nonzero()[0]
        if len(idx) == 0:
            return []
        sids = self.table.ids(devices, rows=idx, only_rows=True)
        t, rx, on = t[idx], rx[idx], on[idx]
        out: list[Anomaly] = []
        for pos in rounds(sids, t):
            out += self._step(sids[pos], t[pos], rx[pos], on[pos])
        return out

    def _step(self, s: I64, t: F64, rx: F64, on: F64) -> list[Anomaly]:
        tb = self.table
        last_t = tb["last_t"][s]
        fresh = np.isnan(last_t) | (t > last_t)
        if not fresh.all():
            keep = fresh.nonzero()[0]
            s, t, rx, on, last_t = s[keep], t[keep], rx[keep], on[keep], last_t[keep]
            if len(s) == 0:
                return []
        dt_h = clip(nz(t - last_t, 60.0), 1.0, 3600.0) / 3600.0
        start = (on > 0.5) & (tb["last"][s] < 0.5)
        inst = start / dt_h  # starts per hour at this sample
        fast = tb["fast"][s]
        fast = np.where(np.isnan(fast), 0.0, fast)
        fast = fast + _JOCKEY_FAST * (inst - fast)
        slow = tb["slow"][s]
        usual = nz(slow, 0.0)
        warm = tb["n"][s] >= self.warmup
        cond = warm & (fast > self.factor * usual) & (fast > self.min_per_h)

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            f, u = float(fast[j]), float(usual[j])
            text = (
                f"jockey pump starting {f:.1f} times an hour, against its usual "
                f"{u:.1f}: possible leak or failing check valve"
            )
            return text, {"starts_per_h": round(f, 2), "usual_per_h": round(u, 2)}, Severity.MEDIUM

        def score() -> F64:
            return clip(fast / np.maximum(self.factor * usual, 1e-9) / 2, 0.0, 1.0)

        out = self.tracker.update(s, cond, score, t, rx, describe)
        learn = tb["stat.jockey_cycling.active"][s] == 0
        tb["slow"][s] = np.where(
            learn, np.where(np.isnan(slow), fast, slow + _JOCKEY_SLOW * (inst - usual)), slow
        )
        tb["fast"][s], tb["last"][s], tb["last_t"][s] = fast, on, t
        tb["n"][s] += 1
        return out


class WaterDetectors(Composite):
    """Every fire-water detector, fed with the water rows of a telemetry frame."""

    def __init__(self, profiles: Mapping[str, DeviceProfile], unit_of: Callable[[str], str]):
        self.pressure = MeasuredSeries(PRESSURE, profiles, unit_of)
        self.level = MeasuredSeries(LEVEL, profiles, unit_of)
        self.room = MeasuredSeries(ROOM, profiles, unit_of)
        self.jockey = JockeyCycling(unit_of)

    def process(self, f: TelemetryFrame) -> list[Anomaly]:
        out = self.pressure.process(f.device, None, f.ts, f.received, f.pressure)
        out += self.level.process(f.device, None, f.ts, f.received, f.level)
        out += self.room.process(f.device, None, f.ts, f.received, f.room_temp)
        out += self.jockey.process(f.device, f.ts, f.received, f.jockey)
        return out

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        for g in (self.pressure, self.level, self.room):
            g.set_profiles(profiles)

    def parts(self) -> Mapping[str, Checkpointable]:
        return {
            "pressure": self.pressure,
            "level": self.level,
            "room": self.room,
            "jockey": self.jockey,
        }
