"""OHLCV: open, high, low, close and volume bars of trades in event-time buckets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features._exact import FixedPointScale
from featurizer_features.sources import TradesSource

__all__ = ["OHLCV", "OHLCVBars", "bucket_start"]


def bucket_start(timestamp: float, interval: float) -> float:
    """``floor(timestamp / interval) * interval``, in float.

    >>> bucket_start(125.0, 60.0)
    120.0
    """
    return math.floor(timestamp / interval) * interval


class OHLCVBars:
    """Builds one bar per bucket of trades and emits it when the bucket is over.

    A trade belongs to the bucket starting at :func:`bucket_start` of its timestamp. The bar of
    a bucket is emitted when the first trade of a later bucket arrives, at that trade's
    ``timestamp`` and ``receipt_timestamp`` (the moment the bar became known, so outputs never
    precede their input); its ``bucket_start`` field says which bucket it describes. Buckets
    without trades produce no bar, and the last bucket's bar is not emitted until a later trade
    arrives. Timestamps must not decrease (a trade of an earlier bucket joins the current bar).

    ``volume`` is the exact sum of amounts correctly rounded, ``vwap`` the exact
    ``sum(price * amount) / sum(amount)`` correctly rounded (the ``close`` when the volume is
    zero), ``count`` the number of trades.

    :param interval: the bucket length in seconds.

    >>> bars = OHLCVBars(60.0)
    >>> def trade(ts, price, amount):
    ...     return {"timestamp": ts, "receipt_timestamp": ts, "price": price, "amount": amount,
    ...             "side": "buy", "trade_id": "t"}
    >>> bars.update(trade(61.0, 10.0, 1.0)), bars.update(trade(119.5, 12.0, 3.0))
    (None, None)
    >>> bar = bars.update(trade(185.0, 11.0, 1.0))
    >>> bar["timestamp"], bar["bucket_start"], bar["open"], bar["close"], bar["vwap"]
    (185.0, 60.0, 10.0, 12.0, 11.5)
    """

    __slots__ = (
        "_close",
        "_count",
        "_high",
        "_low",
        "_notional",
        "_open",
        "_scale",
        "_start",
        "_volume",
        "interval",
    )

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._scale = FixedPointScale()
        self._start: float | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._count = 0
        self._notional = 0
        self._volume = 0

    def _bar(self, event: Event) -> Event:
        volume = self._volume
        bits = self._scale.bits
        return {
            "timestamp": event["timestamp"],
            "receipt_timestamp": event["receipt_timestamp"],
            "open": self._open,
            "high": self._high,
            "low": self._low,
            "close": self._close,
            "volume": volume / (1 << bits),
            "vwap": self._notional / (volume << bits) if volume else self._close,
            "count": self._count,
            "bucket_start": self._start,
        }

    def update(self, event: Event) -> Event | None:
        """Add the trade; return the previous bucket's bar if this trade starts a new bucket."""
        start = math.floor(event["timestamp"] / self.interval) * self.interval
        price = event["price"]
        bar = None
        current = self._start
        if current is None or start > current:
            if current is not None:
                bar = self._bar(event)
            self._start = start
            self._open = self._high = self._low = price
            self._count = 0
            self._notional = 0
            self._volume = 0
        elif price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._count += 1
        scale = self._scale
        price_int, grown = scale.to_int(price)
        amount, grown_amount = scale.to_int(event["amount"])
        if grown_amount:
            price_int <<= grown_amount
            grown += grown_amount
        if grown:
            self._notional <<= 2 * grown
            self._volume <<= grown
        self._notional += price_int * amount
        self._volume += amount
        return bar


class OHLCV(FeatureDefinition):
    """Open, high, low, close, volume, VWAP and trade count per event-time bucket of trades.

    Buckets are ``[k * interval, (k + 1) * interval)`` of the trades' ``timestamp``. A bucket's
    bar is emitted when the first trade of a later bucket arrives and carries that trade's
    timestamps; ``bucket_start`` identifies the bucket. Empty buckets produce no bar. See
    :class:`OHLCVBars`.
    """

    name = "ohlcv"
    description = "open/high/low/close/volume bars of trades in event-time buckets"
    params: ClassVar[Mapping[str, Param]] = {
        "interval": Param(kind="duration", default=60.0, doc="bucket length, e.g. 60 or '1m'")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """The bar: OHLC prices, ``volume``, ``vwap``, ``count`` and ``bucket_start``."""
        return {
            "open": float,
            "high": float,
            "low": float,
            "close": float,
            "volume": float,
            "vwap": float,
            "count": int,
            "bucket_start": float,
        }

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``trades``."""
        return {"trades": TradesSource}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, OHLCVBars]:
        """A ``map`` over an :class:`OHLCVBars` (returned as the state)."""
        bars = OHLCVBars(params["interval"])
        return upstreams["trades"].map(bars.update), bars

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel, carrying an :class:`OHLCVBars` (``state`` or a new one)."""
        from featurizer_features.batch import OHLCVKernel

        return OHLCVKernel(state if state is not None else OHLCVBars(params["interval"]))
