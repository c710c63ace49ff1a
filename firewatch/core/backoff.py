"""Exponential backoff with jitter, for reconnect loops (broker, database)."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, each drawn uniformly from
    [delay/2, delay] ("equal jitter") so that many workers restarting together spread out."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt; grows until :meth:`reset`."""
        ceiling = min(self.maximum, self.initial * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Call after a success: the next failure starts from ``initial`` again."""
        self.attempts = 0
