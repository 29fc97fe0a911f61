"""Exact fixed-point arithmetic for windowed sums that never drift.

Every finite float is an integer multiple of a power of two, so a window's values can be held
as Python integers at a common scale ``2**-bits``: adding and evicting is then exact, whatever
the number of events, and a final ``int / int`` true division is correctly rounded. Features
using it match a brute-force recomputation over :class:`fractions.Fraction` bit for bit.

The scale only grows (when a value needs more fractional bits than seen so far); growing shifts
the stored integers, which is rare (prices keep their binary exponent).
"""

from __future__ import annotations

import math

__all__ = ["FixedPointScale"]

_MAX_FAST_BITS = 900


def _fraction_bits(x: float) -> int:
    """How many fractional binary digits ``x`` has (0 for integers)."""
    denominator = x.as_integer_ratio()[1]
    return denominator.bit_length() - 1


class FixedPointScale:
    """A growing binary scale: ``to_int(x) == x * 2**bits`` exactly.

    Callers keep integers produced at the current scale; when :meth:`to_int` must grow the
    scale it returns the number of bits it grew by, and the caller shifts what it holds. Hot
    paths may first try ``int(x * factor)`` themselves: when that raises or differs from
    ``x * factor`` (``factor`` is NaN beyond the fast range), they call :meth:`to_int`.
    """

    __slots__ = ("bits", "factor")

    def __init__(self) -> None:
        self.bits = 0
        self.factor = 1.0

    def to_int(self, x: float) -> tuple[int, int]:
        """Return ``(x * 2**bits as an exact int, bits the scale grew by)``.

        :param x: a finite float.
        """
        scaled = x * self.factor
        if self.bits <= _MAX_FAST_BITS and math.isfinite(scaled):
            as_int = int(scaled)
            if as_int == scaled:
                return as_int, 0
        needed = _fraction_bits(x)
        grown = max(0, needed - self.bits)
        self.bits += grown
        self.factor = math.ldexp(1.0, self.bits) if self.bits <= _MAX_FAST_BITS else math.nan
        numerator, denominator = x.as_integer_ratio()
        return numerator << (self.bits - (denominator.bit_length() - 1)), grown
