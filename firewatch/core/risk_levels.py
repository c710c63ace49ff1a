"""Risk levels: the four colours, their order, the cut-offs that map a score to one, and when
a change of level is a warning (docs/risk.md, "Levels").

The colours are those of Chinese work-safety practice (docs/domain.md, "Units and risk"):
red (major), orange (significant), yellow (general), blue (low). Pure code, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """A unit's risk level, lowest first; the values are what ``risk_scores.level`` holds."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        """0 for blue up to 3 for red: comparable as numbers."""
        return _RANK[self]


_RANK: dict[Level, int] = {level: i for i, level in enumerate(Level)}


def as_level(value: Level | str) -> Level:
    """``value`` as a :class:`Level`; ValueError naming the four levels for anything else."""
    try:
        return Level(value)
    except ValueError:
        raise ValueError(
            f"unknown risk level {value!r}: expected one of {', '.join(v.value for v in Level)}"
        ) from None


def compare_levels(a: Level | str, b: Level | str) -> int:
    """-1 if ``a`` is lower than ``b``, 0 if equal, 1 if higher (blue < yellow < orange < red)."""
    ra, rb = as_level(a).rank, as_level(b).rank
    return (ra > rb) - (ra < rb)


def highest(levels: list[Level]) -> Level:
    """The highest of ``levels``; blue for none."""
    return max(levels, key=lambda lv: lv.rank, default=Level.BLUE)


def level_rose(previous: Level | str | None, new: Level | str) -> bool:
    """Whether moving from ``previous`` to ``new`` raises a warning.

    A warning is raised on a rise only: ``new`` above ``previous``. A unit's first score
    (``previous`` is None) warns only when it is above blue. Same or lower: no warning.
    """
    if previous is None:
        return as_level(new) is not Level.BLUE
    return compare_levels(new, previous) > 0


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Score thresholds: red at or above ``red``, orange at or above ``orange``, yellow at or
    above ``yellow``, blue below. Ordered ``0 < yellow < orange < red <= 100``."""

    red: float
    orange: float
    yellow: float

    def __post_init__(self) -> None:
        if not 0 < self.yellow < self.orange < self.red <= 100:
            raise ValueError(
                "cut-offs must satisfy 0 < yellow < orange < red <= 100, got "
                f"yellow={self.yellow}, orange={self.orange}, red={self.red}"
            )

    def level_of(self, score: float) -> Level:
        """The level a score alone gives (the boundaries belong to the higher level)."""
        if score >= self.red:
            return Level.RED
        if score >= self.orange:
            return Level.ORANGE
        if score >= self.yellow:
            return Level.YELLOW
        return Level.BLUE
