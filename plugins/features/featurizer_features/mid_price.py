"""Mid price: the average of best bid and best ask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Schema
from featurizer_features.sources import TickerSource

__all__ = ["MidPrice", "mid_from_ticker"]


def mid_from_ticker(event: Event) -> Event:
    """``(bid + ask) / 2`` at the ticker's timestamps."""
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        "mid_price": (event["bid"] + event["ask"]) / 2.0,
    }


class MidPrice(FeatureDefinition):
    """Mid price from the ticker: ``(bid + ask) / 2``, one output per ticker event."""

    name = "mid_price"
    description = "(bid + ask) / 2 from the ticker"

    @classmethod
    def event_schema(cls) -> Schema:
        """``mid_price``."""
        return {"mid_price": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``ticker``."""
        return {"ticker": TickerSource}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """A single ``map``."""
        return upstreams["ticker"].map(mid_from_ticker)

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.MidPriceKernel`)."""
        from featurizer_features.batch import MidPriceKernel

        return MidPriceKernel()
