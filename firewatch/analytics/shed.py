"""E-bike charging-shed detectors (GB 42295-2022; docs/domain.md#e-bike-charging).

Over 90 % of e-bike fires start while charging, and thermal runaway (> 1 °C/s) gives no
time to act, so the useful warning is the slow heating before it. Per charging port:

* **excess heat** — the port's temperature above what its current explains: a port at
  steady current settles at ``ambient + k·I²`` (resistive heating through a first-order
  thermal lag); ``k`` is learned per port from its own steady-state charging. A port
  warming steadily above that line (a failing cell, a bad contact) is flagged long before
  it reaches the alarm temperature;
* **hotter than its peers** — the same excess compared with the other ports charging in
  the same shed at the same moment (the median of at least two others);
* **rate of rise** — the temperature rising faster than 1 °C/min beyond what a new
  charging session explains, and thermal runaway itself (> 1 °C/s). Judged on the
  median of the last three readings, so a single reading that jumps (or reads 0) and is
  contradicted by the next one — a sensor glitch — moves nothing: a rise must be
  confirmed by the following reading, one report interval later than the raw rate;
* rules: port temperature at or above the alarm level (65 °C), current above rating ×
  factor, charging outside the allowed hours; smoke (reported by the shed);
* frozen port-temperature, current and ambient sensors.
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
    ewma,
    nz,
    rounds,
    run_starts,
)
from firewatch.analytics.statistical import (
    MeasuredSeries,
    MetricSpec,
    Rule,
    local_hours,
)
from firewatch.core.anomalies import Anomaly, Origin
from firewatch.core.domain import Severity

PORT_TEMP = MetricSpec(
    metric="port_temp_c",
    label="port temperature",
    unit="°C",
    resolution=0.1,
    rel_floor=0.0,
    rules=(
        Rule(
            "port_overheat",
            "port_overheat",
            False,
            lambda p: p.thresholds.port_alarm_c,
            Severity.CRITICAL,
            "at or above the {thr} {unit} alarm level",
            min_hits=1,
            at_or_above=True,
        ),
    ),
    seasonal=False,
    shift_limit=None,
    stuck_ref_delta=1.5,  # a port reading that ignores a 1.5 °C change of its shed is frozen
    extra_columns={
        "k": np.nan,
        "rate": 0.0,
        "steady": 0.0,
        "cur": np.nan,
        "teq": np.nan,
        "xe": 0.0,
        "xspread": np.nan,
        "idle_n": 0.0,
        # glitch-confirmed rate of rise (stat.temp_rise): the reading before the last one,
        # the last median of three readings, and the rate of those medians (°C/min)
        "x2": np.nan,
        "xm": np.nan,
        "mrate": 0.0,
    },
)
PORT_CURRENT = MetricSpec(
    metric="port_current_a",
    label="charging current",
    unit="A",
    digits=2,
    resolution=0.01,
    rel_floor=0.0,
    rules=(
        Rule(
            "over_current",
            "over_current",
            False,
            lambda p: p.thresholds.port_rating_a * p.thresholds.over_current_factor,
            Severity.HIGH,
            "above the port's {thr} {unit} limit (rating × factor)",
        ),
    ),
    seasonal=False,
    shift_limit=None,
    stuck_min_abs=0.1,  # an idle port reads 0 A, a finished one trickles: repeats are natural
    warmup=120,
    profile_columns={
        "allow_lo": lambda p: p.thresholds.allowed_hours[0],
        "allow_hi": lambda p: p.thresholds.allowed_hours[1],
    },
)
AMBIENT = MetricSpec(
    metric="ambient_c",
    label="shed temperature",
    unit="°C",
    resolution=0.1,
    rel_floor=0.0,
    seasonal=False,
    shift_limit=None,
)

EXCESS_C = 4.0  # °C above the port's current-explained temperature
PEER_C = 5.0  # °C above the median of the other charging ports
OFFSET_C = 1.5  # °C: an idle port's reading away from its shed's temperature
RISE_C_PER_MIN = 1.0
RUNAWAY_C_PER_MIN = 60.0  # 1 °C/s (thermal runaway itself)
_K_DEFAULT = 1.0  # °C per A² until a port has learned its own
TAU_S = 900.0  # thermal time constant of a port and its plug (typical)


def group_median(groups: I64, x: F64) -> tuple[F64, I64]:
    """Per point: the median of ``x`` over the points with the same group id, and the
    group's size. NaNs are left out (a group of only NaN has median NaN, size 0)."""
    n = len(x)
    med = np.full(n, np.nan)
    size = np.zeros(n, np.int64)
    ok = (~np.isnan(x)).nonzero()[0]
    if len(ok) == 0:
        return med, size
    g, v = groups[ok], x[ok]
    order = np.lexsort((v, g))
    gs, vs = g[order], v[order]
    starts = run_starts(gs)
    sizes = np.empty_like(starts)
    sizes[:-1] = starts[1:] - starts[:-1]
    sizes[-1] = len(gs) - starts[-1]
    lo = vs[starts + (sizes - 1) // 2]
    hi = vs[starts + sizes // 2]
    gmed = 0.5 * (lo + hi)
    run = np.repeat(np.arange(len(starts)), sizes)
    med[ok[order]] = gmed[run]
    size[ok[order]] = sizes[run]
    return med, size


def median3(a: F64, b: F64, c: F64) -> F64:
    """Element-wise median of three arrays (no NaNs)."""
    out: F64 = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return out


def confirmed_rate(
    x: F64, last_x: F64, x2: F64, xm_old: F64, mrate_old: F64, dt_min: F64
) -> tuple[F64, F64]:
    """The rate of rise (°C/min, a few samples' memory) of the median of the last three
    readings ``x2, last_x, x``, and that median. A single-reading glitch — one value far
    off, the next back to normal — never becomes the median, so it moves neither the
    median nor the rate; a lasting change does, one reading later. Missing history (a new
    series) falls back on the readings there are."""
    b = np.where(np.isnan(last_x), x, last_x)
    m = median3(np.where(np.isnan(x2), b, x2), b, x)
    inst = np.where(np.isnan(xm_old), 0.0, (m - xm_old) / dt_min)
    return mrate_old + 0.5 * (inst - mrate_old), m


def _median(x: F64, empty: float) -> float:
    """``np.median`` of NaN-free values (the middle one, or the mean of the middle two),
    without its generic machinery; ``empty`` for no values."""
    if len(x) == 0:
        return empty
    v, m = np.sort(x), len(x) // 2
    return float(v[m]) if len(x) % 2 else (float(v[m - 1]) + float(v[m])) / 2


class PortTemperatures(MeasuredSeries):
    """Port temperatures: the generic detectors plus excess heat, peers and rate of rise."""

    def __init__(self, profiles: Mapping[str, DeviceProfile], unit_of: Callable[[str], str]):
        super().__init__(
            PORT_TEMP,
            profiles,
            unit_of,
            extra=[
                EpisodeSpec(
                    "stat.port_excess", "abnormal_heating", "port_temp_c", min_hits=3, clear_hits=5
                ),
                EpisodeSpec(
                    "stat.port_peers", "hotter_than_peers", "port_temp_c", min_hits=3, clear_hits=5
                ),
                EpisodeSpec(
                    "stat.temp_rise",
                    "rapid_temperature_rise",
                    "port_temp_c",
                    min_hits=2,
                    clear_hits=3,
                ),
                EpisodeSpec(
                    "stat.port_offset",
                    "temperature_deviation",
                    "port_temp_c",
                    min_hits=5,
                    min_duration_s=1800.0,
                    clear_hits=10,
                ),
            ],
        )

    def step(self, s: I64, t: F64, rx: F64, x: F64, ctx: Mapping[str, F64]) -> list[Anomaly]:
        tb = self.table
        last_t, last_x = tb["last_t"][s], tb["last_x"][s]
        fresh = np.isnan(last_t) | (t > last_t)
        cur, amb, row = ctx["current"], ctx["ambient"], ctx["row"]
        if not fresh.all():
            keep = fresh.nonzero()[0]
            s, t, rx, x = s[keep], t[keep], rx[keep], x[keep]
            cur, amb, row = cur[keep], amb[keep], row[keep]
            last_t, last_x = last_t[keep], last_x[keep]
            if len(s) == 0:
                return []
        dt_min = np.maximum(nz(t - last_t, 1.0), 1.0) / 60.0
        inst = np.where(np.isnan(last_x), 0.0, (x - last_x) / dt_min)
        rate_old = tb["rate"][s]
        rate = rate_old + 0.5 * (inst - rate_old)  # °C/min, a few samples' memory
        mrate, xm = confirmed_rate(x, last_x, tb["x2"][s], tb["xm"][s], tb["mrate"][s], dt_min)
        k = tb["k"][s]
        k_use = k
        unknown = np.isnan(k)
        if unknown.any():
            k_use = np.where(unknown, _median(k[~unknown], _K_DEFAULT), k)
        # no ambient reading: excess is NaN and the excess/peer conditions stay false
        # the temperature the current explains, through the port's thermal lag: after the
        # current falls, a port cools over minutes, and that is not excess heat
        target = amb + k_use * cur**2
        teq_old = tb["teq"][s]
        lag = 1.0 - np.exp(-dt_min * 60.0 / TAU_S)
        teq = np.where(np.isnan(teq_old), target, teq_old + lag * (target - teq_old))
        tb["teq"][s] = teq
        excess = x - np.maximum(teq, target)
        charging = cur > 1.0
        peer_med, peer_n = group_median(row.astype(np.int64), np.where(charging, excess, np.nan))
        # the median of the *others*: with the port itself among >= 3, its pull is small
        peer = np.where(charging & (peer_n >= 3), excess - peer_med, np.nan)
        warm = tb["n"][s] >= 30
        prev_cur = tb["cur"][s]
        # a session that just started or stepped its current up explains a fast rise
        ramping = np.isnan(prev_cur) | (cur > nz(prev_cur, 0.0) + 0.2)
        steady = np.where(ramping, 0.0, tb["steady"][s] + 1)
        tb["steady"][s] = steady
        out = super().step(s, t, rx, x, {"reference": amb})
        anomalous = tb["anomalous"][s] > 0  # (as the generic detectors left it)

        heating = rate > -0.05  # a port that is cooling is not running away
        cond = warm & (excess > EXCESS_C) & heating
        out += self.detectors["stat.port_excess"].update(
            s,
            cond,
            lambda: clip(0.5 + excess / (4 * EXCESS_C), 0.0, 1.0),
            t,
            rx,
            self._describe_heat(x, amb, cur, excess, rate, "excess"),
        )
        peer0 = nz(peer, 0.0)
        # "much hotter than its peers" is a warning while it is getting hotter
        cond = warm & (peer0 > PEER_C) & (rate > 0.1)
        out += self.detectors["stat.port_peers"].update(
            s,
            cond,
            lambda: clip(0.5 + peer0 / (4 * PEER_C), 0.0, 1.0),
            t,
            rx,
            self._describe_heat(x, amb, cur, peer, rate, "peers"),
        )
        # on the glitch-confirmed rate: one jumping reading that the next contradicts is not
        # a rise (neither of 1 °C/min nor of a runaway)
        runaway = mrate > RUNAWAY_C_PER_MIN
        cond = warm & (runaway | ((mrate > RISE_C_PER_MIN) & (steady >= 10) & (excess > 0)))
        out += self.detectors["stat.temp_rise"].update(
            s,
            cond,
            lambda: clip(mrate / RUNAWAY_C_PER_MIN, 0.5, 1.0),
            t,
            rx,
            self._describe_heat(x, amb, cur, excess, mrate, "rise"),
        )
        tb["x2"][s], tb["xm"][s], tb["mrate"][s] = last_x, xm, mrate
        # An idle port that has cooled to its shed's temperature reads the shed's temperature:
        # a persistent offset there is a drifting or miscalibrated sensor.
        idle_n = np.where(cur < 0.05, tb["idle_n"][s] + 1, 0.0)
        tb["idle_n"][s] = idle_n
        # (an hour and a half idle: five thermal time constants after a charging session)
        settled = (idle_n >= 90) & ~np.isnan(amb)
        off = clip(nz(x - amb, 0.0), -20, 20)
        xe_old = tb["xe"][s]
        xe = np.where(settled, xe_old + 0.05 * (off - xe_old), xe_old)
        xspread = tb["xspread"][s]
        limit = np.maximum(8.0 * nz(xspread, 1.0), OFFSET_C)
        cond = warm & settled & (np.abs(xe) > limit) & (tb["n"][s] >= 240)
        out += self.detectors["stat.port_offset"].update(
            s,
            cond,
            lambda: clip(np.abs(xe) / (2 * limit), 0.3, 1.0),
            t,
            rx,
            self._describe_offset(x, amb, xe),
        )
        upd = settled & ~cond & ~anomalous
        tb["xe"][s] = xe
        tb["xspread"][s] = np.where(upd, ewma(xspread, np.abs(xe), 0.003), xspread)
        # learn k from steady charging: current held, temperature settled
        settle = (cur > 1.0) & (steady >= 20) & (np.abs(rate) < 0.05)
        settle &= ~anomalous
        k_obs = clip((x - amb) / np.maximum(cur, 1e-6) ** 2, 0.0, 20.0)
        tb["k"][s] = np.where(settle & ~np.isnan(amb), ewma(k, k_obs, 0.05), k)
        tb["rate"][s], tb["cur"][s] = rate, cur
        del row
        return out

    def _describe_offset(
        self, x: F64, amb: F64, xe: F64
    ) -> Callable[[int, Anomaly | None], tuple[str, dict[str, Any], Severity]]:
        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, d = float(x[j]), float(xe[j])
            text = (
                f"idle port reads {v:.1f} °C, {abs(d):.1f} °C "
                f"{'above' if d > 0 else 'below'} its shed's {float(amb[j]):.1f} °C: "
                "sensor drift or a fault in the port"
            )
            return (
                text,
                {"temp_c": v, "ambient_c": float(amb[j]), "offset_c": round(d, 2)},
                (Severity.MEDIUM if d > 0 else Severity.LOW),
            )

        return describe

    def _describe_heat(
        self, x: F64, amb: F64, cur: F64, stat: F64, rate: F64, what: str
    ) -> Callable[[int, Anomaly | None], tuple[str, dict[str, Any], Severity]]:
        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, r, d, i = float(x[j]), float(rate[j]), float(stat[j]), float(cur[j])
            if what == "excess":
                text = (
                    f"port at {v:.1f} °C, {d:.1f} °C hotter than {i:.1f} A explains "
                    f"(rising {r:.2f} °C/min): possible battery or contact fault"
                )
            elif what == "peers":
                text = (
                    f"port at {v:.1f} °C, {d:.1f} °C hotter than the other charging "
                    f"ports (rising {r:.2f} °C/min)"
                )
            else:
                text = f"port temperature rising {r:.1f} °C/min at {v:.1f} °C, {i:.1f} A" + (
                    ": thermal runaway" if r > RUNAWAY_C_PER_MIN else ""
                )
            sev = Severity.HIGH
            if r > RUNAWAY_C_PER_MIN or v >= 55.0:
                sev = Severity.CRITICAL
            ev = {
                "temp_c": v,
                "ambient_c": None if np.isnan(amb[j]) else float(amb[j]),
                "current_a": i,
                "rate_c_per_min": round(r, 3),
                what: round(d, 2),
            }
            return text, ev, sev

        return describe


HOURS = EpisodeSpec(
    "rule.charging_hours", "charging_outside_hours", "port_current_a", min_hits=2, clear_hits=2
)


class PortCurrents(MeasuredSeries):
    """Port currents: the generic detectors plus the allowed charging hours (a port drawing
    current, or saying it charges, outside its device's local window)."""

    def __init__(self, profiles: Mapping[str, DeviceProfile], unit_of: Callable[[str], str]):
        super().__init__(PORT_CURRENT, profiles, unit_of, extra=[HOURS])

    def step(self, s: I64, t: F64, rx: F64, x: F64, ctx: Mapping[str, F64]) -> list[Anomaly]:
        tb = self.table
        h = local_hours(t, tb["utc"][s])
        lo = nz(tb["allow_lo"][s], 6.0)
        hi = nz(tb["allow_hi"][s], 23.0)
        inside = np.where(lo < hi, (h >= lo) & (h < hi), (h >= lo) | (h < hi)) | (lo == hi)
        cond = ((x > 0.05) | (ctx["charging"] > 0.5)) & ~inside

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            text = (
                f"port charging at {float(x[j]):.2f} A at {h[j]:04.1f} h local time, "
                f"outside the allowed {lo[j]:g}-{hi[j]:g} h"
            )
            ev = {"current_a": float(x[j]), "local_hour": round(float(h[j]), 2)}
            return text, ev, Severity.LOW

        out = self.detectors[HOURS.detector].update(
            s, cond, lambda: np.full(len(s), 0.6), t, rx, describe
        )
        return out + super().step(s, t, rx, x, {})


class FlagSeries(TrackedTable):
    """A condition a device reports as a boolean (the shed's smoke detector): an episode
    while the flag is set, per device."""

    def __init__(
        self, spec: EpisodeSpec, text: str, severity: Severity, unit_of: Callable[[str], str]
    ) -> None:
        self.text, self.severity = text, severity
        self.table = SeriesTable(tracker_columns(spec.detector))
        self.tracker = EpisodeTracker(spec, self.table, unit_of)

    def process(self, devices: Sequence[str], t: F64, rx: F64, flag: F64) -> list[Anomaly]:
        idx = (~np.isnan(flag)).nonzero()[0]
        if len(idx) == 0:
            return []
        sids = self.table.ids(devices, rows=idx, only_rows=True)
        t, rx, on = t[idx], rx[idx], flag[idx] > 0.5
        out: list[Anomaly] = []

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            return self.text, {}, self.severity

        for pos in rounds(sids, t):
            out += self.tracker.update(
                sids[pos], on[pos], np.ones(len(pos)), t[pos], rx[pos], describe
            )
        return out


class ShedDetectors(Composite):
    """Every charging-shed detector, fed with the shed rows of a telemetry frame."""

    def __init__(self, profiles: Mapping[str, DeviceProfile], unit_of: Callable[[str], str]):
        self.profiles = profiles
        self.temp = PortTemperatures(profiles, unit_of)
        self.current = PortCurrents(profiles, unit_of)
        self.ambient = MeasuredSeries(AMBIENT, profiles, unit_of)
        smoke = EpisodeSpec("rule.smoke", "smoke", "smoke", origin=Origin.REPORTED, clear_hits=2)
        self.smoke = FlagSeries(
            smoke, "smoke detected in the charging shed", Severity.CRITICAL, unit_of
        )

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        self.profiles = profiles
        for g in (self.temp, self.current, self.ambient):
            g.set_profiles(profiles)

    def process(self, f: TelemetryFrame) -> list[Anomaly]:
        out: list[Anomaly] = []
        out += self.ambient.process(f.device, None, f.ts, f.received, f.ambient)
        out += self.smoke.process(f.device, f.ts, f.received, f.smoke)
        if len(f.port_no) == 0:
            return out
        row = f.port_row
        comps = f.port_no.astype(np.int64)
        ts, rx = f.ts[row], f.received[row]
        ctx = {"current": f.port_current, "ambient": f.ambient[row], "row": row.astype(np.float64)}
        out += self.temp.process(f.device, comps, ts, rx, f.port_temp, ctx, rows=row)
        charging = {"charging": f.port_charging.astype(np.float64)}
        out += self.current.process(f.device, comps, ts, rx, f.port_current, charging, rows=row)
        return out

    def parts(self) -> Mapping[str, Checkpointable]:
        return {
            "temp": self.temp,
            "current": self.current,
            "ambient": self.ambient,
            "smoke": self.smoke,
        }
