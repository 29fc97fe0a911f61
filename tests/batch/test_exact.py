"""The exact arithmetic under the kernels agrees with Python's integers and floats."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import hypothesis.strategies as st
import numpy as np
from featurizer_features._exact import FixedPointScale
from featurizer_features.batch import _limbs as limbs
from featurizer_features.batch._exact import fraction_bits, scaled_ints, true_divide
from hypothesis import given, settings

FINITE = st.floats(allow_nan=False, allow_infinity=False)


def _split(value: int) -> tuple[int, int, int]:
    mask = (1 << limbs.LIMB) - 1
    return value >> (2 * limbs.LIMB), (value >> limbs.LIMB) & mask, value & mask


def _arrays(values: list[int]) -> tuple[Any, Any, Any]:
    parts = [_split(v) for v in values]
    return tuple(np.array([p[i] for p in parts], dtype=np.int64) for i in range(3))


@settings(max_examples=200, deadline=None)
@given(st.lists(FINITE, min_size=1, max_size=30))
def test_fraction_bits_and_scaled_ints_match_the_per_event_scale(xs: list[float]) -> None:
    scale = FixedPointScale()
    for x in xs:
        scale.to_int(x)
    x = np.array(xs)
    assert fraction_bits(x) == scale.bits
    for floor in (1, scale.bits, scale.bits + 3, 60):
        assert fraction_bits(x, floor) == max(floor, scale.bits)
    if scale.bits <= 1100:
        got = scaled_ints(x, scale.bits).tolist()
        assert got == [int(Fraction(v) * 2**scale.bits) for v in xs]


@st.composite
def quotient_pairs(draw: Any) -> tuple[int, int]:
    """Numerators and non-zero denominators below 2**99, many right at a rounding boundary."""
    q = draw(st.integers(1, 2**99 - 1)) * draw(st.sampled_from([1, -1]))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(st.integers(-(2**99) + 1, 2**99 - 1)), q
    if kind == 1:
        f = draw(st.floats(-1e6, 1e6))
        mid = (Fraction(f) + Fraction(math.nextafter(f, math.inf))) / 2
        p = int(mid * q) + draw(st.integers(-1, 1))
    else:
        p = q * draw(st.integers(-5, 5)) // draw(st.sampled_from([1, 2, 3, 4]))
    return max(min(p, 2**99 - 1), -(2**99) + 1), q


@settings(max_examples=300, deadline=None)
@given(st.lists(quotient_pairs(), min_size=1, max_size=20))
def test_limb_quotients_are_pythons_int_division(pairs: list[tuple[int, int]]) -> None:
    tops, bottoms = [p for p, _ in pairs], [q for _, q in pairs]
    got = limbs.quotients(_arrays(tops), _arrays(bottoms)).tolist()
    want = [p / q for p, q in pairs]
    for g, w in zip(got, want, strict=True):
        assert g == w and math.copysign(1, g) == math.copysign(1, w)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-12, 1e6), min_size=1, max_size=20), st.booleans())
def test_limbs_of_scaled_floats(xs: list[float], negative: bool) -> None:
    x = np.array(xs) * (-1 if negative else 1)
    bits = fraction_bits(x)
    exponent = int(np.frexp(np.abs(x).max())[1])
    if exponent + bits > limbs.MAX_BITS:
        return
    mantissa, exponents = np.frexp(x)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    parts = limbs.limbs(ints, exponents.astype(np.int64) + (bits - 53))
    assert limbs.to_int(*parts) == [int(Fraction(float(v)) * 2**bits) for v in x]


def test_true_divide_reports_overflow_rows() -> None:
    tops = np.array([1, 10**400, 3], dtype=object)
    bottoms = np.array([2, 1, 4], dtype=object)
    quotients, failed = true_divide(tops, bottoms)
    assert failed == [1] and quotients[0] == 0.5 and quotients[2] == 0.75


@st.composite
def windows_of_ints(draw: Any) -> tuple[list[int], list[int], list[int]]:
    """Values below 2**51 (spread out, or tightly around a large base) and windows over them."""
    count = draw(st.integers(1, 400))
    if draw(st.booleans()):
        values = draw(st.lists(st.integers(-(2**51), 2**51), min_size=count, max_size=count))
    else:
        base = draw(st.integers(-(2**50), 2**50))
        noise = draw(st.lists(st.integers(-7, 7), min_size=count, max_size=count))
        values = [base + v for v in noise]
    starts = sorted(draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=10)))
    ends = [draw(st.integers(s + 1, count)) for s in starts]
    return values, starts, ends


@settings(max_examples=200, deadline=None)
@given(windows_of_ints())
def test_variance_ratios_are_pythons(case: tuple[list[int], list[int], list[int]]) -> None:
    values, starts, ends = case
    got, last = limbs.variance_ratios(
        np.array(values, dtype=np.int64), np.array(starts), np.array(ends)
    )
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        window = values[a:b]
        n, s1, s2 = len(window), sum(window), sum(v * v for v in window)
        assert got[i] == (n * s2 - s1 * s1) / (n * n)
    window = values[starts[-1] : ends[-1]]
    assert last == [sum(window), sum(v * v for v in window)]
