"""Sources of randomness: the primitive draws every generator is written against
(:class:`Source`), over a seeded ``random.Random`` (:class:`RandomSource`, for
``firewatch bench decoders``) or a hypothesis ``draw`` (:class:`HypothesisSource`, for
the property tests)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn


T = TypeVar("T")


class Source(Protocol):
    """The primitive draws every generator is written against."""

    def integer(self, lo: int, hi: int) -> int:
        """An integer in ``[lo, hi]``."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options`` (earlier ones are the simpler: hypothesis shrinks to them)."""
        ...

    def chance(self, percent: int) -> bool:
        """True with about ``percent`` % probability (shrinks to False)."""
        ...

    def real(self, lo: float, hi: float) -> float:
        """A finite float in ``[lo, hi]``."""
        ...

    def any_float(self) -> float:
        """Any float, NaN and the infinities included."""
        ...

    def binary(self, max_size: int) -> bytes: ...

    def text(self, max_size: int) -> str:
        """Text the database can store: no NUL, no lone surrogates (the generators put
        those in on purpose, where they mean to)."""
        ...


class RandomSource:
    """:class:`Source` over a seeded ``random.Random``, biased like hypothesis towards the
    ends of ranges, small magnitudes and special floats."""

    _SPECIAL_FLOATS = (
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        1e-45,
        3.4028234663852886e38,
        3.4028235e38,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        1e300,
        2.0**53,
        2.0**63,
        -(2.0**63),
        1e16,
        math.inf,
        -math.inf,
        math.nan,
    )

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, lo: int, hi: int) -> int:
        r = self._rng
        x = r.random()
        if x < 0.1:
            return r.choice((lo, hi, min(lo + 1, hi), max(hi - 1, lo)))
        if x < 0.25 and hi - lo > 1000:
            return lo + r.randrange(256)
        return r.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._rng.randrange(len(options))]

    def chance(self, percent: int) -> bool:
        return self._rng.random() * 100 < percent

    def real(self, lo: float, hi: float) -> float:
        r = self._rng
        x = r.random()
        if x < 0.1:
            edges = [lo, hi] + ([0.0, -0.0, 5e-324] if lo <= 0.0 < hi else [])
            return r.choice(edges)
        if x < 0.25:
            return min(hi, max(lo, round(r.uniform(lo, hi), 1)))
        return r.uniform(lo, hi)

    def any_float(self) -> float:
        r = self._rng
        if r.random() < 0.3:
            return r.choice(self._SPECIAL_FLOATS)
        return math.ldexp(r.uniform(-1.0, 1.0), r.randint(-1074, 1023))

    def binary(self, max_size: int) -> bytes:
        r = self._rng
        n = r.randint(0, min(max_size, 16)) if r.random() < 0.7 else r.randint(0, max_size)
        return r.randbytes(n)

    def text(self, max_size: int) -> str:
        r = self._rng
        n = r.randint(0, min(max_size, 12)) if r.random() < 0.85 else r.randint(0, max_size)
        return "".join([self._char(r) for _ in range(n)])

    @staticmethod
    def _char(r: random.Random) -> str:
        x = r.random()
        if x < 0.6:
            return chr(r.randint(0x20, 0x7E))
        if x < 0.68:
            return chr(r.randint(0x01, 0x1F))  # control characters (NUL aside) are storable
        if x < 0.82:
            return chr(r.randint(0x4E00, 0x9FFF))
        if x < 0.9:
            return chr(r.choice((r.randint(0x80, 0xD7FF), r.randint(0xE000, 0xFFFF))))
        return chr(r.randint(0x10000, 0x10FFFF))


class HypothesisSource:
    """:class:`Source` over a hypothesis ``draw`` (inside ``st.composite``)."""

    def __init__(self, draw: DrawFn) -> None:
        from hypothesis import strategies as st

        self._draw = draw
        self._st = st
        self._chars = st.characters(codec="utf-8", exclude_characters="\x00")

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(self._st.sampled_from(options))

    def chance(self, percent: int) -> bool:
        return self._draw(self._st.integers(0, 99)) >= 100 - percent

    def real(self, lo: float, hi: float) -> float:
        return self._draw(self._st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    def any_float(self) -> float:
        return self._draw(self._st.floats())

    def binary(self, max_size: int) -> bytes:
        return self._draw(self._st.binary(max_size=max_size))

    def text(self, max_size: int) -> str:
        return self._draw(self._st.text(self._chars, max_size=max_size))
