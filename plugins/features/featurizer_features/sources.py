"""Market data-source definitions: ticker, trades and incremental L2 book.

Every emitter (synthetic, live exchanges, offline replay) produces these schemas, so features
are written once against them.
"""

from __future__ import annotations

import itertools
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
    applied instead of the messages before it, leaves a consumer with the same book. It comes
    in sync only by a snapshot message (what lets storage skip ahead while it is not).
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

    def apply_table(self, table: Any) -> None:
        """Apply consecutive ``l2_book`` messages given as a pyarrow table of their stored
        columns: the same book as :meth:`apply` on each row in turn, without building the
        messages. After the last snapshot or gap of the run, a level's last size in the
        run is its size (``0.0``: removed), so the deltas are applied level by level at once.
        """
        import pyarrow.compute as pc

        resets = pc.indices_nonzero(
            pc.or_kleene(table.column("gap"), table.column("is_snapshot"))
        ).to_pylist()
        start = 0
        if resets:
            start = resets[-1] + 1
            self.apply(table.slice(resets[-1], 1).to_pylist()[0])
        if not self._synced or start == table.num_rows:
            return
        deltas = table.slice(start)
        sides = [_levels(deltas.column(name)) for name in BOOK_SIDES]
        if any(levels is None for levels in sides):  # (not float pairs: message by message)
            for event in deltas.to_pylist():
                self.apply(event)
            return
        for side, levels, sign in zip(self._sides, sides, (-1.0, 1.0), strict=True):
            assert levels is not None
            prices, sizes = levels
            keys = [-price for price in prices] if sign < 0 else prices
            side.update(zip(keys, zip(prices, sizes, strict=True), strict=True))
            for key in set(itertools.compress(keys, map(_ZERO.__eq__, sizes))):
                if side[key][1] == 0.0:
                    del side[key]

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


_ZERO = 0.0


def _levels(column: Any) -> tuple[list[float], list[float]] | None:
    """The prices and sizes of a stored book side (a chunked ``list<list<double>>`` column of
    ``(price, size)`` levels), level after level; ``None`` if it holds anything else."""
    import pyarrow as pa
    import pyarrow.compute as pc

    levels = column.combine_chunks()
    if levels.null_count or not pa.types.is_list(levels.type):
        return None
    pairs = levels.flatten()
    if not len(pairs):
        return [], []
    if pairs.null_count or not pa.types.is_list(pairs.type):
        return None
    if pc.min_max(pc.list_value_length(pairs)).as_py() != {"min": 2, "max": 2}:
        return None
    values = pairs.flatten()
    if values.null_count or not pa.types.is_float64(values.type):
        return None
    data: Any = memoryview(values.buffers()[1]).cast("d")
    flat: list[float] = data[values.offset : values.offset + len(values)].tolist()
    return flat[0::2], flat[1::2]


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
