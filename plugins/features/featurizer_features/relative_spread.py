"""Relative spread: the bid-ask spread as a fraction of the mid price."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Schema
from featurizer_features.sources import TickerSource

__all__ = ["RelativeSpread", "relative_spread_from_ticker"]


def relative_spread_from_ticker(event: Event) -> Event | None:
    """``(ask - bid) / mid`` with ``mid = (bid + ask) / 2``; ``None`` when ``mid`` is zero.

    Computed in float, in that order, so ``mid`` is exactly the ``mid_price`` feature's value.

    >>> relative_spread_from_ticker({"timestamp": 1.0, "receipt_timestamp": 1.0, "bid": 99.0,
    ...                              "ask": 101.0, "bid_size": 1.0, "ask_size": 1.0})
    {'timestamp': 1.0, 'receipt_timestamp': 1.0, 'relative_spread': 0.02}
    """
    bid = event["bid"]
    ask = event["ask"]
    mid = (bid + ask) / 2.0
    if mid == 0.0:
        return None
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        "relative_spread": (ask - bid) / mid,
    }


class RelativeSpread(FeatureDefinition):
    """Relative spread from the ticker: ``(ask - bid) / ((bid + ask) / 2)``.

    One output per ticker event (none when the mid price is zero).
    """

    name = "relative_spread"
    description = "(ask - bid) / mid from the ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        """``relative_spread``."""
        return {"relative_spread": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``ticker``."""
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """A single ``map``."""
        return upstreams["ticker"].map(relative_spread_from_ticker)

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.RelativeSpreadKernel`)."""
        from featurizer_features.batch import RelativeSpreadKernel

        return RelativeSpreadKernel()
