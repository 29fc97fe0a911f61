"""Mid price from the reconstructed L2 book."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Schema
from featurizer_features.l2_snapshot import L2Snapshot

__all__ = ["MidPriceL2", "mid_from_snapshot"]


def mid_from_snapshot(event: Event) -> Event | None:
    """``(best bid + best ask) / 2`` of an ``l2_snapshot`` event; ``None`` if a side is empty.

    >>> mid_from_snapshot({"timestamp": 1.0, "receipt_timestamp": 1.5,
    ...                    "bids": ((99.0, 1.0),), "asks": ((101.0, 2.0),)})["mid_price"]
    100.0
    """
    bids = event["bids"]
    asks = event["asks"]
    if not bids or not asks:
        return None
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        "mid_price": (bids[0][0] + asks[0][0]) / 2.0,
    }


class MidPriceL2(FeatureDefinition):
    """Mid price from the L2 book: ``(best bid + best ask) / 2``.

    One output per ``l2_snapshot`` event whose two sides are non-empty (none while either side
    is empty, nor while the book is out of sync after a gap). It provides the same
    ``mid_price`` field as :class:`~featurizer_features.mid_price.MidPrice`, so it can replace
    it as the ``mid`` dependency of ``volatility``.
    """

    name = "mid_price_l2"
    description = "(best bid + best ask) / 2 from the reconstructed L2 book"

    @classmethod
    def event_schema(cls) -> Schema:
        """``mid_price``."""
        return {"mid_price": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``l2_snapshot``."""
        return {"l2_snapshot": L2Snapshot}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """A single ``map``."""
        return upstreams["l2_snapshot"].map(mid_from_snapshot)

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.MidPriceL2Kernel`)."""
        from featurizer_features.batch import MidPriceL2Kernel

        return MidPriceL2Kernel()
