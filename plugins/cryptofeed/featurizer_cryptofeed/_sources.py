"""The data sources this plugin adds: the ticker with sizes, and gap events."""

from __future__ import annotations

from featurizer import DataSourceDefinition, Schema

__all__ = ["GAP_REASONS", "BookTickerSource", "FeedGapsSource"]

GAP_REASONS = (
    "disconnect",
    "book_reset",
    "sequence_gap",
    "checksum_mismatch",
    "malformed_message",
)
"""Why data is missing: the connection dropped; cryptofeed found a book update-id gap and
reset the books (Binance family); the exchange's sequence numbers skipped; the book no longer
matched the exchange's checksum; a message could not be parsed or converted and was dropped."""


class BookTickerSource(DataSourceDefinition):
    """Best bid and offer of one instrument with their sizes.

    Served where the exchange's ticker message carries the sizes (``featurizer plugins
    --verbose`` lists them per exchange). Its fields include those of ``ticker``, so an entry
    of this source can be the ``ticker`` dependency of any feature (``deps: {ticker: ...}``).
    """

    name = "book_ticker"
    description = "best bid/ask price and size"

    @classmethod
    def event_schema(cls) -> Schema:
        """``bid``, ``ask``, ``bid_size``, ``ask_size``."""
        return {"bid": float, "ask": float, "bid_size": float, "ask_size": float}


class FeedGapsSource(DataSourceDefinition):
    """One event per gap on a live stream of an instrument.

    ``ticker`` and ``trades`` events have no room for an in-band marker (every standard feature
    reads them as quotes and trades), so the cryptofeed emitter reports their gaps here; the
    ``l2_book`` stream also gets an in-band gap marker (``gap=True``). Record this source next
    to the market data to see where data is missing.

    ``channel`` is the affected stream (``"ticker"``, ``"book_ticker"``, ``"trades"`` or
    ``"l2_book"``) and ``reason`` one of :data:`GAP_REASONS`. Both timestamps are the time the
    gap was detected.
    """

    name = "feed_gaps"
    description = "gaps on live streams: the channel that lost data and why"

    @classmethod
    def event_schema(cls) -> Schema:
        """``channel`` and ``reason``."""
        return {"channel": str, "reason": str}
