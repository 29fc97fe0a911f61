"""Order book imbalance over the top levels of the L2 book."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features._exact import FixedPointScale
from featurizer_features.l2_snapshot import L2Snapshot

__all__ = ["BookImbalance", "OrderBookImbalance"]

Level = tuple[float, float]


class BookImbalance:
    """``(bid size - ask size) / (bid size + ask size)`` over the top ``depth`` levels.

    Sums are exact (:mod:`featurizer_features._exact`), so the value is the exact fraction
    correctly rounded; it is ``0.0`` when both sums are zero (an empty book).

    :param depth: how many levels per side to sum (at most the snapshot's own depth).

    >>> obi = BookImbalance(depth=1)
    >>> obi.update({"timestamp": 1.0, "receipt_timestamp": 1.0,
    ...             "bids": ((99.0, 3.0), (98.0, 50.0)), "asks": ((101.0, 1.0),)})["obi"]
    0.5
    """

    __slots__ = ("_scale", "depth")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._scale = FixedPointScale()

    def _exact_sums(self, bids: Sequence[Level], asks: Sequence[Level]) -> tuple[int, int]:
        """Both sums at the scale's (possibly grown) resolution."""
        to_int = self._scale.to_int
        bid = 0
        ask = 0
        for _, size in bids:
            value, grown = to_int(size)
            bid = (bid << grown) + value
        for _, size in asks:
            value, grown = to_int(size)
            bid <<= grown
            ask = (ask << grown) + value
        return bid, ask

    def update(self, event: Event) -> Event:
        """Return the imbalance event of one ``l2_snapshot`` event."""
        return {
            "timestamp": event["timestamp"],
            "receipt_timestamp": event["receipt_timestamp"],
            "obi": self.value(event["bids"], event["asks"]),
        }

    def value(self, bids: Sequence[Level], asks: Sequence[Level]) -> float:
        """The imbalance of one snapshot's sides (the backfill kernel calls it directly)."""
        depth = self.depth
        bids = bids[:depth]
        asks = asks[:depth]
        # Fast path: every size is an integer at the current scale (the usual case once the
        # scale has grown to the sizes' resolution); otherwise grow it through ``to_int``.
        factor = self._scale.factor
        bid = 0
        ask = 0
        try:
            for _, size in bids:
                scaled = size * factor
                value = int(scaled)
                if value != scaled:
                    raise ArithmeticError
                bid += value
            for _, size in asks:
                scaled = size * factor
                value = int(scaled)
                if value != scaled:
                    raise ArithmeticError
                ask += value
        except (ArithmeticError, ValueError):
            bid, ask = self._exact_sums(bids, asks)
        total = bid + ask
        return (bid - ask) / total if total else 0.0


class OrderBookImbalance(FeatureDefinition):
    """Imbalance between resting bid and ask size over the top ``depth`` levels of the book.

    One output per ``l2_snapshot`` event, in [-1, 1]; ``0.0`` when both sides are empty.
    Only the levels the snapshot carries are summed: set the ``l2_snapshot`` dependency's own
    ``depth`` at least as large.
    """

    name = "order_book_imbalance"
    description = "(bid size - ask size) / (bid size + ask size) over the top levels"
    params: ClassVar[Mapping[str, Param]] = {
        "depth": Param(kind="int", default=5, minimum=1, doc="levels per side to sum")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """``obi`` in [-1, 1]."""
        return {"obi": float}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``l2_snapshot``."""
        return {"l2_snapshot": L2Snapshot}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, BookImbalance]:
        """A ``map`` over a :class:`BookImbalance` (returned as the state)."""
        imbalance = BookImbalance(params["depth"])
        return upstreams["l2_snapshot"].map(imbalance.update), imbalance

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.OrderBookImbalanceKernel`)."""
        from featurizer_features.batch import OrderBookImbalanceKernel

        return OrderBookImbalanceKernel(
            state if state is not None else BookImbalance(params["depth"])
        )
