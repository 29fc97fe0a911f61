"""VWAP: volume-weighted average trade price over a trailing time window."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features._exact import FixedPointScale
from featurizer_features.sources import TradesSource

__all__ = ["VWAP", "VWAPWindow"]


class VWAPWindow:
    """``sum(price * amount) / sum(amount)`` of the trades in a trailing window.

    Same window rule as :class:`~featurizer_features.volatility.VolatilityWindow`: the window
    at a trade with timestamp ``t`` holds the trades with ``timestamp > t - window`` (the
    subtraction done in float), the current one included. Prices and amounts are held as
    integers at one binary scale, so products and sums are exact and the result equals the
    brute-force fraction correctly rounded, however long the stream. No output while the
    window's total amount is zero.

    :param window: the window length in seconds.

    >>> vwap = VWAPWindow(10.0)
    >>> def trade(ts, price, amount):
    ...     return {"timestamp": ts, "receipt_timestamp": ts, "price": price, "amount": amount,
    ...             "side": "buy", "trade_id": "t"}
    >>> vwap.update(trade(0.0, 100.0, 1.0))["vwap"], vwap.update(trade(5.0, 103.0, 2.0))["vwap"]
    (100.0, 102.0)
    >>> vwap.update(trade(10.0, 90.0, 2.0))["vwap"]  # the trade at 0.0 left the window
    96.5
    """

    __slots__ = ("_amount", "_items", "_notional", "_scale", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._items: collections.deque[tuple[float, int, int]] = collections.deque()
        self._scale = FixedPointScale()
        self._notional = 0
        self._amount = 0

    def _grow(self, bits: int) -> None:
        double = 2 * bits
        self._items = collections.deque((ts, pa << double, a << bits) for ts, pa, a in self._items)
        self._notional <<= double
        self._amount <<= bits

    def update(self, event: Event) -> Event | None:
        """Add the trade, evict what left the window, return the VWAP event (or ``None``)."""
        ts = event["timestamp"]
        scale = self._scale
        price, grown = scale.to_int(event["price"])
        amount, grown_amount = scale.to_int(event["amount"])
        if grown_amount:
            price <<= grown_amount
            grown += grown_amount
        if grown:
            self._grow(grown)
        notional = price * amount
        items = self._items
        items.append((ts, notional, amount))
        self._notional += notional
        self._amount += amount
        horizon = ts - self.window
        while items[0][0] <= horizon:
            _, old_notional, old_amount = items.popleft()
            self._notional -= old_notional
            self._amount -= old_amount
        if not self._amount:
            return None
        return {
            "timestamp": ts,
            "receipt_timestamp": event["receipt_timestamp"],
            "vwap": self._notional / (self._amount << scale.bits),
        }


class VWAP(FeatureDefinition):
    """Volume-weighted average trade price over a trailing event-time window."""

    name = "vwap"
    description = "volume-weighted average trade price over a trailing window"
    params: ClassVar[Mapping[str, Param]] = {
        "window": Param(kind="duration", default=60.0, doc="trailing window, e.g. 60 or '1m'")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """``vwap``."""
        return {"vwap": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``trades``."""
        return {"trades": TradesSource}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, VWAPWindow]:
        """A ``map`` over a :class:`VWAPWindow` (returned as the state)."""
        window = VWAPWindow(params["window"])
        return upstreams["trades"].map(window.update), window

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel, carrying a :class:`VWAPWindow` (``state`` or a new one)."""
        from featurizer_features.batch import VWAPKernel

        return VWAPKernel(state if state is not None else VWAPWindow(params["window"]))
