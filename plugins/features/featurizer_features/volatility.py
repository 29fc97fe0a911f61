"""Volatility: population standard deviation of the mid price over a trailing time window."""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features._exact import FixedPointScale
from featurizer_features.mid_price import MidPrice

__all__ = ["Volatility", "VolatilityWindow"]


class VolatilityWindow:
    """Trailing-window population stddev of one float field, O(1) amortised per event.

    The window at an event with timestamp ``t`` holds the values of events with
    ``timestamp > t - window`` (the subtraction done in float), the current one included;
    timestamps must not decrease. Sums are exact (see :mod:`featurizer_features._exact`), so
    the result equals ``sqrt(float(pvariance))`` of the window computed with fractions.

    :param window: the window length in seconds.
    :param field: the input field to read.
    """

    __slots__ = ("_count", "_field", "_items", "_scale", "_sum", "_sum_sq", "window")

    def __init__(self, window: float, field: str = "mid_price") -> None:
        self.window = window
        self._field = field
        self._items: collections.deque[tuple[float, int]] = collections.deque()
        self._scale = FixedPointScale()
        self._count = 0
        self._sum = 0
        self._sum_sq = 0

    def _exact(self, x: float) -> int:
        """Slow path of the conversion: grow the scale (shifting what is held) if needed."""
        value, grown = self._scale.to_int(x)
        if grown:
            self._items = collections.deque((ts, v << grown) for ts, v in self._items)
            self._sum <<= grown
            self._sum_sq <<= 2 * grown
        return value

    def update(self, event: Event) -> Event:
        """Add ``event``, evict what left the window, return the volatility event."""
        ts = event["timestamp"]
        x = event[self._field]
        scaled = x * self._scale.factor
        try:
            value = int(scaled)
        except (OverflowError, ValueError):
            value = self._exact(x)
        if value != scaled:
            value = self._exact(x)
        items = self._items
        items.append((ts, value))
        self._sum += value
        self._sum_sq += value * value
        count = self._count + 1
        horizon = ts - self.window
        while items[0][0] <= horizon:
            old = items.popleft()[1]
            self._sum -= old
            self._sum_sq -= old * old
            count -= 1
        self._count = count
        numerator = count * self._sum_sq - self._sum * self._sum
        variance = numerator / ((count * count) << (2 * self._scale.bits))
        return {
            "timestamp": ts,
            "receipt_timestamp": event["receipt_timestamp"],
            "volatility": math.sqrt(variance),
        }


class Volatility(FeatureDefinition):
    """Population standard deviation of the mid price over a trailing event-time window."""

    name = "volatility"
    description = "population stddev of mid price over a trailing window"
    params: ClassVar[Mapping[str, Param]] = {
        "window": Param(kind="duration", default=60.0, doc="trailing window, e.g. 60 or '1m'")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """``volatility``."""
        return {"volatility": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``mid``: any feature providing a ``mid_price`` float."""
        return {"mid": MidPrice}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, VolatilityWindow]:
        """A ``map`` over a :class:`VolatilityWindow` (returned as the state)."""
        window = VolatilityWindow(params["window"])
        return upstreams["mid"].map(window.update), window

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel, carrying a :class:`VolatilityWindow` (``state`` or a new one)."""
        from featurizer_features.batch import VolatilityKernel

        return VolatilityKernel(state if state is not None else VolatilityWindow(params["window"]))
