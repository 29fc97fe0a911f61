"""Exact integers beyond int64 as three int64 limbs, and correctly rounded quotients of them.

Window sums of values with many fractional bits (trade amounts like ``0.000123``) exceed
int64, and Python integers cost a C call per element and operation. Here such a value is
``a * 2**80 + b * 2**40 + c`` with three int64 limbs: sums are exact limb by limb (prefix sums
in int64), and the quotient of two such integers is computed in double-double arithmetic
(error-free transformations) and then checked: when the approximation is provably on one side
of every rounding boundary, its rounding is the correctly rounded quotient; the rare rows where
it is not are divided as Python integers. The result is always the ``int / int`` of Python.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LIMB", "MAX_BITS", "limbs", "normalize", "quotients", "to_int"]

LIMB = 40
"""Bits per lower limb."""
MAX_BITS = 2 * LIMB + 20
"""Values below ``2**MAX_BITS`` have a top limb below ``2**20``: sums of up to ``2**21`` rows
of any limb fit int64."""
_MASK = (1 << LIMB) - 1
_SPLIT = 134217729.0  # 2**27 + 1, Dekker's splitter
_ERROR = 2.0**-96
"""A bound (generous) of the relative error of the double-double quotient."""


def limbs(mantissas: Any, shifts: Any) -> tuple[Any, Any, Any]:
    """``(a, b, c)`` with ``m * 2**s == a * 2**80 + b * 2**40 + c``, ``0 <= b, c < 2**40``.

    :param mantissas: int64, magnitudes below ``2**53``.
    :param shifts: int64, ``m * 2**s`` an integer below ``2**MAX_BITS`` for every row (for a
        negative shift the dropped bits are zeros).
    """
    m = np.asarray(mantissas, dtype=np.int64)
    s = np.asarray(shifts, dtype=np.int64)
    negative = s < 0
    if negative.any():
        m = np.where(negative, m >> np.where(negative, -s, 0), m)
        s = np.where(negative, 0, s)
    out = []
    for k in range(2):
        sh = LIMB * k - s  # bits of m below this limb
        right = np.clip(sh, 0, 63)
        left = np.clip(-sh, 0, LIMB)
        low_mask = np.where(sh < 0, (np.int64(1) << np.clip(LIMB + sh, 0, 62)) - 1, _MASK)
        limb = ((m >> right) & low_mask) << left
        out.append(limb & _MASK)
    top_sh = 2 * LIMB - s
    top = np.where(top_sh >= 0, m >> np.clip(top_sh, 0, 63), m << np.clip(-top_sh, 0, 62))
    return top, out[1], out[0]


def normalize(a: Any, b: Any, c: Any) -> tuple[Any, Any, Any]:
    """The same integers with ``0 <= b, c < 2**40`` (carries moved up, floor semantics)."""
    b = b + (c >> LIMB)
    c = c & _MASK
    a = a + (b >> LIMB)
    b = b & _MASK
    return a, b, c


def _two_sum(x: Any, y: Any) -> tuple[Any, Any]:
    s = x + y
    v = s - x
    return s, (x - (s - v)) + (y - v)


def _split(x: Any) -> tuple[Any, Any]:
    c = _SPLIT * x
    high = c - (c - x)
    return high, x - high


def _two_prod(x: Any, y: Any) -> tuple[Any, Any]:
    p = x * y
    xh, xl = _split(x)
    yh, yl = _split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _double_double(a: Any, b: Any, c: Any) -> tuple[Any, Any]:
    a, b, c = normalize(a, b, c)
    s1, e1 = _two_sum(
        np.ldexp(a.astype(np.float64), 2 * LIMB), np.ldexp(b.astype(np.float64), LIMB)
    )
    s2, e2 = _two_sum(s1, c.astype(np.float64))
    return _two_sum(s2, e1 + e2)


def to_int(a: Any, b: Any, c: Any) -> list[int]:
    """The integers as Python ints."""
    return [
        (x << (2 * LIMB)) + (y << LIMB) + z
        for x, y, z in zip(a.tolist(), b.tolist(), c.tolist(), strict=True)
    ]


def quotients(top: tuple[Any, Any, Any], bottom: tuple[Any, Any, Any]) -> Any:
    """Correctly rounded ``int(top) / int(bottom)`` per row, as float64 (bottoms non-zero;
    every limb of both below ``2**62`` in magnitude)."""
    with np.errstate(all="ignore"):
        ph, pl = _double_double(*top)
        qh, ql = _double_double(*bottom)
        q1 = ph / qh
        p, e = _two_prod(q1, qh)
        r = (((ph - p) - e) + pl) - q1 * ql
        q2 = r / qh
        f = q1 + q2
        d = (q1 - f) + q2
        toward = np.where(d < 0, -np.inf, np.inf)
        gap = np.abs(np.nextafter(f, toward) - f)
        safe = (np.abs(d) + np.abs(f) * _ERROR < gap * 0.5) & np.isfinite(f) & (qh != 0)
    result = np.where(safe, f, 0.0)
    unsafe = np.flatnonzero(~safe)
    if len(unsafe):
        tops = to_int(*(x[unsafe] for x in top))
        bottoms = to_int(*(x[unsafe] for x in bottom))
        result[unsafe] = [t / u for t, u in zip(tops, bottoms, strict=True)]
    return result
