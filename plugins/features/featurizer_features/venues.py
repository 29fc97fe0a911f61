"""Features for venues side by side: the spread from the book's top, and a cross-venue basis.

Not every exchange has a ticker channel (Coinbase, Gemini, Bitstamp, ... through cryptofeed):
there the mid price comes from the book (the standard ``mid_price_l2``) and the relative
spread from :class:`RelativeSpreadL2`. :class:`Basis` compares one venue's mid price with a
reference venue's, whichever way each was computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Schema
from featurizer_features.l2_snapshot import L2Snapshot
from featurizer_features.mid_price import MidPrice

__all__ = ["Basis", "RelativeSpreadL2", "basis_of", "spread_from_snapshot"]


def spread_from_snapshot(event: Event) -> Event | None:
    """``(best ask - best bid) / mid`` of an ``l2_snapshot`` event; ``None`` if a side is empty.

    >>> spread_from_snapshot({"timestamp": 1.0, "receipt_timestamp": 1.5,
    ...                       "bids": ((99.0, 1.0),), "asks": ((101.0, 2.0),)})["relative_spread"]
    0.02
    """
    bids = event["bids"]
    asks = event["asks"]
    if not bids or not asks:
        return None
    bid = bids[0][0]
    ask = asks[0][0]
    mid = (bid + ask) / 2.0
    if mid == 0.0:
        return None
    return {
        "timestamp": event["timestamp"],
        "receipt_timestamp": event["receipt_timestamp"],
        "relative_spread": (ask - bid) / mid,
    }


def basis_of(pair: tuple[Event, Event]) -> Event | None:
    """``venue mid / reference mid - 1`` of the latest mid of each (``None`` for a zero mid).

    >>> event = basis_of(({"timestamp": 2.0, "receipt_timestamp": 2.5, "mid_price": 101.0},
    ...                   {"timestamp": 1.0, "receipt_timestamp": 1.5, "mid_price": 100.0}))
    >>> round(event["basis"], 12), event["timestamp"]
    (0.01, 2.0)
    """
    venue, reference = pair
    if reference["mid_price"] == 0.0:
        return None
    return {
        "timestamp": max(venue["timestamp"], reference["timestamp"]),
        "receipt_timestamp": max(venue["receipt_timestamp"], reference["receipt_timestamp"]),
        "basis": venue["mid_price"] / reference["mid_price"] - 1.0,
    }


class RelativeSpreadL2(FeatureDefinition):
    """Relative spread from the L2 book: ``(best ask - best bid) / mid``.

    One output per ``l2_snapshot`` event whose two sides are non-empty; the same field as
    ``relative_spread``, for venues without a ticker.
    """

    name = "relative_spread_l2"
    description = "(best ask - best bid) / mid from the reconstructed L2 book"

    @classmethod
    def event_schema(cls) -> Schema:
        """``relative_spread``."""
        return {"relative_spread": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``l2_snapshot``."""
        return {"l2_snapshot": L2Snapshot}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """A single ``map``."""
        return upstreams["l2_snapshot"].map(spread_from_snapshot)

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.RelativeSpreadL2Kernel`)."""
        from featurizer_features.batch import RelativeSpreadL2Kernel

        return RelativeSpreadL2Kernel()


class Basis(FeatureDefinition):
    """Cross-venue basis: ``venue mid / reference mid - 1``, on every new mid of either.

    Both dependencies provide ``mid_price`` (``mid_price`` from a ticker, or ``mid_price_l2``
    from a book: name the entries with ``deps``). Nothing is output until both have a value;
    the timestamp is the later of the two mids'.
    """

    name = "basis"
    description = "venue mid / reference mid - 1 (cross-venue basis)"

    @classmethod
    def event_schema(cls) -> Schema:
        """``basis``."""
        return {"basis": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``venue`` and ``reference``: mid prices."""
        return {"venue": MidPrice, "reference": MidPrice}

    @classmethod
    def stream(cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]) -> Stream:
        """``combine_latest`` of the two mids, then a ``map``."""
        return upstreams["venue"].combine_latest(upstreams["reference"]).map(basis_of)
