"""Helpers shared by the synthetic plugin's tests: data sources, bounded collection, a book."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from featurizer_features import L2BookSource, TickerSource, TradesSource
from featurizer_synthetic import StreamKey, SyntheticMarket

from featurizer import DataSourceDefinition, Event, Feature

DEFINITIONS: dict[str, type[DataSourceDefinition]] = {
    "ticker": TickerSource,
    "trades": TradesSource,
    "l2_book": L2BookSource,
}
SYMBOLS = ("BTC-USDT", "ETH-USDT")
ALL_STREAMS: tuple[StreamKey, ...] = tuple(
    (channel, symbol) for channel in DEFINITIONS for symbol in SYMBOLS
)


def source(channel: str, symbol: str = "BTC-USDT", exchange: str = "synthetic") -> Feature:
    """The data-source feature of ``channel`` for ``symbol``."""
    return Feature.create(DEFINITIONS[channel], {"exchange": exchange, "symbol": symbol})


def take(
    streams: Iterable[StreamKey], count: int, *, seed: int = 0, **options: object
) -> list[tuple[StreamKey, Event]]:
    """The first ``count`` events of a fresh market (always a bounded slice)."""
    market = SyntheticMarket(streams, seed=seed, **options)  # type: ignore[arg-type]
    return list(itertools.islice(market.events(), count))


class BookReplica:
    """A consumer-side L2 book rebuilt from an ``l2_book`` stream: snapshot, then deltas."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.sequence: int | None = None

    def apply(self, event: Event) -> None:
        """Apply a snapshot or a delta, checking the sequence and that sizes stay positive."""
        if event["is_snapshot"]:
            self.bids, self.asks = {}, {}
        else:
            assert self.sequence is not None, "a delta arrived before the snapshot"
            assert event["sequence"] == self.sequence + 1, (self.sequence, event["sequence"])
        self.sequence = event["sequence"]
        for side, levels in ((self.bids, event["bids"]), (self.asks, event["asks"])):
            for price, size in levels:
                assert size >= 0.0
                if size == 0.0:
                    assert price in side, f"removal of absent level {price}"
                    del side[price]
                else:
                    side[price] = size

    def sides(self) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
        """``(bids, asks)`` best first, as :meth:`SyntheticMarket.book` returns them."""
        return (
            tuple(sorted(self.bids.items(), reverse=True)),
            tuple(sorted(self.asks.items())),
        )

    def best_bid(self) -> tuple[float, float]:
        """``(price, size)`` of the best bid."""
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> tuple[float, float]:
        """``(price, size)`` of the best ask."""
        price = min(self.asks)
        return price, self.asks[price]
