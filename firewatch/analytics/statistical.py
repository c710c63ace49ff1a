"""Detectors for one measured metric across many series, vectorised: standards rules on
thresholds and streaming statistics.

A :class:`MeasuredSeries` group owns the series of one metric (every tank's level, every
charging port's temperature …) and runs, per round of points (see
:func:`~firewatch.analytics.series.rounds`):

* **rules** — value below / above a per-device threshold from its profile (the building
  class's minimum pressure, a port's alarm temperature …), held for ``min_hits`` points;
* **seasonal baseline** — per series and local hour of day (24 buckets, linearly
  interpolated), an exponentially weighted mean and mean absolute deviation, learned only
  from points that are not part of an anomaly, robust to outliers (deviations clipped at
  4 scales before they are learned);
* **shift** — an EWMA of the standardised residual against that baseline (a CUSUM-like
  accumulation that tolerates autocorrelated noise such as a jockey-pump sawtooth),
  judged against the series' own learned spread of that EWMA: catches slow leaks, drifting
  sensors, pumps that stop keeping pressure up;
* **drop** — a sudden fall of the value far beyond its usual step (burst pipe), confirmed
  by the next reading: one reading that falls (a glitch, a 0 read) and is contradicted by
  the next opens nothing, and nothing learns from it or from the step back;
* **stuck** — a run of exactly repeated values that the series' own repeat rate makes
  implausible (p ** run < 1e-9), so a quantised, slowly varying sensor is not flagged but
  a frozen one is.

Scales have floors (the sensor resolution and a fraction of the level), so a perfectly
smooth series cannot produce infinite z-scores. Nothing alarms before the series has
``warmup`` points of history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firewatch.analytics.episodes import EpisodeSpec, EpisodeTracker, tracker_columns
from firewatch.analytics.profiles import DeviceProfile
from firewatch.analytics.series import (
    F64,
    I64,
    B,
    SeriesTable,
    clip,
    ewma,
    hour_weights,
    nz,
    rounds,
)
from firewatch.core.anomalies import Anomaly
from firewatch.core.domain import Severity

Threshold = Callable[[DeviceProfile], float | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """A threshold rule: the value below (``low``) or above a per-device threshold."""

    name: str  # detector suffix, e.g. "pressure_low"
    kind: str  # anomaly kind
    low: bool
    threshold: Threshold
    severity: Severity
    text: str  # e.g. "below the {thr} kPa minimum for this building"
    min_hits: int = 2
    critical_below_frac: float | None = None  # low rules: critical below thr × this
    at_or_above: bool = False  # high rules: a value equal to the threshold counts too


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Which detectors run on one metric, and how to word their findings."""

    metric: str  # column / anomaly metric name, e.g. "pressure_kpa"
    label: str  # "pressure"
    unit: str  # "kPa"
    digits: int = 1
    resolution: float = 0.1  # sensor step: floor of every scale
    rel_floor: float = 0.002  # scale floor as a share of the level
    rules: Sequence[Rule] = ()
    seasonal: bool = True
    shift_limit: float | None = 8.0  # EWMA residual beyond this many learned spreads
    shift_kind: str = "deviation"
    shift_min_s: float = 600.0
    drop_frac: float | None = None  # sudden drop by this share of the level
    stuck: bool = True
    stuck_kind: str = "stuck_sensor"
    warmup: int = 240  # points before statistics may alarm
    stuck_min_abs: float = 0.0  # repeats of values nearer 0 than this are natural (idle)
    #: With a ``reference`` in the context (a port's shed temperature): also frozen when
    #: the reference moved this much during a run of >= 20 repeats that the value ignored.
    stuck_ref_delta: float | None = None
    extra_columns: Mapping[str, float] = field(default_factory=dict)
    #: per-series constants taken from the device profile (filled when a series appears)
    profile_columns: Mapping[str, Callable[[DeviceProfile], float]] = field(default_factory=dict)


_ALPHA_MIN = 1.0 / 2000  # slowest learning rate of the baseline (about 2 days of minutes)
_SHIFT_ALPHA = 0.1  # EWMA of residuals: ~10 points of memory
_SLOW_ALPHA = 0.01  # and ~100 points
_SPREAD_ALPHA = 0.001  # learned spread of that EWMA (a running mean until ~1000 points)
_STUCK_LOG10 = -9.0


def local_hours(t: F64, utc_offset_h: F64) -> F64:
    """Local hour of day in [0, 24) for Unix times ``t``."""
    out: F64 = np.mod(t / 3600.0 + utc_offset_h, 24.0)
    return out


class MeasuredSeries:
    """The detectors of one metric over all its series (see the module docstring)."""

    def __init__(
        self,
        spec: MetricSpec,
        profiles: Mapping[str, DeviceProfile],
        unit_of: Callable[[str], str],
        extra: Sequence[EpisodeSpec] = (),
    ) -> None:
        """``extra``: more detectors sharing this table, updated by a subclass's
        :meth:`step` through ``self.detectors[name]``."""
        self.spec = spec
        self.profiles = profiles
        cols: dict[str, float] = {
            "n": 0.0,
            "utc": 8.0,
            "last_t": np.nan,
            "last_x": np.nan,
            "run": 0.0,
            "prep": 0.5,
            "lvl": np.nan,
            "dabs": np.nan,
            "e": 0.0,
            "espread": np.nan,
            "es": 0.0,
            "esspread": np.nan,
            "nsp": 0.0,
            "anomalous": 0.0,
            "ref0": np.nan,
            **spec.extra_columns,
            **{k: np.nan for k in spec.profile_columns},
        }
        for r in spec.rules:
            cols[f"thr.{r.name}"] = np.nan
        self.detectors: dict[str, EpisodeTracker] = {}
        specs = [
            EpisodeSpec(f"rule.{r.name}", r.kind, spec.metric, min_hits=r.min_hits)
            for r in spec.rules
        ]
        if spec.shift_limit is not None:
            specs.append(
                EpisodeSpec(
                    "stat.shift",
                    spec.shift_kind,
                    spec.metric,
                    min_hits=3,
                    min_duration_s=spec.shift_min_s,
                    clear_hits=10,
                )
            )
        if spec.drop_frac is not None:
            specs.append(
                EpisodeSpec("stat.drop", "sudden_drop", spec.metric, min_hits=2, clear_hits=3)
            )
        if spec.stuck:
            specs.append(EpisodeSpec("stat.stuck", spec.stuck_kind, spec.metric, clear_hits=2))
        specs += extra
        for s in specs:
            cols.update(tracker_columns(s.detector))
        wide = {"mu": (24, np.nan), "dev": (24, np.nan), "cnt": (24, 0.0)} if spec.seasonal else {}
        self.table = SeriesTable(cols, wide)
        for s in specs:
            self.detectors[s.detector] = EpisodeTracker(s, self.table, unit_of)
        self._rules = [(r, f"thr.{r.name}", self.detectors[f"rule.{r.name}"]) for r in spec.rules]
        self._active = [f"{d}.active" for d in self.detectors]

    # -- profiles -----------------------------------------------------------------------

    def _fill(self, sids: Sequence[int]) -> None:
        """Per-series constants from the device profiles (thresholds, time zone)."""
        tb = self.table
        for sid in sids:
            p = self.profiles.get(tb.keys[sid][0])
            if p is None:
                continue
            tb["utc"][sid] = p.thresholds.utc_offset_h
            for name, get in self.spec.profile_columns.items():
                tb[name][sid] = get(p)
            for r in self.spec.rules:
                thr = r.threshold(p)
                tb[f"thr.{r.name}"][sid] = np.nan if thr is None else thr

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        """New registry contents: thresholds of every known series are re-resolved."""
        self.profiles = profiles
        self._fill(range(len(self.table)))

    # -- processing -----------------------------------------------------------------------

    def process(
        self,
        devices: Sequence[str],
        components: I64 | None,
        t: F64,
        rx: F64,
        x: F64,
        ctx: Mapping[str, F64] | None = None,
        rows: I64 | None = None,
    ) -> list[Anomaly]:
        """Feed points (NaN values are skipped); return the anomaly changes. Point ``i``
        is of device ``devices[rows[i]]`` (``rows`` None: ``devices[i]``) and component
        ``components[i]`` (None: the device itself)."""
        ok = ~np.isnan(x)
        if not ok.all():
            idx = ok.nonzero()[0]
            rows = idx if rows is None else rows[idx]
            components = components[idx] if components is not None else None
            t, rx, x = t[idx], rx[idx], x[idx]
            ctx = {k: v[idx] for k, v in (ctx or {}).items()}
        if len(x) == 0:
            return []
        before = len(self.table)
        sids = self.table.ids(devices, components, rows)
        if len(self.table) > before:
            self._fill(range(before, len(self.table)))
        out: list[Anomaly] = []
        ctx = ctx or {}
        for pos in rounds(sids, t):
            c = {k: v[pos] for k, v in ctx.items()}
            out += self.step(sids[pos], t[pos], rx[pos], x[pos], c)
        return out

    def step(self, s: I64, t: F64, rx: F64, x: F64, ctx: Mapping[str, F64]) -> list[Anomaly]:
        """One round (each series at most once). Subclasses add detectors around it."""
        spec, c = self.spec, self.table.cols
        # Points older than the series' newest are out of order (a device clock jumped
        # back): they must not move the state backwards.
        last_t = c["last_t"][s]
        fresh = np.isnan(last_t) | (t > last_t)
        if not fresh.all():
            keep = fresh.nonzero()[0]
            s, t, rx, x = s[keep], t[keep], rx[keep], x[keep]
            ctx = {k: v[keep] for k, v in ctx.items()}
            if len(s) == 0:
                return []
        out: list[Anomaly] = []
        n = c["n"][s]
        warm = n >= spec.warmup
        learn = c["anomalous"][s] == 0
        level = c["lvl"][s]
        last_x, dabs = c["last_x"][s], c["dabs"][s]
        scale_floor = np.maximum(spec.resolution, spec.rel_floor * np.abs(nz(level, 0.0)))

        for r, thr_col, tracker in self._rules:
            thr = c[thr_col][s]
            cond = (x < thr) if r.low else (x >= thr) if r.at_or_above else (x > thr)
            cond &= ~np.isnan(thr)
            out += tracker.update(
                s, cond, _rule_score(r, x, thr), t, rx, self._describe_rule(r, s, t, x, thr)
            )

        # seasonal baseline (or a plain one: a single bucket reused for every hour)
        if spec.seasonal:
            lo, hi, w = hour_weights(local_hours(t, c["utc"][s]))
            mu_t, dev_t = self.table.wide["mu"], self.table.wide["dev"]
            mu = (1 - w) * mu_t[s, lo] + w * mu_t[s, hi]
            dev = (1 - w) * dev_t[s, lo] + w * dev_t[s, hi]
        else:
            mu, dev = level, dabs * 4.0
        scale = np.maximum(nz(dev, 0.0) * 1.25, scale_floor)
        z = np.where(np.isnan(mu), 0.0, (x - mu) / scale)

        if spec.shift_limit is not None:
            zc = clip(z, -4.0, 4.0)
            e_old, es_old = c["e"][s], c["es"][s]
            e = e_old + _SHIFT_ALPHA * (zc - e_old)
            spread = c["espread"][s]
            stat = e / np.maximum(nz(spread, 0.25), 0.05)
            # the same on a ten times longer memory: a slow drift clears its (smaller) spread
            # hours before it clears the fast one's
            es = es_old + _SLOW_ALPHA * (zc - es_old)
            sspread = c["esspread"][s]
            sstat = es / np.maximum(nz(sspread, 0.25), 0.02)
            slow_warm = n >= spec.warmup * 4
            stat = np.where(slow_warm & (np.abs(sstat) > np.abs(stat)), sstat, stat)
            astat = np.abs(stat)
            cond = warm & (astat > spec.shift_limit)
            limit = spec.shift_limit
            out += self.detectors["stat.shift"].update(
                s,
                cond,
                lambda: clip(astat / (2 * limit), 0.0, 1.0),
                t,
                rx,
                self._describe_shift(s, t, x, mu, stat),
            )
            c["e"][s], c["es"][s] = e, es
            # Spreads learn from clearly normal states only (a drift must not teach the
            # detector that drifting is normal), as a running mean at first, then slowly.
            nsp = c["nsp"][s] + 1
            alpha = np.maximum(1.0 / nsp, _SPREAD_ALPHA)
            upd = learn & ~cond & ((astat < spec.shift_limit / 2) | (nsp < spec.warmup))
            c["nsp"][s] = np.where(upd, nsp, nsp - 1)
            c["espread"][s] = np.where(upd, ewma(spread, np.abs(e), alpha), spread)
            c["esspread"][s] = np.where(upd, ewma(sspread, np.abs(es), alpha), sspread)

        # a drop waits one reading for confirmation (min_hits 2): "pending" while it waits,
        # "was_pending" when the previous reading did (a glitch, if this one is not)
        pending = was_pending = np.zeros(len(s), np.bool_)
        if spec.drop_frac is not None:
            drop = level - x
            cond = warm & (drop > spec.drop_frac * np.abs(level)) & (drop > 10 * dabs)
            was_pending = (c["stat.drop.hits"][s] > 0) & (c["stat.drop.active"][s] == 0)
            out += self.detectors["stat.drop"].update(
                s,
                cond,
                lambda: clip(drop / np.maximum(np.abs(level), 1e-9), 0.0, 1.0),
                t,
                rx,
                self._describe_drop(s, x, level),
            )
            pending = cond & (c["stat.drop.active"][s] == 0)

        if spec.stuck:
            same = x == last_x
            idle = np.abs(x) < spec.stuck_min_abs
            run = np.where(same, c["run"][s] + 1, 0.0)
            prep = c["prep"][s]
            log10p = run * np.log10(clip(prep, 0.02, 0.98))
            cond = warm & (run >= 5) & (log10p < _STUCK_LOG10) & ~idle
            ref = ctx.get("reference")
            if spec.stuck_ref_delta is not None and ref is not None:
                ref0 = np.where(run == 0, ref, c["ref0"][s])
                c["ref0"][s] = ref0
                moved = np.abs(ref - ref0) >= spec.stuck_ref_delta
                cond |= warm & (run >= 20) & moved & ~idle
                log10p = np.where(moved & (run >= 20), np.minimum(log10p, -9.0), log10p)
            out += self.detectors["stat.stuck"].update(
                s,
                cond,
                lambda: clip(-log10p / 18.0, 0.0, 1.0),
                t,
                rx,
                self._describe_stuck(s, t, x, run),
            )
            c["run"][s] = run
            upd = learn & ~cond & ~idle
            c["prep"][s] = np.where(upd, prep + 0.01 * (same - prep), prep)

        # learn: only from points outside any open episode of this series (or a pending drop)
        anomalous = pending.copy()
        for col in self._active:
            anomalous |= c[col][s] > 0
        c["anomalous"][s] = anomalous
        learn = ~anomalous
        if spec.seasonal:
            self._learn_seasonal(s, lo, hi, w, x, scale_floor, learn)
        dx = np.abs(x - last_x)
        step_ok = learn & ~np.isnan(dx) & ~was_pending
        c["dabs"][s] = np.where(step_ok, ewma(dabs, dx, 0.02), dabs)
        # the recent level follows every point: a drop is judged against the last few
        # readings, whatever their state (a slow decline is the shift detector's), except a
        # drop waiting for confirmation: the next reading is judged against the same level
        c["lvl"][s] = np.where(pending, level, ewma(level, x, 0.3))
        c["last_x"][s], c["last_t"][s] = x, t
        c["n"][s] = n + 1
        return out

    def _learn_seasonal(
        self, s: I64, lo: I64, hi: I64, w: F64, x: F64, floor: F64, learn: B
    ) -> None:
        wide = self.table.wide
        mu_t, dev_t, cnt_t = wide["mu"], wide["dev"], wide["cnt"]
        if not learn.all():
            idx = learn.nonzero()[0]
            s, lo, hi, w, x, floor = s[idx], lo[idx], hi[idx], w[idx], x[idx], floor[idx]
        for b, wt in ((lo, 1 - w), (hi, w)):
            cnt = cnt_t[s, b] + wt
            alpha = np.maximum(wt / np.maximum(cnt, 1e-9), wt * _ALPHA_MIN)
            old = mu_t[s, b]
            fresh = np.isnan(old)
            resid = np.where(fresh, 0.0, x - old)
            d_old = dev_t[s, b]
            # clip what is learned at 4 scales (once the bucket has some history): one wild
            # point must not drag the baseline
            lim = np.where(
                np.isnan(d_old) | (cnt < 10), np.inf, 4 * np.maximum(1.25 * d_old, floor)
            )
            r = clip(resid, -lim, lim)
            mu_t[s, b] = np.where(fresh, x, old + alpha * r)
            dev_t[s, b] = np.where(np.isnan(d_old), 0.0, d_old + alpha * (np.abs(r) - d_old))
            cnt_t[s, b] = cnt

    # -- explanations -----------------------------------------------------------------------

    def _fmt(self, v: float) -> str:
        return f"{v:.{self.spec.digits}f} {self.spec.unit}".rstrip()

    def _describe_rule(self, r: Rule, s: I64, t: F64, x: F64, thr: F64) -> Any:
        first = self.table[f"rule.{r.name}.first"]

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, th = float(x[j]), float(thr[j])
            since = float(first[s[j]]) if a is None else a.started_at
            dur = max(0.0, float(t[j]) - since)
            sev = r.severity
            if r.critical_below_frac is not None and v < th * r.critical_below_frac:
                sev = Severity.CRITICAL
            limit = r.text.format(thr=f"{th:g}", unit=self.spec.unit)
            text = f"{self.spec.label} {self._fmt(v)}, {limit} for {_dur(dur)}"
            ev = {
                "value": round(v, 3),
                "threshold": th,
                "unit": self.spec.unit,
                "duration_s": round(dur, 1),
                "ts": float(t[j]),
            }
            return text, ev, sev

        return describe

    def _describe_shift(self, s: I64, t: F64, x: F64, mu: F64, stat: F64) -> Any:
        first = self.table["stat.shift.first"]

        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, m = float(x[j]), float(mu[j])
            since = float(first[s[j]]) if a is None else a.started_at
            way = "below" if stat[j] < 0 else "above"
            text = (
                f"{self.spec.label} {self._fmt(v)}, {way} its usual "
                f"{self._fmt(m)} at this time of day for {_dur(float(t[j]) - since)}"
            )
            ev = {
                "value": round(v, 3),
                "expected": round(m, 3),
                "unit": self.spec.unit,
                "shift_score": round(float(stat[j]), 2),
                "ts": float(t[j]),
            }
            return text, ev, Severity.MEDIUM

        return describe

    def _describe_drop(self, s: I64, x: F64, level: F64) -> Any:
        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, lv = float(x[j]), float(level[j]) if a is None else a.evidence.get("before", 0.0)
            pct = 100 * (lv - v) / lv if lv else 0.0
            text = (
                f"{self.spec.label} fell suddenly from {self._fmt(lv)} to {self._fmt(v)} "
                f"({pct:.0f} % drop)"
            )
            return text, {"value": v, "before": lv, "unit": self.spec.unit}, Severity.CRITICAL

        return describe

    def _describe_stuck(self, s: I64, t: F64, x: F64, run: F64) -> Any:
        def describe(j: int, a: Anomaly | None) -> tuple[str, dict[str, Any], Severity]:
            v, k = float(x[j]), int(run[j]) + 1
            text = f"{self.spec.label} frozen at {self._fmt(v)} for {k} readings in a row"
            return text, {"value": v, "readings": k}, Severity.MEDIUM

        return describe

    # -- checkpoint ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "table": self.table.state(),
            "open": {d: tr.state() for d, tr in self.detectors.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.table.restore(state["table"])
        for d, items in state.get("open", {}).items():
            if d in self.detectors:
                self.detectors[d].restore(items)
        self._fill(range(len(self.table)))


def _rule_score(r: Rule, x: F64, thr: F64) -> Callable[[], F64]:
    """The score of a rule's points (when one is wanted): 0.6, more the further past."""

    def score() -> F64:
        gap = (thr - x) if r.low else (x - thr)
        return clip(0.6 + 0.4 * gap / np.maximum(np.abs(thr), 1e-9), 0.0, 1.0)

    return score


def _dur(seconds: float) -> str:
    """'45 s', '3 min', '2.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{math.floor(seconds / 60 + 0.5):.0f} min"
    return f"{seconds / 3600:.1f} h"
