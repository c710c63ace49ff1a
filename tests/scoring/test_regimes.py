"""Regime awareness (issue 16, second round): a machine switching between operating levels.

The generator is a two-level machine temperature (on/off runs of 60-400 samples, first-order
relaxation towards 70 or 20 degrees, Gaussian noise, rounded to a sensor resolution). Each
test fails without the piece it names (checked by disabling it): the jump memory that caps
the point surprise of a move like past moves from the same level, and the edge statistic that
judges a value beyond the occupied range in units of the noise within a regime.
"""

from __future__ import annotations

import numpy as np

from firewatch.scoring.scorer import score_series

T0 = 1_700_000_000.0
N = 6000


def _machine(
    seed: int,
    tau: float,
    quantum: float,
    sd: float,
    rise: tuple[int, int, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Temperature of an on/off machine and its on/off state. ``rise`` = (start, length,
    height): from ``start`` the machine stays on and its on-level rises linearly by ``height``
    over ``length`` samples (it is on for 100 samples before that, so the rise starts from a
    settled on-level)."""
    rng = np.random.default_rng(seed)
    state = np.zeros(N, dtype=bool)
    i, on = 0, True
    while i < N:
        length = int(rng.integers(60, 401))
        state[i : i + length] = on
        i, on = i + length, not on
    shift = np.zeros(N)
    if rise is not None:
        start, length, height = rise
        shift[start : start + length] = height * np.arange(length) / length
        state[start - 100 : start + length] = True
    temp = np.empty(N)
    temp[0] = 70.0
    for j in range(1, N):
        target = 70.0 + shift[j] if state[j] else 20.0
        temp[j] = temp[j - 1] + (target - temp[j - 1]) / tau
    return np.round((temp + rng.normal(0.0, sd, N)) / quantum) * quantum, state


def _flags(x: np.ndarray) -> np.ndarray:
    ts = [T0 + 60.0 * i for i in range(len(x))]
    return np.flatnonzero(np.array(score_series(ts, x.tolist()).flags))


def test_no_alarms_at_regime_switches_once_the_regimes_are_known() -> None:
    # the first switches are new to the scorer (a level never seen before is a level shift);
    # after a few of them, a switch is a move like past moves from the same level
    for seed in range(8):
        x, _ = _machine(seed, tau=12.0, quantum=0.5, sd=0.3)
        flags = _flags(x)
        assert not flags[flags >= 1000].tolist(), f"seed {seed}"


def test_a_slow_rise_within_the_on_regime_is_found() -> None:
    # the on-level rises by 20 degrees (100 x the noise) over 150 samples; the series' whole
    # range is 50 degrees, so against the long-run spread the rise is unremarkable
    onset = 4500
    for seed in (0, 1):
        x, _ = _machine(seed, tau=4.0, quantum=0.1, sd=0.2, rise=(onset, 150, 20.0))
        flags = _flags(x)
        assert not flags[(flags >= 1000) & (flags < onset)].tolist(), f"seed {seed}"
        assert flags[(flags >= onset) & (flags < onset + 150)].size, f"seed {seed}"
