"""Jittered exponential backoff."""

from __future__ import annotations

import random

import pytest

from firewatch.core.backoff import Backoff


def test_delays_double_with_jitter_up_to_the_maximum_and_reset() -> None:
    b = Backoff(0.1, 1.0, rng=random.Random(7))
    delays = [b.next() for _ in range(8)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    for d, c in zip(delays, ceilings, strict=True):
        assert c / 2 <= d <= c
    assert len(set(delays[4:])) == 4  # jittered, not constant at the cap
    b.reset()
    assert 0.05 <= b.next() <= 0.1


def test_invalid_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(0, 1)
    with pytest.raises(ValueError, match="initial"):
        Backoff(2, 1)
