"""Market data-source definitions: ticker, trades and incremental L2 book.

Every emitter (synthetic, live exchanges, offline replay) produces these schemas, so features
are written once against them.
"""

from __future__ import annotations

from featurizer import DataSourceDefinition, Schema

__all__ = ["BOOK_SIDES", "TRADE_SIDES", "L2BookSource", "TickerSource", "TradesSource"]

TRADE_SIDES = ("buy", "sell")
"""Normalised aggressor side of a trade."""
BOOK_SIDES = ("bids", "asks")


class TickerSource(DataSourceDefinition):
    """Best bid and offer prices of one instrument (top of book).

    Only the prices are required: not every venue sends the sizes with its ticker. Emitters
    that have them may add ``bid_size`` and ``ask_size`` (floats) to the events; a feature that
    needs the sizes depends on a source that guarantees them (the cryptofeed plugin's
    ``book_ticker``), never on this one.
    """

    name = "ticker"
    description = "best bid/ask price (sizes optional)"

    @classmethod
    def event_schema(cls) -> Schema:
        """``bid``, ``ask``."""
        return {"bid": float, "ask": float}


class TradesSource(DataSourceDefinition):
    """Public trades of one instrument."""

    name = "trades"
    description = "public trades: price, amount, aggressor side, trade id"

    @classmethod
    def event_schema(cls) -> Schema:
        """``price``, ``amount``, ``side`` (``"buy"``/``"sell"``), ``trade_id``."""
        return {"price": float, "amount": float, "side": str, "trade_id": str}


class L2BookSource(DataSourceDefinition):
    """Incremental level-2 order book of one instrument.

    ``bids`` and ``asks`` are tuples of ``(price, size)`` levels. A snapshot
    (``is_snapshot=True``) replaces the whole book; a delta sets each listed level's size, and a
    size of ``0.0`` removes the level. ``sequence`` increases by one per message of a stream.
    A gap marker (``gap=True``, empty sides) says data was lost: consumers must discard their
    book and wait for the next snapshot.
    """

    name = "l2_book"
    description = "incremental L2 book: snapshots, deltas and gap markers"
    snapshot_field = "is_snapshot"
    """Events with this field true carry the whole book: a replay starting later starts from
    the last of them (see Featurizer Storage, "State rebuilt from snapshots")."""

    @classmethod
    def event_schema(cls) -> Schema:
        """``bids``, ``asks``, ``sequence``, ``is_snapshot``, ``gap``."""
        return {"bids": tuple, "asks": tuple, "sequence": int, "is_snapshot": bool, "gap": bool}
