"""L2 snapshot: the full order book rebuilt from ``l2_book`` snapshots and deltas."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from streamz import Stream

from featurizer import DataDefinition, Event, FeatureDefinition, Param, Schema
from featurizer_features.sources import L2BookSource

__all__ = ["BookSide", "L2Book", "L2Snapshot"]

Level = tuple[float, float]


class BookSide:
    """One side of a book: its levels keyed by price, and the top ``depth`` levels cached.

    Levels are kept in a dict and their sort keys in a sorted list (``bisect``), so a delta
    costs ``O(log n)`` to find a level plus a ``memmove`` to insert or remove one, never a sort
    of the side. Keys are the prices for asks and the negated prices for bids, so the list is
    always in best-first order. The top levels are rebuilt only after a change inside them.

    :param bids: whether this is the bid side (best = highest price).
    :param depth: how many levels :meth:`top` returns.

    >>> side = BookSide(bids=True, depth=2)
    >>> side.replace([(99.0, 1.0), (101.0, 2.0), (100.0, 3.0)])
    >>> side.apply(101.0, 0.0)
    >>> side.top()
    ((100.0, 3.0), (99.0, 1.0))
    """

    __slots__ = ("_depth", "_keys", "_levels", "_sign", "_top")

    def __init__(self, *, bids: bool, depth: int) -> None:
        self._sign = -1.0 if bids else 1.0
        self._depth = depth
        self._keys: list[float] = []
        self._levels: dict[float, Level] = {}
        self._top: tuple[Level, ...] | None = ()

    def clear(self) -> None:
        """Remove every level."""
        self._keys = []
        self._levels = {}
        self._top = ()

    def replace(self, levels: Iterable[Level]) -> None:
        """Replace the side by ``levels``, applied in order as deltas onto an empty side.

        :param levels: ``(price, size)`` pairs; a size of ``0.0`` removes an earlier level.
        """
        sign = self._sign
        book: dict[float, Level] = {}
        for price, size in levels:
            key = price * sign
            if size == 0.0:
                book.pop(key, None)
            else:
                old = book.get(key)
                book[key] = (price, size) if old is None else (old[0], size)
        self._levels = book
        self._keys = sorted(book)
        self._top = None

    def apply(self, price: float, size: float) -> None:
        """Set the size of the level at ``price``; a size of ``0.0`` removes it.

        :param price: the level's price.
        :param size: its new size.
        """
        key = price * self._sign
        levels = self._levels
        old = levels.get(key)
        if size == 0.0:
            if old is None:
                return
            del levels[key]
            keys = self._keys
            index = bisect_left(keys, key)
            del keys[index]
            if index < self._depth:
                self._top = None
        elif old is not None:
            levels[key] = (old[0], size)
            keys = self._keys
            depth = self._depth
            if len(keys) <= depth or key <= keys[depth - 1]:
                self._top = None
        else:
            levels[key] = (price, size)
            keys = self._keys
            depth = self._depth
            if len(keys) < depth or key < keys[depth - 1]:
                self._top = None
            insort(keys, key)

    def top(self) -> tuple[Level, ...]:
        """The best ``depth`` levels as ``(price, size)`` pairs, best first."""
        top = self._top
        if top is None:
            levels = self._levels
            top = self._top = tuple([levels[key] for key in self._keys[: self._depth]])
        return top

    def __len__(self) -> int:
        return len(self._keys)


class L2Book:
    """The book of one ``l2_book`` stream, and the events of its top levels.

    * A gap marker (``gap=True``) clears the book; nothing is emitted until the next snapshot.
    * A snapshot (``is_snapshot=True``) replaces the book: an empty book onto which its levels
      are applied in order.
    * A delta sets the size of each listed level (``0.0`` removes it; removing an absent level
      does nothing). Deltas before the first snapshot, or after a gap and before the next
      snapshot, are ignored.
    * Every applied snapshot or delta emits the top ``depth`` levels of each side, even when
      one or both sides are empty or the delta changed only deeper levels.

    :param depth: how many levels per side to emit.

    >>> book = L2Book(depth=2)
    >>> def msg(bids, asks, snapshot=False, gap=False):
    ...     return {"timestamp": 1.0, "receipt_timestamp": 1.0, "bids": bids, "asks": asks,
    ...             "sequence": 0, "is_snapshot": snapshot, "gap": gap}
    >>> book.update(msg(((1.0, 5.0),), ())) is None  # no snapshot yet
    True
    >>> book.update(msg(((1.0, 5.0), (2.0, 1.0)), ((3.0, 4.0),), snapshot=True))["bids"]
    ((2.0, 1.0), (1.0, 5.0))
    >>> book.update(msg(((2.0, 0.0),), ()))["bids"]
    ((1.0, 5.0),)
    """

    __slots__ = ("asks", "bids", "depth", "synced")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids = BookSide(bids=True, depth=depth)
        self.asks = BookSide(bids=False, depth=depth)
        self.synced = False

    def apply_message(
        self, gap: Any, is_snapshot: Any, bid_levels: Iterable[Level], ask_levels: Iterable[Level]
    ) -> bool:
        """Apply one message's parts (what :meth:`update` does, without the event dicts: the
        backfill kernel calls it); returns whether the book is in sync after it (then the
        top levels are an output)."""
        bids = self.bids
        asks = self.asks
        if gap:
            bids.clear()
            asks.clear()
            self.synced = False
            return False
        if is_snapshot:
            bids.replace(bid_levels)
            asks.replace(ask_levels)
            self.synced = True
        elif self.synced:
            for price, size in bid_levels:
                bids.apply(price, size)
            for price, size in ask_levels:
                asks.apply(price, size)
        else:
            return False
        return True

    def update(self, event: Event) -> Event | None:
        """Apply one ``l2_book`` message; return the top levels, or ``None`` when not in sync."""
        if not self.apply_message(event["gap"], event["is_snapshot"], event["bids"], event["asks"]):
            return None
        return {
            "timestamp": event["timestamp"],
            "receipt_timestamp": event["receipt_timestamp"],
            "bids": self.bids.top(),
            "asks": self.asks.top(),
        }


class L2Snapshot(FeatureDefinition):
    """The top ``depth`` levels of the book rebuilt from an incremental ``l2_book`` stream.

    ``bids`` and ``asks`` are tuples of ``(price, size)`` pairs, best first. See
    :class:`L2Book` for how snapshots, deltas and gap markers are applied.
    """

    name = "l2_snapshot"
    description = "top levels of the order book rebuilt from L2 snapshots and deltas"
    params: ClassVar[Mapping[str, Param]] = {
        "depth": Param(kind="int", default=10, minimum=1, doc="levels per side to emit")
    }

    @classmethod
    def event_schema(cls) -> Schema:
        """``bids`` and ``asks``: tuples of ``(price, size)``, best first."""
        return {"bids": tuple, "asks": tuple}

    @classmethod
    def dep_upstream_schema(
        cls, dep_schema: str | None = None
    ) -> Mapping[str, type[DataDefinition]]:
        """``l2_book``."""
        return {"l2_book": L2BookSource}

    @classmethod
    def stream(
        cls, upstreams: Mapping[str, Stream], params: Mapping[str, Any]
    ) -> tuple[Stream, L2Book]:
        """A ``map`` over an :class:`L2Book` (returned as the state)."""
        book = L2Book(params["depth"])
        return upstreams["l2_book"].map(book.update), book

    @classmethod
    def batch_kernel(cls, params: Mapping[str, Any], state: Any = None) -> Any:
        """The columnar kernel (:class:`featurizer_features.batch.L2SnapshotKernel`)."""
        from featurizer_features.batch import L2SnapshotKernel

        return L2SnapshotKernel(state if state is not None else L2Book(params["depth"]))
