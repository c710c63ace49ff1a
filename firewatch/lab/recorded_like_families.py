"""The generator families of :mod:`firewatch.lab.recorded_like`.

Each family is a function ``make(rng, kind, inject)`` that draws its parameters and base
series from ``rng`` first and, when ``inject``, the anomaly ``kind`` afterwards (so the clean
variant is the same base series). It returns timestamps (seconds), values, a missing-value mask
and inclusive label ranges. Parameter ranges are listed in
``docs/analytics-score-evaluation.md``; every draw here is uniform in the range written
next to it unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FAMILIES", "Family", "Generated"]

Array = NDArray[np.floating[Any]]
_T0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, midnight UTC
_DAY = 86_400.0


@dataclass
class Generated:
    timestamps: Array
    values: Array
    labels: list[tuple[int, int]]
    missing: NDArray[np.bool_] | None = None
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    make: Callable[[np.random.Generator, str, bool], Generated]
    kinds: tuple[str, ...]
    description: str


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _i(rng: np.random.Generator, lo: int, hi: int) -> int:
    """An integer in [lo, hi] inclusive."""
    return int(rng.integers(lo, hi + 1))


def _span(rng: np.random.Generator, n: int, length: int, lo_share: float = 0.4) -> int:
    """Start of an anomaly of ``length`` points in the later part of a series of ``n``."""
    lo = int(lo_share * n)
    return _i(rng, lo, max(lo, n - length - 2))


# ------------------------------------------------------------------------------ server
def _server(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    n = _i(rng, 2000, 8000)
    step = float(rng.choice([30.0, 60.0, 300.0]))
    counts = bool(rng.random() < 0.5)  # request counts, else CPU %
    base = _u(rng, 5.0, 40.0) if not counts else _u(rng, 5.0, 300.0)
    t = np.arange(n) * step
    daily = 1.0 + _u(rng, 0.0, 0.5) * np.sin(2 * np.pi * (t / _DAY - _u(rng, 0.0, 1.0)))
    df = _u(rng, 2.5, 6.0)  # Student-t noise: heavy tails
    noise = rng.standard_t(df, n) * _u(rng, 0.05, 0.2)
    burst_rate = _u(rng, 1 / 500, 1 / 100)  # bursts per point
    burst_len = _u(rng, 3.0, 20.0)
    alpha = _u(rng, 1.5, 3.0)  # Pareto tail of burst heights
    burst_scale = _u(rng, 0.5, 2.0)

    def bursts(lo: int, hi: int, rate: float) -> Array:
        out = np.zeros(n)
        for s in np.flatnonzero(rng.random(hi - lo) < rate) + lo:
            length = 1 + rng.geometric(1.0 / burst_len)
            out[s : s + length] += burst_scale * (1.0 + rng.pareto(alpha))
        return out

    load = daily * (1.0 + noise) + bursts(0, n, burst_rate)
    missing = rng.random(n) < _u(rng, 0.0, 0.01)
    labels: list[tuple[int, int]] = []
    if kind == "sustained_rise":
        length = _i(rng, 100, 600)
        s = _span(rng, n, length)
        ramp = min(length // 3, _i(rng, 10, 30))
        factor = _u(rng, 1.5, 3.0) - 1.0
        shape = np.minimum(1.0, (np.arange(length) + 1) / ramp)
        load[s : s + length] += factor * shape * daily[s : s + length]
        labels = [(s, s + length - 1)]
    elif kind == "burst_rate":
        length = _i(rng, 300, 1000)
        s = _span(rng, n, length)
        extra = bursts(s, s + length, burst_rate * (_u(rng, 5.0, 10.0) - 1.0))
        load += extra
        labels = [(s, min(n - 1, s + length - 1 + int(burst_len)))]
    elif kind == "flatline":
        length = _i(rng, 30, 300)
        s = _span(rng, n, length)
        labels = [(s, s + length - 1)]
    if counts:
        values = rng.poisson(np.maximum(0.0, base * load)).astype(float)
    else:
        values = np.clip(np.round(base * load, 1), 0.0, 100.0)
    if kind == "flatline":
        s, e = labels[0]
        values[s : e + 1] = values[s - 1]  # the collector repeats its last reading
        missing[s : e + 1] = False
    return Generated(_T0 + t, values, labels, missing, {"counts": counts, "step_s": step})


# --------------------------------------------------------------------------- irregular
def _irregular(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    n = _i(rng, 1000, 6000)
    dt = _u(rng, 30.0, 300.0)  # mean interval: Poisson arrivals
    gaps = rng.exponential(dt, n)
    for g in rng.choice(n, _i(rng, 2, 6), replace=False):
        gaps[g] += _u(rng, 20.0, 200.0) * dt  # the sensor was silent
    t = _T0 + np.cumsum(gaps)
    phi = _u(rng, 0.0, 0.9)
    sigma = _u(rng, 0.1, 10.0)
    e = rng.normal(0.0, sigma, n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):  # AR(1) in sample steps
        x[i] = phi * x[i - 1] + e[i]
    level = _u(rng, -50.0, 200.0)
    sd = sigma / np.sqrt(1.0 - phi * phi)
    slow = _u(rng, 0.0, 2.0) * sd * np.sin(2 * np.pi * (t - t[0]) / _DAY)
    values = level + slow + x
    missing = rng.random(n) < _u(rng, 0.01, 0.05)
    labels: list[tuple[int, int]] = []
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "spike":
        width = _i(rng, 1, 3)
        s = _span(rng, n, width)
        values[s : s + width] += sign * _u(rng, 6.0, 12.0) * sd
        missing[s : s + width] = False
        labels = [(s, s + width - 1)]
    elif kind == "level_shift":
        length = _i(rng, 200, 1000)
        s = _span(rng, n, length)
        values[s : s + length] += sign * _u(rng, 3.0, 6.0) * sd
        labels = [(s, s + length - 1)]
    elif kind == "variance_change":
        length = _i(rng, 100, 500)
        s = _span(rng, n, length)
        values[s : s + length] += (_u(rng, 2.5, 5.0) - 1.0) * x[s : s + length]
        labels = [(s, s + length - 1)]
    return Generated(t, values, labels, missing, {"mean_interval_s": dt, "phi": phi})


# ---------------------------------------------------------------------------- drifting
def _drifting(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    n = _i(rng, 2000, 8000)
    step = float(rng.choice([300.0, 600.0]))
    t = np.arange(n) * step
    noise_sd = _u(rng, 0.2, 2.0)
    rw_sd = _u(rng, 0.02, 0.3) * noise_sd
    walk = np.cumsum(rng.normal(0.0, rw_sd, n))
    amp0 = _u(rng, 1.0, 10.0) * noise_sd
    # the cycle's amplitude wanders slowly: ±50 % over the series
    amp = amp0 * (1.0 + _u(rng, -0.5, 0.5) * np.sin(np.pi * np.arange(n) / n + _u(rng, 0, 3)))
    phase = _u(rng, 0.0, 1.0)
    values = _u(rng, 0.0, 100.0) + walk + amp * np.sin(2 * np.pi * (t / _DAY - phase))
    values += rng.normal(0.0, noise_sd, n)
    labels: list[tuple[int, int]] = []
    step_sd = float(np.sqrt(rw_sd**2 + 2 * noise_sd**2))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "fast_drift":
        length = _i(rng, 50, 300)
        s = _span(rng, n, length)
        slope = sign * _u(rng, 0.3, 1.0) * step_sd
        values[s : s + length] += slope * (np.arange(length) + 1)
        values[s + length :] += slope * length  # the level stays where the drift took it
        labels = [(s, s + length - 1)]
    elif kind == "step":
        s = _span(rng, n, 10)
        values[s:] += sign * _u(rng, 6.0, 12.0) * step_sd
        labels = [(s, s + 9)]
    return Generated(_T0 + t, values, labels, None, {"step_s": step})


# ------------------------------------------------------------------------------- short
def _short(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    n = _i(rng, 50, 300)
    step = float(rng.choice([60.0, 3600.0, 86_400.0]))
    base = str(rng.choice(["noise", "sine", "ar1"]))
    sd = _u(rng, 0.5, 5.0)
    e = rng.normal(0.0, sd, n)
    if base == "ar1":
        for i in range(1, n):
            e[i] += 0.6 * e[i - 1]
        sd /= 0.8
    values = _u(rng, -20.0, 100.0) + e
    if base == "sine":
        values += _u(rng, 1.0, 5.0) * sd * np.sin(2 * np.pi * np.arange(n) / _i(rng, 12, 30))
    labels: list[tuple[int, int]] = []
    s = _i(rng, max(int(0.5 * n), 30), int(0.85 * n))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "spike":
        values[s] += sign * _u(rng, 6.0, 10.0) * sd
        labels = [(s, s)]
    elif kind == "level_shift":
        values[s:] += sign * _u(rng, 3.0, 6.0) * sd
        labels = [(s, n - 1)]
    elif kind == "variance":
        values[s:] += (_u(rng, 3.0, 5.0) - 1.0) * e[s:]
        labels = [(s, n - 1)]
    return Generated(_T0 + np.arange(n) * step, values, labels, None, {"base": base})


# ----------------------------------------------------------------------------- traffic
def _traffic(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    per_day = int(rng.choice([48, 96]))
    n = _i(rng, 2000, 8000)
    t = np.arange(n) * (_DAY / per_day)
    hour = (t % _DAY) / 3600.0
    day = (t // _DAY).astype(int)
    weekend = (day % 7) >= 5
    # daytime demand: a morning and an evening peak on a low night floor
    am, pm = _u(rng, 7.0, 9.5), _u(rng, 16.5, 19.5)
    width = _u(rng, 1.0, 3.0)
    night = _u(rng, 0.02, 0.15)
    shape = night + np.exp(-0.5 * ((hour - am) / width) ** 2)
    shape += _u(rng, 0.6, 1.2) * np.exp(-0.5 * ((hour - pm) / width) ** 2)
    shape += _u(rng, 0.2, 0.6) * ((hour > am) & (hour < pm))
    rate = _u(rng, 5.0, 500.0) * shape * np.where(weekend, _u(rng, 0.4, 0.9), 1.0)
    k = _u(rng, 5.0, 50.0)  # gamma-Poisson overdispersion
    gamma = rng.gamma(k, 1.0 / k, n)
    labels: list[tuple[int, int]] = []
    days = n // per_day
    d = _i(rng, max(15, days // 2), days - 2)
    if kind == "missing_peak":
        idx = np.flatnonzero((day == d) & (hour >= am - width) & (hour <= pm + width))
        rate[idx] *= _u(rng, 0.1, 0.4)
        labels = [(int(idx[0]), int(idx[-1]))]
    elif kind == "night_activity":
        idx = np.flatnonzero((day == d) & (hour >= 0.5) & (hour < 5.0))
        rate[idx] = _u(rng, 0.5, 1.0) * float(np.median(rate[day == d - 1]))
        labels = [(int(idx[0]), int(idx[-1]))]
    values = rng.poisson(rate * gamma).astype(float)
    return Generated(_T0 + t, values, labels, None, {"per_day": per_day})


# ----------------------------------------------------------------------------- machine
def _machine(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    kind = chosen if inject else None
    n = _i(rng, 2000, 8000)
    on_lo, on_hi = _i(rng, 60, 150), _i(rng, 200, 400)
    off_lo, off_hi = _i(rng, 60, 150), _i(rng, 200, 400)
    state = np.zeros(n, dtype=bool)
    i, on = 0, bool(rng.random() < 0.5)
    while i < n:
        length = _i(rng, on_lo, on_hi) if on else _i(rng, off_lo, off_hi)
        state[i : i + length] = on
        i, on = i + length, not on
    t_on, t_off = _u(rng, 50.0, 90.0), _u(rng, 15.0, 30.0)
    tau = _u(rng, 5.0, 30.0)
    noise = rng.normal(0.0, _u(rng, 0.1, 0.5), n)
    q = float(rng.choice([0.1, 0.5, 1.0]))
    target_shift = np.zeros(n)
    labels: list[tuple[int, int]] = []
    if kind == "slow_rise_before_failure":
        length = _i(rng, 200, 600)
        s = _span(rng, n, length + 50, 0.5)
        target_shift[s : s + length] = _u(rng, 5.0, 15.0) * np.arange(length) / length
        state[s + length :] = False  # the machine fails and stays off
        labels = [(s, s + length - 1)]
    elif kind == "stuck_regime":
        length = _i(rng, 3, 6) * on_hi
        s = _span(rng, n, length, 0.3)
        e = min(n - 1, s + length - 1)
        state[s : e + 1] = True
        labels = [(min(e, s + on_hi), e)]  # stuck once it outlasts every normal run
    temp = np.empty(n)
    temp[0] = t_on if state[0] else t_off
    for j in range(1, n):
        target = (t_on + target_shift[j]) if state[j] else t_off
        temp[j] = temp[j - 1] + (target - temp[j - 1]) / tau
    values = np.round((temp + noise) / q) * q
    return Generated(_T0 + np.arange(n) * 60.0, values, labels, None, {"quantum": q})


# ---------------------------------------------------------------------------- textbook
_TEXTBOOK_KINDS = tuple(
    f"{base}:{k}"
    for base in ("noise", "seasonal")
    for k in ("spike", "dip", "level_shift", "drift", "variance_x3", "stuck")
)


def _textbook(rng: np.random.Generator, chosen: str, inject: bool) -> Generated:
    """docs/analytics-score.md's synthetic suite: 5-minute sampling, 12 days (3456
    points), the anomaly at day 10 (point 2880); base unit noise or a daily sine of
    amplitude 10 plus unit noise, named in the kind (``seasonal:drift``)."""
    base, _, anomaly = chosen.partition(":")
    kind = anomaly if inject else None
    n, onset, per_day = 3456, 2880, 288
    seasonal = base == "seasonal"
    e = rng.normal(0.0, 1.0, n)
    values = e.copy()
    if seasonal:
        values += 10.0 * np.sin(2 * np.pi * np.arange(n) / per_day)
    labels = [(onset, n - 1)]
    if kind == "spike":
        values[onset] += 7.0
        labels = [(onset, onset)]
    elif kind == "dip":
        values[onset : onset + 6] -= 5.0
        labels = [(onset, onset + 5)]
    elif kind == "level_shift":
        values[onset:] += 3.0
    elif kind == "drift":
        values[onset:] += (np.arange(n - onset) + 1) / 50.0
    elif kind == "variance_x3":
        values[onset:] += 2.0 * e[onset:]
    elif kind == "stuck":
        values[onset : onset + 200] = values[onset - 1]
        labels = [(onset, onset + 199)]
    else:
        labels = []
    return Generated(_T0 + np.arange(n) * 300.0, values, labels, None, {"seasonal": seasonal})


FAMILIES: dict[str, Family] = {
    "server": Family(_server, ("sustained_rise", "burst_rate", "flatline"), "bursty server metric"),
    "irregular": Family(
        _irregular, ("spike", "level_shift", "variance_change"), "irregularly sampled sensor"
    ),
    "drifting": Family(_drifting, ("fast_drift", "step"), "drifting baseline, daily cycle"),
    "short": Family(_short, ("spike", "level_shift", "variance"), "short series"),
    "traffic": Family(
        _traffic, ("missing_peak", "night_activity"), "demand counts, daily/weekly cycles"
    ),
    "machine": Family(
        _machine, ("slow_rise_before_failure", "stuck_regime"), "on/off machine temperature"
    ),
    "textbook": Family(_textbook, _TEXTBOOK_KINDS, "the synthetic suite of the scorer's docs"),
}
