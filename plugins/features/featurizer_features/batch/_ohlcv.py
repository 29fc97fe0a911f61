"""Kernel of OHLCV bars: buckets found with a running maximum, exact sums per bar.

A trade starts a new bar when its bucket start is above every bucket start seen before (the
per-event rule ``start > current``); the bars of a chunk are then contiguous row ranges.
Highs and lows are ``reduceat`` maxima and minima (the per-event ``elif`` chain gives the same
values when no price is zero or NaN), volumes and notionals exact integer sums at the bars'
binary scale. The few emitted bars are assembled in Python, with the same correctly rounded
``int / int`` divisions as :class:`~featurizer_features.ohlcv.OHLCVBars`, which is left as the
per-event code leaves it. Chunks with non-finite values, zero prices or a division that
overflows run through the per-event ``update``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featurizer.batch import Columns, ErrorHandler, KernelOutput, columns_from_events
from featurizer_features.batch._exact import (
    as_objects,
    fraction_bits,
    prefix_sums,
    range_sums,
    scaled_ints,
)
from featurizer_features.batch._fallback import empty_output, per_event

__all__ = ["OHLCVKernel"]

_MAX_BITS = 400
_SMALL = 1 << 31


def _segment_sums(values: Any, starts: Any, ends: Any) -> list[int]:
    most = int((ends - starts).max(initial=0))
    if values.dtype != object and not most * int(np.abs(values).max(initial=0)) < 1 << 62:
        values = as_objects(values)
    return list(range_sums(prefix_sums(values), starts, ends).tolist())


class OHLCVKernel:
    """Columnar :class:`~featurizer_features.ohlcv.OHLCVBars`.

    :param state: the bars to carry.
    """

    names = (
        "timestamp",
        "receipt_timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "vwap",
        "count",
        "bucket_start",
    )

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """The bars completed by this chunk's trades."""
        bars = self.state
        if not batch.size:
            return empty_output(self.names)
        ts = batch.floats("timestamp")
        prices = batch.floats("price")
        amounts = batch.floats("amount")
        finite = np.isfinite(ts).all() and np.isfinite(prices).all() and np.isfinite(amounts).all()
        if not finite or (prices == 0.0).any():
            return per_event(bars.update, batch, self.names, fail)
        with np.errstate(all="ignore"):
            starts = np.floor(ts / bars.interval) * bars.interval
        bits = fraction_bits(amounts, fraction_bits(prices, bars._scale.bits))
        if not np.isfinite(starts).all() or bits > _MAX_BITS:
            return per_event(bars.update, batch, self.names, fail)
        result = self._fast(batch, ts, prices, amounts, starts, bits)
        if result is None:
            return per_event(bars.update, batch, self.names, fail)
        return result

    def _fast(
        self, batch: Columns, ts: Any, prices: Any, amounts: Any, starts: Any, bits: int
    ) -> KernelOutput | None:
        bars = self.state
        n = batch.size
        current = bars._start
        prior = -math.inf if current is None else current
        running = np.maximum.accumulate(np.concatenate([[prior], starts]))
        firsts = np.flatnonzero(starts > running[:-1])
        lead = int(firsts[0]) if len(firsts) else n
        ends = np.append(firsts[1:], n) if len(firsts) else np.zeros(0, dtype=np.int64)
        price_ints = scaled_ints(prices, bits, limit=_SMALL)
        amount_ints = scaled_ints(amounts, bits, limit=_SMALL)
        if object in (price_ints.dtype, amount_ints.dtype):
            price_ints, amount_ints = as_objects(price_ints), as_objects(amount_ints)
        notionals = price_ints * amount_ints
        seg_starts = np.concatenate([[0], firsts]).astype(np.int64)
        seg_ends = np.concatenate([[lead], ends]).astype(np.int64)
        notional = _segment_sums(notionals, seg_starts, seg_ends)
        volume = _segment_sums(amount_ints, seg_starts, seg_ends)
        grow = bits - bars._scale.bits
        segments: list[dict[str, Any]] = []
        if current is not None:
            head = prices[:lead]
            segments.append(
                {
                    "open": bars._open,
                    "high": max(bars._high, float(head.max())) if lead else bars._high,
                    "low": min(bars._low, float(head.min())) if lead else bars._low,
                    "close": float(prices[lead - 1]) if lead else bars._close,
                    "count": bars._count + lead,
                    "bucket_start": current,
                    "notional": (bars._notional << (2 * grow)) + notional[0],
                    "volume": (bars._volume << grow) + volume[0],
                }
            )
        if len(firsts):
            highs = np.maximum.reduceat(prices, firsts).tolist()
            lows = np.minimum.reduceat(prices, firsts).tolist()
            opens = prices[firsts].tolist()
            closes = prices[ends - 1].tolist()
            buckets = starts[firsts].tolist()
            counts = (ends - firsts).tolist()
            for k in range(len(firsts)):
                segments.append(
                    {
                        "open": opens[k],
                        "high": highs[k],
                        "low": lows[k],
                        "close": closes[k],
                        "count": counts[k],
                        "bucket_start": buckets[k],
                        "notional": notional[k + 1],
                        "volume": volume[k + 1],
                    }
                )
        emit_rows = firsts if current is not None else firsts[1:]
        stamps = ts[emit_rows].tolist()
        receipts = batch.floats("receipt_timestamp")[emit_rows].tolist()
        events = []
        try:
            for segment, stamp, receipt in zip(segments, stamps, receipts, strict=False):
                vol = segment["volume"]
                events.append(
                    {
                        "timestamp": stamp,
                        "receipt_timestamp": receipt,
                        "open": segment["open"],
                        "high": segment["high"],
                        "low": segment["low"],
                        "close": segment["close"],
                        "volume": vol / (1 << bits),
                        "vwap": segment["notional"] / (vol << bits) if vol else segment["close"],
                        "count": segment["count"],
                        "bucket_start": segment["bucket_start"],
                    }
                )
        except OverflowError:
            return None
        last = segments[-1]
        bars._start = last["bucket_start"]
        bars._open, bars._high, bars._low = last["open"], last["high"], last["low"]
        bars._close, bars._count = last["close"], last["count"]
        bars._notional, bars._volume = last["notional"], last["volume"]
        bars._scale.bits = bits
        bars._scale.factor = math.ldexp(1.0, bits) if bits <= 900 else math.nan
        return KernelOutput(
            rows=np.asarray(emit_rows, dtype=np.int64),
            columns=columns_from_events(events, self.names),
        )
