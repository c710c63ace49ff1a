"""Detectors that look at windows rather than one-step residuals (issue 16).

* :class:`ShapeDetector` (component ``shape``): the distance of the latest subsequence (a lag
  embedding of the last ``dim`` values, level and slope removed) to its nearest neighbour among a
  bounded reference set of past subsequences. Catches pattern anomalies - a heartbeat of the wrong
  shape, a cycle that skips a step - whose single values and one-step residuals look ordinary.
* :class:`DistributionDetector` (component ``distribution``): a G-test (relative entropy) of
  the histogram of the last ``window`` values against the long-run distribution of the
  series. Catches changes in how values are distributed - more frequent bursts, a bimodal
  spell - that move neither the median nor the mean residual much.

Both return a raw statistic and give its textbook prior surprise (``-log10 p`` under the null
model); the caller calibrates the statistic against its own history (a conformal p-value with
an extrapolated tail, :class:`~firewatch.scoring.streaming_stats.TailCalibrator`) and takes
the smaller of the two, like every other component. State is bounded and only past values are
used, so neither can look ahead.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque

import numpy as np

from firewatch.scoring.streaming_stats import RollingQuantile, gaussian_surprise

SHAPE_DIM = 16  # values per subsequence
SHAPE_REFERENCE = 512  # past subsequences kept as reference (a ring)
SHAPE_EVERY = 2  # a subsequence is judged (and kept) every this many values
SHAPE_REPEATS = 0.1  # unexplained share below which a series counts as repeating
DIST_WINDOW = 64  # values in the recent histogram
DIST_BINS = 8  # histogram bins, at the reference distribution's octiles
DIST_EVERY = 4  # the histogram statistic is recomputed every this many values
INFLATION_WINDOW = 512  # past statistics behind the dependence correction of the priors
INFLATION_MIN = 32  # ... and how many it needs before the prior says anything


def chi2_median(dof: int) -> float:
    """Median of a chi-square variable with ``dof`` degrees of freedom (Wilson-Hilferty)."""
    return dof * (1.0 - 2.0 / (9.0 * dof)) ** 3


class Inflation:
    """Dependence correction for a chi-square prior ("genomic control"): overlapping windows
    and autocorrelated values inflate a chi-square statistic by a roughly constant factor,
    estimated as the median of its recent values over the chi-square median (at least 1).
    ``factor()`` is that factor (before the new value is added with ``add(stat)``), and
    ``surprise(stat, factor)`` the chi-square surprise of ``stat`` deflated by it; with fewer
    than ``INFLATION_MIN`` values known the prior is 0 (nothing is surprising yet)."""

    __slots__ = ("_dof", "_median", "_past")

    def __init__(self, dof: int) -> None:
        self._dof = dof
        self._median = chi2_median(dof)
        self._past = RollingQuantile(INFLATION_WINDOW)

    def factor(self) -> float:
        """The current inflation factor (at least 1), or -1 while too few values are known."""
        past = self._past
        if len(past) < INFLATION_MIN:
            return -1.0
        factor = past.median() / self._median
        return factor if factor > 1.0 else 1.0

    def surprise(self, stat: float, factor: float) -> float:
        """Chi-square surprise of ``stat`` deflated by ``factor`` (0 for a negative factor)."""
        return chi2_surprise(stat / factor, self._dof) if factor > 0.0 else 0.0

    def add(self, stat: float) -> None:
        self._past.add(stat)


def chi2_surprise(x: float, dof: int) -> float:
    """``-log10 P(X >= x)`` for a chi-square variable with ``dof`` degrees of freedom
    (Wilson-Hilferty normal approximation, accurate to a few per cent in the tail)."""
    if x <= 0.0 or dof < 1:
        return 0.0
    k = float(dof)
    c = 2.0 / (9.0 * k)
    z = ((x / k) ** (1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)
    return gaussian_surprise(z, two_sided=False)


class ShapeDetector:
    """Nearest-neighbour distance of the current subsequence to past subsequences.

    ``update(x, scale, lo, hi)`` takes the next value, the series' current one-step noise
    scale (the leading predictor's residual scale) and the usual range of the series, and
    returns ``(statistic, prior)`` or ``None``
    while fewer than ``dim`` values or ``dim`` reference subsequences have been seen;
    ``prior(statistic)`` is its prior surprise. The
    statistic is the distance ``min_j ||q - r_j|| / scale`` where ``q`` is the last ``dim``
    values minus their least-squares line and ``r_j`` the reference subsequences (treated the
    same way): if the nearest past subsequence is the same pattern with independent noise of
    sd ``scale``, half its square is chi-square with ``dim - 2`` degrees of freedom, which
    (after the dependence correction of :class:`Inflation`) gives the prior. A distance, not
    its square, is what the caller calibrates: on heavy-tailed series its tail is then no
    heavier than the values'.
    Values are clipped to ``[lo, hi]`` first: a value outside the usual range is the point and
    level detectors' case, and one burst must not make every subsequence containing it new.
    Subsequences join the reference ``dim`` values after they end (no overlap with the one
    being judged), and the reference keeps the last ``reference`` of them. A pattern anomaly
    spans many overlapping subsequences, so only every ``every``-th is judged and kept
    (``None`` in between: the caller holds the last surprise), which halves the cost.
    """

    __slots__ = (
        "_dim",
        "_every",
        "_factor",
        "_filled",
        "_inflation",
        "_next",
        "_norms",
        "_pending",
        "_project",
        "_ref",
        "_residual",
        "_since",
        "_window",
    )

    def __init__(
        self, dim: int = SHAPE_DIM, reference: int = SHAPE_REFERENCE, every: int = SHAPE_EVERY
    ) -> None:
        self._dim = dim
        self._every = every
        self._since = 0
        self._window: deque[float] = deque(maxlen=dim)
        self._pending: deque[tuple[np.ndarray, float]] = deque()
        self._ref = np.zeros((reference, dim))  # -2 x each reference subsequence
        self._norms = np.full(reference, math.inf)  # their squared norms (inf: empty row)
        self._filled = 0
        self._next = 0
        self._inflation = Inflation(dim - 2)
        self._factor = -1.0
        self._residual = RollingQuantile(INFLATION_WINDOW)  # d^2 / ||q||^2 of past matches
        # projection removing the least-squares line (level and slope): ramps and offsets
        # are the drift and shift detectors' case
        basis = np.vstack([np.ones(dim), np.arange(dim) - 0.5 * (dim - 1)]).T
        self._project = np.eye(dim) - basis @ np.linalg.pinv(basis)

    def update(self, x: float, scale: float, lo: float, hi: float) -> float | None:
        """The statistic for the subsequence ending at ``x`` (see the class docstring)."""
        window = self._window
        window.append(lo if x < lo else (hi if x > hi else x))
        dim = self._dim
        if len(window) < dim:
            return None
        self._since += 1
        if self._since < self._every:
            return None
        self._since = 0
        w = np.array(window)
        q = self._project @ w
        qq = float(q @ q)
        out: float | None = None
        if 2 * self._filled >= self._ref.shape[0] and scale > 0.0:
            # ||r - q||^2 = ||r||^2 - 2 r.q + ||q||^2, and r.q = r.w as r is detrended too
            d2 = float((self._norms + self._ref @ w).min()) + qq
            self._residual.add(d2 / qq if qq > 0.0 else 1.0)
            r = math.sqrt(d2) / scale if d2 > 0.0 else 0.0
            out = r if r < 1e6 else 1e6  # a floor-sized scale: keep the statistic finite
            self._factor = self._inflation.factor()
            self._inflation.add(0.5 * out * out)
        pending = self._pending
        pending.append((q, qq))
        if len(pending) > dim:
            old, norm = pending.popleft()
            i = self._next
            self._ref[i] = -2.0 * old
            self._norms[i] = norm
            self._next = (i + 1) % self._ref.shape[0]
            if self._filled < self._ref.shape[0]:
                self._filled += 1
        return out

    def prior(self, stat: float) -> float:
        """Prior surprise of the statistic :meth:`update` just returned."""
        return self._inflation.surprise(0.5 * stat * stat, self._factor)

    @property
    def repeating(self) -> bool:
        """Whether the series repeats itself: over the recent subsequences, the nearest past
        one typically leaves less than ``SHAPE_REPEATS`` of the subsequence unexplained
        (median of ``||q - r||^2 / ||q||^2``). On noise, bursts or smooth signals the nearest
        neighbour explains little, a novel-looking subsequence is no news, and the detector
        stays silent; on heartbeats, machine cycles or any repeating waveform it speaks."""
        residual = self._residual
        return len(residual) >= INFLATION_MIN and residual.median() < SHAPE_REPEATS


class DistributionDetector:
    """G-test of the last ``window`` values' histogram against a reference distribution.

    ``update(y, reference, min_width)`` takes the next value, the reference as a sorted list
    (the long-run distribution of the series, lagging behind it) and the narrowest bin width,
    and returns the statistic, or ``None`` until the window is full and the reference has
    ``4 * window`` values; ``prior(statistic)`` is its prior surprise. Bins are cut at the
    reference's octiles, merged until each inner bin is at least ``min_width`` wide (a
    fraction of the series' spread: a small shift of a narrow bulk is the drift detector's
    business, and quantised or mostly constant series get fewer bins). The statistic
    ``G = 2 sum O ln(O / E)``, with ``E`` the reference's share of each bin (plus half a
    count), is chi-square with ``bins - 1`` degrees of freedom for independent values drawn
    from the reference; the prior is that tail after the dependence correction of
    :class:`Inflation`. The statistic moves slowly, so it is computed every ``every`` values
    only (``None`` in between: the caller holds the last surprise).
    """

    __slots__ = ("_every", "_factor", "_inflation", "_since", "_used", "_window")

    def __init__(self, window: int = DIST_WINDOW, every: int = DIST_EVERY) -> None:
        self._window: deque[float] = deque(maxlen=window)
        self._every = every
        self._since = 0
        self._inflation: dict[int, Inflation] = {}
        self._used: Inflation | None = None
        self._factor = -1.0

    def update(self, y: float, reference: list[float], min_width: float) -> float | None:
        """The statistic for the window ending at ``y`` (see the class docstring)."""
        window = self._window
        window.append(y)
        w = window.maxlen or 1
        n = len(reference)
        if len(window) < w or n < 4 * w:
            return None
        self._since -= 1
        if self._since > 0:
            return None
        self._since = self._every
        edges: list[float] = []
        for k in range(1, DIST_BINS):
            e = reference[(n * k) // DIST_BINS]
            if not edges or e >= edges[-1] + min_width:
                edges.append(e)
        bins = len(edges) + 1
        observed = [0] * bins
        for v in window:
            observed[bisect_right(edges, v)] += 1
        below = [0, *(bisect_left(reference, e) for e in edges), n]
        g = 0.0
        norm = w / (n + 0.5 * bins)
        for b, o in enumerate(observed):
            if o:
                e = (below[b + 1] - below[b] + 0.5) * norm
                g += o * math.log(o / e)
        stat = 2.0 * g if g > 0.0 else 0.0
        inflation = self._inflation.get(bins - 1)
        if inflation is None:
            inflation = self._inflation[bins - 1] = Inflation(bins - 1)
        self._used, self._factor = inflation, inflation.factor()
        inflation.add(stat)
        return stat

    def prior(self, stat: float) -> float:
        """Prior surprise of the statistic :meth:`update` just returned."""
        return self._used.surprise(stat, self._factor) if self._used is not None else 0.0
