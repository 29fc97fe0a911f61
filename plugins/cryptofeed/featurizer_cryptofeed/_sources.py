"""The gap events data source: where a live stream lost data, and why."""

from __future__ import annotations

from featurizer import DataSourceDefinition, Schema

__all__ = ["GAP_REASONS", "FeedGapsSource"]

GAP_REASONS = ("disconnect", "book_reset", "malformed_message")
"""Why data is missing: the connection dropped; cryptofeed found a book sequence gap and
reset the books; a message could not be parsed or converted and was dropped."""


class FeedGapsSource(DataSourceDefinition):
    """One event per gap on a live stream of an instrument.

    ``ticker`` and ``trades`` events have no room for an in-band marker (every standard feature
    reads them as quotes and trades), so the cryptofeed emitter reports their gaps here; the
    ``l2_book`` stream also gets an in-band gap marker (``gap=True``). Record this source next
    to the market data to see where data is missing.

    ``channel`` is the affected stream (``"ticker"``, ``"trades"`` or ``"l2_book"``) and
    ``reason`` one of :data:`GAP_REASONS`. Both timestamps are the time the gap was detected.
    """

    name = "feed_gaps"
    description = "gaps on live streams: the channel that lost data and why"

    @classmethod
    def event_schema(cls) -> Schema:
        """``channel`` and ``reason``."""
        return {"channel": str, "reason": str}
