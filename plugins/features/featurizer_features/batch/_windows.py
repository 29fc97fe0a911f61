"""Kernels of the trailing-window features: volatility, trade volume imbalance and VWAP.

Each kernel carries the feature's own per-event window object (``VolatilityWindow``,
``TradeVolumeImbalanceWindow``, ``VWAPWindow``) and computes a chunk in columns:

* the window of row ``i`` is found with one ``searchsorted`` over the timestamps of the items
  the window still holds followed by the chunk's (the per-event rule: ``timestamp > t - window``,
  subtraction in float; with non-decreasing timestamps that is exactly what the per-event
  deque keeps);
* values become exact integers at the window's binary scale (grown, like the per-event scale,
  to the most fractional bits seen), window sums are differences of exact prefix sums, and the
  result is the same correctly rounded ``int / int`` division: the same value bit for bit;
* afterwards the window object is set to what the per-event code leaves: the items of the last
  window at the final scale, the exact sums, the count.

A chunk runs through the per-event ``update`` instead when that cannot be proven the same:
non-finite values or timestamps, timestamps that decrease, a window too short to hold its own
event at that timestamp's precision, or scales so large that results could be subnormal.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from featurizer.batch import Columns, ErrorHandler, KernelOutput
from featurizer_features.batch import _limbs as limbs
from featurizer_features.batch._exact import (
    as_objects,
    fraction_bits,
    prefix_sums,
    range_sums,
    scaled_ints,
    true_divide,
)
from featurizer_features.batch._fallback import empty_output, per_event

__all__ = ["TradeVolumeImbalanceKernel", "VWAPKernel", "VolatilityKernel"]

_MAX_BITS = 400
"""Beyond this scale the fast path is not used (results could leave the normal range)."""
_SMALL = 1 << 31


def _windows(held_ts: list[float], ts: Any, window: float) -> tuple[Any, Any, Any] | None:
    """``(timestamps, starts, ends)`` over held items + chunk, or ``None`` if not provable."""
    if not np.isfinite(ts).all():
        return None
    stamps = np.concatenate([np.asarray(held_ts, dtype=np.float64), ts])
    if len(stamps) > 1 and not (stamps[1:] >= stamps[:-1]).all():
        return None
    horizons = ts - window
    if not (horizons < ts).all():
        return None
    starts = np.searchsorted(stamps, horizons, side="right").astype(np.int64)
    held = len(held_ts)
    ends = np.arange(held + 1, held + len(ts) + 1, dtype=np.int64)
    return stamps, starts, ends


def _columns(items: Any, width: int) -> list[list[Any]]:
    """The held items (tuples of ``width`` fields) as ``width`` lists."""
    if not items:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*items, strict=True)]


def _concat(held: list[int], chunk: Any) -> Any:
    """Held Python integers followed by the chunk's (int64 when everything fits)."""
    fits = not held or (min(held) > -_SMALL * _SMALL and max(held) < _SMALL * _SMALL)
    if chunk.dtype != object and fits:
        return np.concatenate([np.array(held, dtype=np.int64), chunk])
    return np.concatenate([as_objects(np.array(held, dtype=object)), as_objects(chunk)])


def _tail(values: Any, start: int) -> list[int]:
    """``values[start:]`` as Python integers."""
    return list(values[start:].tolist())


def _report(rows: Any, failed: list[int], batch: Columns, fail: ErrorHandler) -> Any:
    """Report the rows whose division overflowed (as the per-event code raises on them) and
    return ``rows`` without them."""
    if not failed:
        return rows
    for row, event in zip(failed, batch.events(failed), strict=True):
        fail(row, event, OverflowError("integer division result too large for a float"))
    return np.setdiff1d(rows, np.asarray(failed, dtype=np.int64))


def _limbs_fit(held: list[int], x: Any, bits: int, most: int) -> bool:
    """Whether the chunk's exact integers (and the held ones) fit three int64 limbs."""
    if most >= 1 << 21 or bits > 900:
        return False
    exponent = int(np.frexp(np.abs(x).max())[1]) if len(x) else 0
    widest = max((abs(v).bit_length() for v in held), default=0)
    return exponent + bits <= limbs.MAX_BITS and widest <= limbs.MAX_BITS


def _split_ints(values: list[int]) -> tuple[Any, Any, Any]:
    mask = (1 << limbs.LIMB) - 1
    return (
        np.array([v >> (2 * limbs.LIMB) for v in values], dtype=np.int64),
        np.array([(v >> limbs.LIMB) & mask for v in values], dtype=np.int64),
        np.array([v & mask for v in values], dtype=np.int64),
    )


def _chunk_limbs(held: list[int], x: Any, bits: int) -> list[Any]:
    mantissa, exponent = np.frexp(x)
    ints = np.ldexp(mantissa, 53).astype(np.int64)
    chunk = limbs.limbs(ints, exponent.astype(np.int64) + (bits - 53))
    return [np.concatenate([h, c]) for h, c in zip(_split_ints(held), chunk, strict=True)]


def _imbalance_limbs(
    held: list[int], x: Any, bits: int, buys: Any, starts: Any, ends: Any, last: int
) -> tuple[Any, list[int], tuple[int, int]]:
    """TVI of every row from limb sums: ``(tvi, the last window's values, its buy and sell
    sums)``."""
    parts = _chunk_limbs(held, x, bits)
    buy = [range_sums(prefix_sums(np.where(buys, p, 0)), starts, ends) for p in parts]
    sell = [range_sums(prefix_sums(np.where(buys, 0, p)), starts, ends) for p in parts]
    top = tuple(b - s for b, s in zip(buy, sell, strict=True))
    total = limbs.normalize(*(b + s for b, s in zip(buy, sell, strict=True)))
    nonzero = np.flatnonzero((total[0] != 0) | (total[1] != 0) | (total[2] != 0))
    tvi = np.zeros(len(starts), dtype=np.float64)
    if len(nonzero):
        tvi[nonzero] = limbs.quotients(
            tuple(t[nonzero] for t in top), tuple(t[nonzero] for t in total)
        )
    ends_at = (limbs.to_int(*(b[-1:] for b in buy))[0], limbs.to_int(*(t[-1:] for t in sell))[0])
    return tvi, limbs.to_int(*(p[last:] for p in parts)), ends_at


def _set_scale(scale: Any, bits: int) -> None:
    scale.bits = bits
    scale.factor = math.ldexp(1.0, bits) if bits <= 900 else math.nan


def _fits(bound: int) -> bool:
    return bound < 1 << 62


class VolatilityKernel:
    """Columnar :class:`~featurizer_features.volatility.VolatilityWindow`.

    :param state: the window to carry (a fresh one is built by the definition).
    """

    names = ("timestamp", "receipt_timestamp", "volatility")

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Volatility of every row."""
        window = self.state
        if not batch.size:
            return empty_output(self.names)
        x = batch.floats(window._field)
        ts = batch.floats("timestamp")
        held_ts, held_values = _columns(window._items, 2)
        plan = _windows(held_ts, ts, window.window) if np.isfinite(x).all() else None
        bits = fraction_bits(x, window._scale.bits) if plan is not None else 0
        if plan is None or bits > _MAX_BITS:
            return per_event(window.update, batch, self.names, fail)
        stamps, starts, ends = plan
        grow = bits - window._scale.bits
        held = [v << grow for v in held_values] if grow else held_values
        values = _concat(held, scaled_ints(x, bits))
        counts = ends - starts
        most = int(counts.max())
        center = int(values[len(held)])
        with np.errstate(over="ignore"):
            centered = values - center if values.dtype != object else None
        wide = False
        if centered is not None:
            spread = int(np.abs(centered).max())
            if not _fits(most * most * spread * spread * 4):
                wide = spread < 1 << 52 and most < 1 << 22
                centered = centered if wide else None
        if wide:
            quotients, (first, second) = limbs.variance_ratios(centered, starts, ends)
            overflowed: list[int] = []
        else:
            if centered is None:
                centered = as_objects(values) - center
            s1 = range_sums(prefix_sums(centered), starts, ends)
            s2 = range_sums(prefix_sums(centered * centered), starts, ends)
            if centered.dtype == object:
                counts = as_objects(counts)
            numerators = counts * s2 - s1 * s1
            quotients, overflowed = true_divide(numerators, counts * counts)
            first, second = int(s1[-1]), int(s2[-1])
        variance = np.ldexp(quotients, -2 * bits)
        last = int(starts[-1])
        tail = _tail(values, last)
        window._items = collections.deque(zip(stamps[last:].tolist(), tail, strict=True))
        count = len(tail)
        window._sum = first + count * center
        window._sum_sq = second + 2 * center * first + count * center * center
        window._count = count
        _set_scale(window._scale, bits)
        rows = _report(np.arange(batch.size, dtype=np.int64), overflowed, batch, fail)
        data = {
            "timestamp": ts[rows],
            "receipt_timestamp": batch.floats("receipt_timestamp")[rows],
            "volatility": np.sqrt(variance[rows]),
        }
        return KernelOutput(rows=rows, columns=Columns(size=len(rows), data=data))


class TradeVolumeImbalanceKernel:
    """Columnar :class:`~featurizer_features.trade_volume_imbalance.TradeVolumeImbalanceWindow`.

    :param state: the window to carry.
    """

    names = ("timestamp", "receipt_timestamp", "tvi")

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Imbalance of every trade row."""
        window = self.state
        if not batch.size:
            return empty_output(self.names)
        amounts = batch.floats("amount")
        ts = batch.floats("timestamp")
        held_ts, held_values, held_flags = _columns(window._items, 3)
        plan = _windows(held_ts, ts, window.window) if np.isfinite(amounts).all() else None
        bits = fraction_bits(amounts, window._scale.bits) if plan is not None else 0
        if plan is None or bits > _MAX_BITS:
            return per_event(window.update, batch, self.names, fail)
        stamps, starts, ends = plan
        grow = bits - window._scale.bits
        held = [v << grow for v in held_values] if grow else held_values
        held_buys = np.array(held_flags, dtype=bool)
        buys = np.concatenate([held_buys, batch.equals("side", "buy")])
        most = int((ends - starts).max())
        last = int(starts[-1])
        overflowed: list[int] = []
        sums: tuple[int, int] | None = None
        if _limbs_fit(held, amounts, bits, most):
            tvi, tail, sums = _imbalance_limbs(held, amounts, bits, buys, starts, ends, last)
        else:
            values = _concat(held, scaled_ints(amounts, bits))
            if values.dtype != object and not _fits(most * int(np.abs(values).max()) * 2):
                values = as_objects(values)
            bought = np.where(buys, values, 0)
            sold = np.where(buys, 0, values)
            buy = range_sums(prefix_sums(bought), starts, ends)
            sell = range_sums(prefix_sums(sold), starts, ends)
            totals = buy + sell
            tvi = np.zeros(batch.size, dtype=np.float64)
            divided = np.flatnonzero(totals != 0)
            if len(divided):
                quotients, failed = true_divide((buy - sell)[divided], totals[divided])
                tvi[divided] = quotients
                overflowed = divided[failed].tolist()
            tail = _tail(values, last)
        flags = buys[last:].tolist()
        window._items = collections.deque(zip(stamps[last:].tolist(), tail, flags, strict=True))
        if sums is None:
            sums = (
                sum(v for v, b in zip(tail, flags, strict=True) if b),
                sum(v for v, b in zip(tail, flags, strict=True) if not b),
            )
        window._buy, window._sell = sums
        _set_scale(window._scale, bits)
        rows = _report(np.arange(batch.size, dtype=np.int64), overflowed, batch, fail)
        data = {
            "timestamp": ts[rows],
            "receipt_timestamp": batch.floats("receipt_timestamp")[rows],
            "tvi": tvi[rows],
        }
        return KernelOutput(rows=rows, columns=Columns(size=len(rows), data=data))


class VWAPKernel:
    """Columnar :class:`~featurizer_features.vwap.VWAPWindow`.

    :param state: the window to carry.
    """

    names = ("timestamp", "receipt_timestamp", "vwap")

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """VWAP of every trade row whose window holds a non-zero amount."""
        window = self.state
        if not batch.size:
            return empty_output(self.names)
        prices = batch.floats("price")
        amounts = batch.floats("amount")
        ts = batch.floats("timestamp")
        finite = np.isfinite(prices).all() and np.isfinite(amounts).all()
        held_ts, held_notionals, held_amounts = _columns(window._items, 3)
        plan = _windows(held_ts, ts, window.window) if finite else None
        bits = (
            fraction_bits(amounts, fraction_bits(prices, window._scale.bits))
            if plan is not None
            else 0
        )
        if plan is None or bits > _MAX_BITS:
            return per_event(window.update, batch, self.names, fail)
        stamps, starts, ends = plan
        grow = bits - window._scale.bits
        held_notional = [n << (2 * grow) for n in held_notionals]
        held_amount = [a << grow for a in held_amounts]
        price_ints = scaled_ints(prices, bits, limit=_SMALL)
        amount_ints = scaled_ints(amounts, bits, limit=_SMALL)
        if object in (price_ints.dtype, amount_ints.dtype):
            price_ints, amount_ints = as_objects(price_ints), as_objects(amount_ints)
        notional = _concat(held_notional, price_ints * amount_ints)
        amount = _concat(held_amount, amount_ints)
        most = int((ends - starts).max())
        if notional.dtype != object and not _fits(most * int(np.abs(notional).max()) * 2):
            notional = as_objects(notional)
        if amount.dtype != object and not _fits(most * int(np.abs(amount).max()) * 2):
            amount = as_objects(amount)
        sums = range_sums(prefix_sums(notional), starts, ends)
        volume = range_sums(prefix_sums(amount), starts, ends)
        rows = np.flatnonzero(volume != 0)
        denominators = volume[rows]
        if denominators.dtype != object and _fits(int(np.abs(denominators).max(initial=0)) << bits):
            denominators = denominators << bits
        else:
            denominators = as_objects(denominators) << bits
        vwap, failed = true_divide(sums[rows], denominators)
        if failed:
            keep = np.ones(len(rows), dtype=bool)
            keep[failed] = False
            _report(rows, rows[failed].tolist(), batch, fail)
            rows, vwap = rows[keep], vwap[keep]
        last = int(starts[-1])
        notional_tail = _tail(notional, last)
        amount_tail = _tail(amount, last)
        window._items = collections.deque(
            zip(stamps[last:].tolist(), notional_tail, amount_tail, strict=True)
        )
        window._notional = sum(notional_tail)
        window._amount = sum(amount_tail)
        _set_scale(window._scale, bits)
        data = {
            "timestamp": ts[rows],
            "receipt_timestamp": batch.floats("receipt_timestamp")[rows],
            "vwap": vwap,
        }
        return KernelOutput(rows=rows.astype(np.int64), columns=Columns(size=len(rows), data=data))
