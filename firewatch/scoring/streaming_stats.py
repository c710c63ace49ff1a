"""Reusable streaming statistics for online anomaly scoring.

Everything here sees data one value at a time and keeps bounded state, so a score computed from
it can only depend on what came before (no look-ahead). The building blocks:

* :class:`RollingQuantile` - exact quantiles of a sliding window (sorted list + FIFO).
* :class:`TailCalibrator` - turns a raw statistic into a "surprise" ``-log10 p`` using the
  statistic's own recent distribution, with a generalised-Pareto tail beyond the observed range.
* :func:`gaussian_surprise` - the same scale for a standard-normal statistic.
* :func:`detect_period` - dominant period of a history window by autocorrelation (numpy).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Sequence
from operator import mul

import numpy as np

_LN10 = math.log(10.0)
_SQRT_HALF = math.sqrt(0.5)
_LOG10_SQRT_2PI = math.log10(math.sqrt(2.0 * math.pi))


class RollingQuantile:
    """Exact order statistics of the last ``capacity`` values.

    Insertion and removal are a binary search plus a list memmove, which is fast for windows of
    up to a few thousand values. Values must not be NaN.
    """

    __slots__ = ("_capacity", "_fifo", "sorted")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._fifo: deque[float] = deque()
        #: the window's values in ascending order (read-only for callers)
        self.sorted: list[float] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self.sorted)

    def add(self, x: float) -> None:
        fifo, srt = self._fifo, self.sorted
        if len(fifo) == self._capacity:
            del srt[bisect_left(srt, fifo.popleft())]
        fifo.append(x)
        insort(srt, x)

    def clear(self) -> None:
        self._fifo.clear()
        self.sorted.clear()

    def reseed(self, values: Iterable[float]) -> None:
        """Forget the window and start again from ``values`` (oldest first)."""
        self.clear()
        for v in values:
            self.add(v)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile (``q`` in [0, 1]); the window must not be empty."""
        s = self.sorted
        return s[int(q * (len(s) - 1) + 0.5)]

    def median(self) -> float:
        s = self.sorted
        n = len(s)
        m = n // 2
        return s[m] if n % 2 else 0.5 * (s[m - 1] + s[m])

    def midmean(self) -> float:
        """Mean of the middle half of the window (interquartile mean): nearly as robust as the
        median, less noisy, and not stuck on one level of quantised data."""
        s = self.sorted
        n = len(s)
        lo, hi = n // 4, n - n // 4
        return sum(s[lo:hi]) / (hi - lo)

    def count_at_least(self, x: float) -> int:
        return len(self.sorted) - bisect_left(self.sorted, x)

    def values(self) -> list[float]:
        """The window in arrival order (oldest first)."""
        return list(self._fifo)


def gaussian_surprise(z: float, *, two_sided: bool = True) -> float:
    """``-log10`` of the standard-normal tail probability beyond ``z``.

    Two-sided uses ``|z|``; one-sided gives 0 for ``z <= 0``. Uses the asymptotic expansion
    where ``erfc`` would underflow.
    """
    if two_sided:
        z = abs(z)
    elif z <= 0.0:
        return 0.0
    if z < 8.0:
        p = math.erfc(z * _SQRT_HALF)
        if not two_sided:
            p *= 0.5
        return -math.log10(p)
    # log10 P(Z > z) ~ -(z^2/2)/ln10 - log10(z sqrt(2 pi))
    s = (0.5 * z * z) / _LN10 + math.log10(z) + _LOG10_SQRT_2PI
    return s - (math.log10(2.0) if two_sided else 0.0)


class TailCalibrator:
    """Calibrate a non-negative raw statistic against its own recent history.

    ``surprise(a)`` estimates ``-log10 P(A >= a)`` from the last ``capacity`` values seen (the
    value being judged is not yet part of them). Inside the observed bulk it is the empirical
    tail frequency; beyond the top ``tail_fraction`` it extrapolates with a generalised Pareto
    tail fitted by the method of moments to the exceedances (peaks over threshold, as in SPOT),
    so values beyond anything seen still get finite, ordered surprises. ``min_scale`` floors
    the tail scale (in units of the statistic) so a degenerate history (all values equal)
    does not make the next small deviation infinitely surprising. With fewer than
    ``min_count`` values it knows nothing yet and returns 0.

    ``delay`` holds new values back for that many further ``add`` calls before they join the
    reference window, so an anomaly that develops over a while (a drift, a stuck sensor) is
    judged against the history before it rather than against itself. While the window is
    shorter than ``3 * delay`` the delay is a third of the window's length, so calibration
    starts early.
    Surprises are multiplied by ``n / (n + shrink)`` for a window of ``n`` values: a tail fitted
    to little history is trusted less. ``max_shape`` caps the fitted tail shape; 0 forces the
    exponential tail, right for statistics whose null tail is known to be exponential (CUSUMs,
    run lengths) where a noisy shape estimate would only blur the extrapolation.

    Only the upper part of the window (values >= a cut near the 85th percentile, re-chosen when
    that part grows or shrinks too much) is kept sorted: ranks below the cut, surprises under
    about 0.8, are reported at the cut's value. That keeps ``add`` cheap for most values.
    """

    __slots__ = (
        "_capacity",
        "_cooldown",
        "_cut",
        "_delay",
        "_dirty",
        "_fifo",
        "_max_shape",
        "_min_count",
        "_min_scale",
        "_pending",
        "_refresh",
        "_shrink",
        "_since_fit",
        "_tail_fraction",
        "_tail_logp",
        "_tail_scale",
        "_tail_shape",
        "_threshold",
        "_top",
    )

    def __init__(
        self,
        capacity: int = 2000,
        *,
        tail_fraction: float = 0.05,
        min_scale: float = 0.25,
        min_count: int = 20,
        refresh: int = 32,
        delay: int = 0,
        shrink: int = 100,
        max_shape: float = 1.0,
    ) -> None:
        self._capacity = capacity
        self._fifo: deque[float] = deque()
        self._cut = -math.inf
        self._top: list[float] = []  # sorted values >= self._cut
        self._cooldown = 0
        self._delay = delay
        self._shrink = float(shrink)
        self._max_shape = max_shape
        self._pending: deque[float] = deque()
        self._tail_fraction = tail_fraction
        self._min_scale = min_scale
        self._min_count = min_count
        self._refresh = refresh
        self._since_fit = 0
        self._dirty = True
        self._threshold = 0.0
        self._tail_logp = 0.0
        self._tail_scale = min_scale
        self._tail_shape = 0.0

    def __len__(self) -> int:
        return len(self._fifo)

    def clear(self) -> None:
        """Forget the history (the statistic changed meaning)."""
        self._fifo.clear()
        self._pending.clear()
        self._top.clear()
        self._cut = -math.inf
        self._dirty = True

    def add(self, a: float) -> None:
        fifo, top, cut = self._fifo, self._top, self._cut
        n = len(fifo)
        if self._delay:
            pending = self._pending
            pending.append(a)
            # early on the delay is at most a third of the window's length, so the window
            # fills at three quarters of the rate of the series (short series need it)
            if len(pending) <= (self._delay if 3 * self._delay < n else n // 3):
                return
            a = pending.popleft()
        fifo.append(a)
        if a >= cut:
            insort(top, a)
        if n == self._capacity:
            v = fifo.popleft()
            if v >= cut:
                del top[bisect_left(top, v)]
        else:
            n += 1
        self._since_fit += 1
        if self._since_fit >= (self._refresh if n >= 8 * self._min_count else 1):
            self._dirty = True
            if n >= 200:  # keep the sorted part between ~6 % and 30 % of the window
                m = len(top)
                if m < self._tail_fraction * n + 12 or (m > 0.3 * n and self._cooldown <= 0):
                    self._recut()
                self._cooldown -= 1

    def _tail_count(self, n: int) -> int:
        return min(n - 1, max(10, int(self._tail_fraction * n)))

    def _recut(self) -> None:
        s = sorted(self._fifo)
        self._cut = s[len(s) - len(s) * 15 // 100]
        self._top = s[bisect_left(s, self._cut) :]
        self._cooldown = 8  # fits, i.e. 8 * refresh adds
        self._dirty = True

    def _fit(self) -> None:
        s = self._top
        n = len(self._fifo)
        m = len(s)
        k = min(self._tail_count(n), m - 1)
        u = s[m - k - 1]
        top = [v - u for v in s[m - k :]]
        mean = sum(top) / k
        var = max(0.0, (sum(map(mul, top, top)) - k * mean * mean) / max(1, k - 1))
        shape = 0.0
        scale = mean
        if mean > 0.0 and var > 0.0:
            r = mean * mean / var
            shape = 0.5 * (1.0 - r)
            scale = 0.5 * mean * (1.0 + r)
            if shape < 0.0:  # bounded tail: the exponential is the conservative choice
                shape, scale = 0.0, mean
            elif shape > self._max_shape:
                shape = self._max_shape
                scale = mean * (1.0 - shape)  # the GPD mean excess is scale / (1 - shape)
        self._threshold = u
        self._tail_logp = math.log(k / (n + 1.0))
        self._tail_scale = max(scale, self._min_scale)
        self._tail_shape = shape
        self._since_fit = 0
        self._dirty = False

    def update(self, a: float) -> float:
        """``surprise(a)``, then ``add(a)``."""
        s = self.surprise(a)
        self.add(a)
        return s

    def surprise(self, a: float) -> float:
        n = len(self._fifo)
        if n < self._min_count:
            return 0.0
        if self._dirty:
            self._fit()
        shrink = n / (n + self._shrink)
        if a <= self._threshold:
            top = self._top
            c = len(top) - bisect_left(top, a) if a >= self._cut else len(top)
            return -math.log10((c + 1.0) / (n + 1.0)) * shrink
        y = (a - self._threshold) / self._tail_scale
        if self._tail_shape < 1e-6:
            logp = self._tail_logp - y
        else:
            logp = self._tail_logp - math.log1p(self._tail_shape * y) / self._tail_shape
        return -logp / _LN10 * shrink


def detect_period(
    values: Sequence[float],
    *,
    min_period: int = 2,
    max_period: int | None = None,
    min_cycles: int = 3,
    min_strength: float = 0.3,
) -> tuple[int, float] | None:
    """Dominant period (in samples) of ``values`` and its autocorrelation, or ``None``.

    The series is standardised and winsorised (median +- 6 MAD), linearly detrended and its
    autocorrelation is computed by FFT. A period is a lag that is the highest point of the
    autocorrelation within +-10 % of itself, has autocorrelation >= ``min_strength`` (and
    >= 3.5 standard errors of a white-noise autocorrelation at that lag), rises at least
    ``min_strength`` above the lowest autocorrelation at shorter lags (so the monotone decay
    of a random walk or trend is not mistaken for a cycle), and fits ``min_cycles`` times into
    the data. Among qualifying lags the shortest one within 0.1 of the strongest is taken (the
    fundamental rather than a multiple) and sharpened with its multiples.
    """
    with np.errstate(all="ignore"):
        return _detect_period(
            np.asarray(values, dtype=np.float64), min_period, max_period, min_cycles, min_strength
        )


def _detect_period(
    x: np.ndarray, min_period: int, max_period: int | None, min_cycles: int, min_strength: float
) -> tuple[int, float] | None:
    n = x.size
    hi = n // min_cycles
    if max_period is not None:
        hi = min(hi, max_period)
    if hi < 2 * min_period:
        return None
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev)) * 1.4826
    if mad <= 0.0:
        mad = float(np.mean(dev))
    if mad <= 0.0 or not math.isfinite(mad):
        return None
    x = np.clip((x - med) / mad, -6.0, 6.0)  # standardised: no overflow, outliers tamed
    t = np.arange(n, dtype=np.float64)
    tc = t - t.mean()
    xc = x - x.mean()
    slope = float(tc @ xc) / float(tc @ tc)
    xc = xc - slope * tc
    var = float(xc @ xc)
    if var <= 1e-12 * n:
        return None
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(xc, size)
    full = np.fft.irfft(f * np.conj(f), size)[: n - n // 4] / var
    lags = np.arange(full.size, dtype=np.float64)
    full = full * (n / np.maximum(n - lags, 1.0))  # undo the triangular taper
    acf = full[: hi + 2]
    run_min = np.minimum.accumulate(acf)
    # at least min_strength, and 3.5 standard errors of a white-noise autocorrelation
    floor = np.maximum(min_strength, 3.5 / np.sqrt(np.maximum(n - lags[: hi + 2], 1.0)))
    cand = (
        np.nonzero(
            (acf[1:-1] >= acf[:-2])
            & (acf[1:-1] >= acf[2:])
            & (acf[1:-1] >= floor[1:-1])
            & (acf[1:-1] - run_min[:-2] >= min_strength)
        )[0]
        + 1
    )
    peaks: list[tuple[int, float]] = []
    for lag in cand.tolist():
        if lag < min_period or lag > hi:
            continue
        w = max(1, lag // 10)
        a = float(acf[lag])
        if a >= float(acf[max(1, lag - w) : lag + w + 1].max()):
            peaks.append((lag, a))
    if not peaks:
        return None
    best = max(a for _, a in peaks)
    lag, a = next((lag, a) for lag, a in peaks if a >= best - 0.1)
    return _refine_period(full, lag), a


def _refine_period(acf: np.ndarray, lag: int) -> int:
    """Sharpen an autocorrelation peak using its multiples: the lag (within +-5 %) with the
    highest mean autocorrelation at 1x, 2x, 3x ... itself. An off-by-one period drifts out of
    phase by one sample per cycle, which a seasonal model comparing several cycles feels."""
    top = acf.size - 1
    w = max(1, lag // 20)
    best_p, best_v = lag, -math.inf
    for p in range(max(2, lag - w), lag + w + 1):
        ks = np.arange(p, top + 1, p)[:6]
        v = float(acf[ks].mean())
        if v > best_v:
            best_p, best_v = p, v
    return best_p
