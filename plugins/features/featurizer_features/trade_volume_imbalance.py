"""Trade volume imbalance over a trailing time window."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features._exact import FixedPointScale
from featurizer_features.sources import TradesSource

__all__ = ["TradeVolumeImbalance", "TradeVolumeImbalanceWindow"]


class TradeVolumeImbalanceWindow:
    """``(buy - sell) / (buy + sell)`` of traded amounts over a trailing window.

    Same window rule as :class:`~featurizer_features.volatility.VolatilityWindow`. When both
    volumes are zero the imbalance is ``0.0``. Sums are exact, so the value equals the
    brute-force fraction correctly rounded, even when the imbalance is near zero.

    :param window: the window length in seconds.
    """

    __slots__ = ("_buy", "_items", "_scale", "_sell", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._items: collections.deque[tuple[float, int, bool]] = collections.deque()
        self._scale = FixedPointScale()
        self._buy = 0
        self._sell = 0

    def _exact(self, x: float) -> int:
        """Slow path of the conversion: grow the scale (shifting what is held) if needed."""
        value, grown = self._scale.to_int(x)
        if grown:
            self._items = collections.deque((ts, v << grown, b) for ts, v, b in self._items)
            self._buy <<= grown
            self._sell <<= grown
        return value

    def update(self, event: Event) -> Event:
        """Add the trade, evict what left the window, return the imbalance event."""
        ts = event["timestamp"]
        x = event["amount"]
        scaled = x * self._scale.factor
        try:
            amount = int(scaled)
        except (OverflowError, ValueError):
            amount = self._exact(x)
        if amount != scaled:
            amount = self._exact(x)
        is_buy = event["side"] == "buy"
        items = self._items
        items.append((ts, amount, is_buy))
        if is_buy:
            self._buy += amount
        else:
            self._sell += amount
        horizon = ts - self.window
        while items[0][0] <= horizon:
            _, old, old_buy = items.popleft()
            if old_buy:
                self._buy -= old
            else:
                self._sell -= old
        total = self._buy + self._sell
        return {
            "timestamp": ts,
            "receipt_timestamp": event["receipt_timestamp"],
            "tvi": (self._buy - self._sell) / total if total else 0.0,
        }


class TradeVolumeImbalance(FeatureDefinition):
    """Imbalance between buyer- and seller-initiated traded amount over a trailing window."""

    name = "trade_volume_imbalance"
    description = "(buy - sell) / (buy + sell) traded amount over a trailing window"
    params: ClassVar[Mapping[str, Param]] = {
        "window": Param(kind="duration", default=60.0, doc="trailing window, e.g. 60 or '1m'")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """``tvi`` in [-1, 1]."""
        return {"tvi": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``trades``."""
        return {"trades": TradesSource}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, TradeVolumeImbalanceWindow]:
        """A ``map`` over a :class:`TradeVolumeImbalanceWindow` (returned as the state)."""
        window = TradeVolumeImbalanceWindow(params["window"])
        return upstreams["trades"].map(window.update), window

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel, carrying a :class:`TradeVolumeImbalanceWindow`."""
        from featurizer_features.batch import TradeVolumeImbalanceKernel

        window = state if state is not None else TradeVolumeImbalanceWindow(params["window"])
        return TradeVolumeImbalanceKernel(window)
