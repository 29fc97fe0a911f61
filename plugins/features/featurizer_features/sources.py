"""Market data-source definitions: ticker, trades and incremental L2 book.

Every emitter (synthetic, live exchanges, offline replay) produces these schemas, so features
are written once against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from featurizer import DataSourceDefinition, Schema

__all__ = [
    "BOOK_SIDES",
    "TRADE_SIDES",
    "BookKeeper",
    "L2BookSource",
    "TickerSource",
    "TradesSource",
]

TRADE_SIDES = ("buy", "sell")
"""Normalised aggressor side of a trade."""
BOOK_SIDES = ("bids", "asks")


class BookKeeper:
    """The whole book of one ``l2_book`` stream, to write snapshots of it.

    Applies messages as the book features do (a gap clears it until the next snapshot, a
    snapshot replaces it, a delta sets or removes levels) and gives a snapshot message that,
    applied instead of the messages before it, leaves a consumer with the same book.
    """

    def __init__(self) -> None:
        self._sides: tuple[dict[float, tuple[float, float]], ...] = ({}, {})
        self._synced = False

    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one ``l2_book`` message."""
        if event["gap"]:
            self._sides = ({}, {})
            self._synced = False
            return
        if event["is_snapshot"]:
            self._sides = ({}, {})
            self._synced = True
        elif not self._synced:
            return
        for side, name, sign in ((self._sides[0], "bids", -1.0), (self._sides[1], "asks", 1.0)):
            for price, size in event[name]:
                key = price * sign
                if size == 0.0:
                    side.pop(key, None)
                else:
                    old = side.get(key)
                    side[key] = (price, size) if old is None else (old[0], size)

    def snapshot(self, last: Mapping[str, Any]) -> dict[str, Any] | None:
        """A snapshot message of the book as of ``last`` (the message applied last), or
        ``None`` while the book is not in sync."""
        if not self._synced:
            return None
        bids, asks = (tuple(side[key] for key in sorted(side)) for side in self._sides)
        return {
            **last,
            "bids": bids,
            "asks": asks,
            "is_snapshot": True,
            "gap": False,
        }


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
    def state_keeper(cls) -> BookKeeper:
        """A full-depth book that storage feeds this source's events to, to store periodic
        snapshots of it (so replays starting late need not read from the first snapshot)."""
        return BookKeeper()

    @classmethod
    def event_schema(cls) -> Schema:
        """``bids``, ``asks``, ``sequence``, ``is_snapshot``, ``gap``."""
        return {"bids": tuple, "asks": tuple, "sequence": int, "is_snapshot": bool, "gap": bool}
