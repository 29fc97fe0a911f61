"""Exact fixed-point integers from float columns, and exact sums over row ranges.

The per-event windows (:mod:`featurizer_features._exact`) hold every value as the integer
``x * 2**bits`` at one growing binary scale and divide exact integers at the end; the columnar
kernels do the same over whole columns. Integers are int64 numpy arrays when the bounds of the
chunk prove that no sum or product can overflow, else object arrays of Python integers (slower,
always exact). Sums over ranges are differences of prefix sums: with int64 the prefix sums may
wrap around, but a difference is exact whenever the true range sum fits, which the bounds check.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "INT64_SAFE",
    "fraction_bits",
    "prefix_sums",
    "range_sums",
    "scaled_ints",
    "true_divide",
]

INT64_SAFE = 1 << 62
"""Magnitudes below this are safe in int64 arithmetic (one addition cannot overflow)."""

_FLOAT_EXACT = 1 << 53


def fraction_bits(x: Any, at_least: int = 0) -> int:
    """The most fractional binary digits any value of ``x`` has (finite float64 values), or
    ``at_least`` if that is more.

    Equals ``max(denominator.bit_length() - 1)`` of ``float.as_integer_ratio`` over the values
    (0 for an empty array), maxed with ``at_least``.
    """
    if not len(x):
        return at_least
    if 0 < at_least <= 900:
        with np.errstate(over="ignore"):
            scaled = np.ldexp(x, at_least)
        if (np.isfinite(scaled) & (scaled == np.floor(scaled))).all():
            return at_least  # every value is an integer at that scale: no more bits
    elif at_least == 0 and (x == np.floor(x)).all():
        return 0
    mantissa, exponent = np.frexp(x)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    nonzero = ints != 0
    if not nonzero.any():
        return at_least
    ints = ints[nonzero]
    exponent = exponent[nonzero].astype(np.int64)
    lowest = ints & -ints
    trailing = np.frexp(np.abs(lowest).astype(np.float64))[1].astype(np.int64) - 1
    return max(at_least, int((53 - exponent - trailing).max()))


def scaled_ints(x: Any, bits: int, *, limit: int = INT64_SAFE) -> Any:
    """``x * 2**bits`` as exact integers: int64 if every magnitude is below ``limit``, else an
    object array of Python integers. ``bits`` must be at least :func:`fraction_bits` of ``x``.
    """
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    biggest = float(np.abs(x).max())
    if bits <= 900 and biggest * 2.0**bits < limit:
        return np.ldexp(x, bits).astype(np.int64)
    mantissa, exponent = np.frexp(x)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    shifts = exponent.astype(np.int64) + (bits - 53)
    negative = shifts < 0
    if negative.any():
        # dropped bits are zeros: bits >= the fraction bits of every value
        ints = np.where(negative, ints >> np.where(negative, -shifts, 0), ints)
        shifts = np.where(negative, 0, shifts)
    result = as_objects(ints) << as_objects(shifts)
    return result


def as_objects(values: Any) -> Any:
    """An object array of Python integers with the same values (int64 or object input)."""
    if values.dtype == object:
        return values
    result = np.empty(len(values), dtype=object)
    result[:] = values.tolist()
    return result


def prefix_sums(values: Any) -> Any:
    """``[0, v0, v0 + v1, ...]`` (int64 wrapping, or exact objects)."""
    out = np.empty(len(values) + 1, dtype=values.dtype)
    out[0] = 0
    np.cumsum(values, out=out[1:])
    return out


def range_sums(prefix: Any, starts: Any, ends: Any) -> Any:
    """Sums of ``values[starts[i]:ends[i]]`` from :func:`prefix_sums`."""
    with np.errstate(over="ignore"):
        return prefix[ends] - prefix[starts]


def true_divide(numerators: Any, denominators: Any) -> tuple[Any, list[int]]:
    """Correctly rounded ``numerator / denominator`` of exact integers, as float64.

    int64 pairs both below ``2**53`` are exact floats, so IEEE division rounds them correctly;
    other rows are divided as Python integers (``int / int`` is correctly rounded).

    :returns: the quotients, and the rows whose quotient is too large for a float (where
        ``int / int`` raises ``OverflowError``; their quotient is NaN here).
    """
    result = np.empty(len(numerators), dtype=np.float64)
    if object not in (numerators.dtype, denominators.dtype):
        small = (np.abs(numerators) < _FLOAT_EXACT) & (np.abs(denominators) < _FLOAT_EXACT)
        result[small] = numerators[small].astype(np.float64) / denominators[small].astype(
            np.float64
        )
        big = np.flatnonzero(~small)
        if len(big):
            result[big] = [
                int(a) / int(b)
                for a, b in zip(numerators[big].tolist(), denominators[big].tolist(), strict=True)
            ]
        return result, []
    tops, bottoms = as_objects(numerators), as_objects(denominators)
    try:
        return np.asarray(tops / bottoms, dtype=np.float64), []
    except OverflowError:
        pass
    failed = []
    for i, (a, b) in enumerate(zip(tops.tolist(), bottoms.tolist(), strict=True)):
        try:
            result[i] = a / b
        except OverflowError:
            result[i] = math.nan
            failed.append(i)
    return result, failed
