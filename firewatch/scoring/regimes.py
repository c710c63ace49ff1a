"""Regime awareness (issue 16, second round): :class:`Regimes` adjusts two surprises.

**Switches are no spikes** (:class:`JumpMemory`, on the ``point`` surprise).

A machine that switches between operating levels makes a large one-step move at every switch.
Judged against the residual scale of one regime, that move is a many-sigma "spike"; but if the
series has made moves like it, from the same level and in the same direction, several times
before, it is no rarer than their empirical frequency. :class:`JumpMemory` keeps the last
``JUMP_WINDOW`` one-step moves together with the level they started from and returns that
frequency as a cap on the point surprise (``-log10 (k / n)``: ``k`` past moves in the same
direction and at least three quarters as large, among the ``n`` past moves that started
within a band around the same level, a quarter of the series' long-run spread; moves are per
sqrt(elapsed time) when the last-value residuals are). A move of a kind not seen at
least ``MIN_JUMPS`` times from that level (a spike upwards from a level the series only ever
left downwards, a jump twice as large as any before) is not capped, so real spikes inside a
regime stay visible.

**A rise within a regime** (:class:`EdgeLevel`, on the ``level`` surprise). The ``level``
detector measures the distance from the median in units of the spread of the whole long-run
distribution: for a machine that runs at 20 or 80 degrees that unit is some 20 degrees, and a
rise of 10 degrees above the "on" level, ten times the noise of that regime, is nothing. The
edge statistic is the distance beyond the occupied range (1st to 99th percentile of the
long-run distribution, as ``level`` sees it) in units of the noise within a regime: the
leading predictor's residual scale, or the width of the distribution's own tail at that edge
if that is wider (a heavy-tailed series is judged by its tail). It is calibrated against its
own history, capped by a one-sided Gaussian prior, and silent until the long-run
distribution holds ``EDGE_MIN`` values (a range is known only once the regimes were seen).
The ``level`` surprise is the larger of the two.
"""

from __future__ import annotations

import math

import numpy as np

from firewatch.scoring.baseline import (
    CAL_DELAY,
    CAL_WINDOW,
    LEVEL_MIN_COUNT,
    MAX_SURPRISE,
    Baseline,
)
from firewatch.scoring.streaming_stats import RollingQuantile, TailCalibrator, gaussian_surprise

__all__ = ["JUMP_WINDOW", "EdgeLevel", "JumpMemory", "Regimes"]

JUMP_WINDOW = 2000  # past one-step moves remembered (the length of the calibration windows)
MIN_JUMPS = 2  # a move seen at least this often from the same level is a known kind of move
BAND = 0.25  # half-width of the "same level" band, in units of the long-run spread
MIN_FROM = 8  # past moves that must have started near the same level before anything is said
SIZE = 0.75  # a past move counts as alike when at least this share of the current one
EDGE_Q = 0.01  # the occupied range: these quantiles of the long-run distribution
EDGE_MIN = 1000  # long-run values needed first: a range is known once its regimes were seen
EDGE_LOCAL = 0.1  # the local spread at an edge: from this quantile to the edge quantile
_LOCAL_Z = 1.0437  # standard-normal distance between the 90th and the 99th percentile


class JumpMemory:
    """Ring buffers of (level before, one-step move) for the last ``JUMP_WINDOW`` points.

    ``add`` is O(1); ``cap`` is one vectorised pass over the window and is only called when
    the point detector is already surprised, so a calm series pays almost nothing."""

    __slots__ = ("_filled", "_from", "_moves", "_pos")

    def __init__(self) -> None:
        self._from = np.zeros(JUMP_WINDOW)
        self._moves = np.zeros(JUMP_WINDOW)
        self._pos = 0
        self._filled = 0

    def add(self, prev: float, x: float, root: float = 1.0) -> None:
        """Remember the move from ``prev`` to ``x`` (after ``x`` has been scored), divided by
        ``root``, the square root of the elapsed time when residuals are per sqrt(time)."""
        i = self._pos
        self._from[i] = prev
        self._moves[i] = (x - prev) / root
        self._pos = (i + 1) % JUMP_WINDOW
        if self._filled < JUMP_WINDOW:
            self._filled += 1

    def limit(self, surprise: float, prev: float, x: float, spread: float, root: float) -> float:
        """``surprise`` of the point detector, capped by :meth:`cap` (which is only computed
        when the surprise could matter)."""
        if surprise <= 2.0:
            return surprise
        return min(surprise, self.cap(prev, (x - prev) / root, BAND * spread))

    def cap(self, prev: float, move: float, band: float) -> float:
        """Largest surprise (``-log10 p``) a ``move`` from ``prev`` may have given the past
        moves that started within ``band`` of ``prev``, or ``inf`` when moves like it are not
        (yet) a known kind of move."""
        if move == 0.0 or not band > 0.0 or self._filled < MIN_FROM:
            return math.inf
        m = self._filled
        starts = self._from[:m]
        moves = self._moves[:m]
        near = np.abs(starts - prev) <= band
        n = int(np.count_nonzero(near))
        if n < MIN_FROM:
            return math.inf
        alike = near & (moves * math.copysign(1.0, move) >= SIZE * abs(move))
        k = int(np.count_nonzero(alike))
        if k < MIN_JUMPS:
            return math.inf
        return -math.log10(k / n)


class EdgeLevel:
    """Distance beyond the occupied range of the long-run distribution, in residual scales."""

    __slots__ = ("cal",)

    def __init__(self) -> None:
        self.cal = TailCalibrator(
            CAL_WINDOW, min_scale=0.25, delay=CAL_DELAY, min_count=LEVEL_MIN_COUNT
        )

    def surprise(self, x: float, level: RollingQuantile, scale: float) -> float:
        z = 0.0
        if len(level.sorted) >= EDGE_MIN and scale > 0.0:
            lo, hi = level.quantile(EDGE_Q), level.quantile(1.0 - EDGE_Q)
            if x > hi:  # in units of the noise, or of the tail's own width if that is wider
                z = (x - hi) / max(scale, (hi - level.quantile(1.0 - EDGE_LOCAL)) / _LOCAL_Z)
            elif x < lo:
                z = (lo - x) / max(scale, (level.quantile(EDGE_LOCAL) - lo) / _LOCAL_Z)
        s = self.cal.surprise(z)
        if s > 1.0:
            s = min(s, gaussian_surprise(z, two_sided=False), MAX_SURPRISE)
        self.cal.add(z)
        return s


class Regimes:
    """The two regime adjustments, applied to a point's component surprises in place."""

    __slots__ = ("edge", "i_level", "i_point", "jumps")

    def __init__(self, i_point: int, i_level: int) -> None:
        self.i_point, self.i_level = i_point, i_level  # positions in the surprises list
        self.jumps = JumpMemory()
        self.edge = EdgeLevel()

    def adjust(
        self,
        surprises: list[float],
        prev: float,
        x: float,
        baseline: Baseline,
        scale: float,
        root: float,
    ) -> None:
        """Cap the point surprise of a known kind of move; raise the level surprise to the
        edge statistic's. ``scale`` is the leader's residual scale, ``root`` the square root
        of the elapsed time when last-value residuals are per sqrt(time) (else 1)."""
        i, spread = self.i_point, baseline.spread_estimate
        surprises[i] = self.jumps.limit(surprises[i], prev, x, spread, root)
        edge = self.edge.surprise(x, baseline.level, scale)
        surprises[self.i_level] = max(surprises[self.i_level], edge)
