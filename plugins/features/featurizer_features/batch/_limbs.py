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


_PIECE = 18
"""Bits per piece of a centered value in :func:`variance_ratios` (three pieces: 52 bits)."""
_DD_ERROR = 2.0**-96
"""A bound (generous) of the relative error of each double-double step."""


def _exact_pair(values: Any) -> tuple[Any, Any]:
    """int64 values as two floats whose exact sum is the value."""
    high = (values >> 20) << 20
    return high.astype(np.float64), (values - high).astype(np.float64)


def _dd_add(hi: Any, lo: Any, x: Any) -> tuple[Any, Any]:
    s, e = _two_sum(hi, x)
    return _two_sum(s, e + lo)


def variance_ratios(centered: Any, starts: Any, ends: Any) -> tuple[Any, list[Any]]:
    """``(n * sum(u**2) - sum(u)**2) / n**2`` correctly rounded, for each window
    ``centered[starts[i]:ends[i]]`` of int64 values below ``2**52`` in magnitude (at most
    ``2**22`` rows per window).

    Sums of three 18-bit pieces of every value (and of their pairwise products) are exact in
    int64; the ratio is computed in double-double and checked against a rounding-boundary
    bound, as in :func:`quotients`; undecided rows are computed with Python integers.

    :returns: the ratios, and per window the exact ``(sum(u), sum(u**2))`` as Python ints
        (only for the last window: ``[s1, s2]``).
    """
    from featurizer_features.batch._exact import prefix_sums, range_sums

    u = np.asarray(centered, dtype=np.int64)
    mask = (1 << _PIECE) - 1
    a = u >> (2 * _PIECE)
    b = (u >> _PIECE) & mask
    c = u & mask
    terms = [c * c, 2 * b * c, 2 * a * c + b * b, 2 * a * b, a * a]  # times 2**(18k)
    ones = [c, b, a]
    sums2 = [range_sums(prefix_sums(t), starts, ends) for t in terms]
    sums1 = [range_sums(prefix_sums(t), starts, ends) for t in ones]
    n = (ends - starts).astype(np.float64)
    with np.errstate(all="ignore"):
        s2h = np.zeros(len(starts))
        s2l = np.zeros(len(starts))
        size2 = np.zeros(len(starts))
        for k, t in enumerate(sums2):
            high, low = _exact_pair(t)
            scale = 2.0 ** (_PIECE * k)
            s2h, s2l = _dd_add(s2h, s2l, high * scale)
            s2h, s2l = _dd_add(s2h, s2l, low * scale)
            size2 += np.abs(t.astype(np.float64)) * scale
        s1h = np.zeros(len(starts))
        s1l = np.zeros(len(starts))
        size1 = np.zeros(len(starts))
        for k, t in enumerate(sums1):
            high, low = _exact_pair(t)
            scale = 2.0 ** (_PIECE * k)
            s1h, s1l = _dd_add(s1h, s1l, high * scale)
            s1h, s1l = _dd_add(s1h, s1l, low * scale)
            size1 += np.abs(t.astype(np.float64)) * scale
        # n * S2 (n exact) and S1 ** 2, in double-double
        p, pe = _two_prod(s2h, n)
        pe = pe + s2l * n
        sq, sqe = _two_prod(s1h, s1h)
        sqe = sqe + 2.0 * s1h * s1l
        nh, nl = _two_sum(p, -sq)
        nl = nl + (pe - sqe)
        nh, nl = _two_sum(nh, nl)
        error = (n * size2 + size1 * size1) * _DD_ERROR * 8.0
        denominator = n * n
        q1 = nh / denominator
        r1, r2 = _two_prod(q1, denominator)
        q2 = (((nh - r1) - r2) + nl) / denominator
        f = q1 + q2
        d = (q1 - f) + q2
        toward = np.where(d < 0, -np.inf, np.inf)
        gap = np.abs(np.nextafter(f, toward) - f)
        bound = np.abs(d) + error / denominator + np.abs(f) * _DD_ERROR
        safe = (bound < gap * 0.5) & np.isfinite(f) & np.isfinite(bound)
    result = np.where(safe, f, 0.0)

    def exact(i: int) -> tuple[int, int]:
        s1 = sum(int(t[i]) << (_PIECE * k) for k, t in enumerate(sums1))
        s2 = sum(int(t[i]) << (_PIECE * k) for k, t in enumerate(sums2))
        return s1, s2

    for i in np.flatnonzero(~safe).tolist():
        s1, s2 = exact(i)
        count = int(ends[i] - starts[i])
        result[i] = (count * s2 - s1 * s1) / (count * count)
    return result, list(exact(len(starts) - 1)) if len(starts) else []
