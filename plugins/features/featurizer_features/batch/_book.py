"""Kernels of the book features: the L2 book rebuilt a chunk at a time, and what reads its top.

A book is a sequential state machine (a delta's effect depends on every message before it,
snapshots replace it, gap markers clear it), so there is no numpy formulation that is both
exact and cheaper than applying the messages in order. The kernels are exact *by
construction* instead: they run the features' own state objects and arithmetic
(:meth:`L2Book.apply_message <featurizer_features.l2_snapshot.L2Book.apply_message>`,
:meth:`BookImbalance.value <featurizer_features.order_book_imbalance.BookImbalance.value>`,
the same IEEE operations for the mid and the spread) in one tight loop per chunk, over the
stored level lists read straight from Arrow (no event dicts, no per-event graph). What they save
is the per-event machinery around the arithmetic, not the arithmetic.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from featurizer.batch import Columns, ErrorHandler, KernelOutput
from featurizer_features.batch._fallback import empty_output

__all__ = [
    "L2SnapshotKernel",
    "MidPriceL2Kernel",
    "OrderBookImbalanceKernel",
    "RelativeSpreadL2Kernel",
]


def _values(column: Any) -> list[Any]:
    """A column as Python values."""
    to_pylist = getattr(column, "to_pylist", None)
    if to_pylist is not None:
        return list(to_pylist())
    return list(column.tolist())


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _levels(column: Any) -> Sequence[Any]:
    """Per row, its ``(price, size)`` levels (stored ``list<list<double>>`` read as pairs
    without building an event; anything else as the per-event decoder gives it)."""
    if isinstance(column, np.ndarray):
        return list(column.tolist())
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if (
        pa.types.is_list(kind)
        and pa.types.is_list(kind.value_type)
        and pa.types.is_float64(kind.value_type.value_type)
        and not column.null_count
    ):
        inner = column.flatten()
        if not inner.null_count:
            lengths = pc.min_max(pc.list_value_length(inner)).as_py() if len(inner) else None
            if lengths is None or lengths == {"min": 2, "max": 2}:
                flat = inner.flatten().to_numpy(zero_copy_only=False).tolist()
                pairs = list(zip(flat[0::2], flat[1::2], strict=True))
                offsets = column.offsets.to_numpy().tolist()
                base = offsets[0]
                return [tuple(pairs[a - base : b - base]) for a, b in itertools.pairwise(offsets)]
    return [_tuples(value) for value in column.to_pylist()]


def _objects(items: list[Any]) -> Any:
    return np.fromiter(items, dtype=object, count=len(items))


def _stamps(batch: Columns, rows: Any) -> dict[str, Any]:
    return {
        "timestamp": batch.floats("timestamp")[rows],
        "receipt_timestamp": batch.floats("receipt_timestamp")[rows],
    }


class L2SnapshotKernel:
    """The book of an ``l2_book`` stream, message by message in one loop; carries the
    :class:`~featurizer_features.l2_snapshot.L2Book` itself.

    :param state: the book to continue from.
    """

    names = ("timestamp", "receipt_timestamp", "bids", "asks")

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Apply the chunk's messages; every message after which the book is in sync outputs
        its top levels."""
        if not batch.size:
            return empty_output(self.names)
        book = self.state
        apply = book.apply_message
        top_bids = book.bids.top
        top_asks = book.asks.top
        gaps = _values(batch.data["gap"])
        snapshots = _values(batch.data["is_snapshot"])
        bids = _levels(batch.data["bids"])
        asks = _levels(batch.data["asks"])
        rows: list[int] = []
        out_bids: list[Any] = []
        out_asks: list[Any] = []
        for row in range(batch.size):
            try:
                if not apply(gaps[row], snapshots[row], bids[row], asks[row]):
                    continue
                top = top_bids(), top_asks()
            except Exception as error:
                fail(row, _event(batch, row, bids, asks), error)
                continue
            rows.append(row)
            out_bids.append(top[0])
            out_asks.append(top[1])
        taken = np.array(rows, dtype=np.int64)
        data = {**_stamps(batch, taken), "bids": _objects(out_bids), "asks": _objects(out_asks)}
        return KernelOutput(rows=taken, columns=Columns(size=len(rows), data=data))


def _event(batch: Columns, row: int, bids: Sequence[Any], asks: Sequence[Any]) -> dict[str, Any]:
    """The event of ``row`` as the per-event path sees it (for an error report)."""
    event = batch.events([row])[0]
    event["bids"] = bids[row]
    event["asks"] = asks[row]
    return event


def _tops(batch: Columns) -> tuple[list[int], Any, Any]:
    """The rows whose two sides are non-empty, with their best bid and ask prices."""
    rows: list[int] = []
    bid: list[float] = []
    ask: list[float] = []
    for row, (bids, asks) in enumerate(
        zip(_levels(batch.data["bids"]), _levels(batch.data["asks"]), strict=True)
    ):
        if bids and asks:
            rows.append(row)
            bid.append(bids[0][0])
            ask.append(asks[0][0])
    return rows, np.array(bid, dtype=np.float64), np.array(ask, dtype=np.float64)


class MidPriceL2Kernel:
    """``(best bid + best ask) / 2.0`` for every snapshot with two non-empty sides."""

    state: Any = None

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """The mid of each row that has one (the same IEEE operations as per event)."""
        rows, bid, ask = _tops(batch)
        taken = np.array(rows, dtype=np.int64)
        with np.errstate(all="ignore"):
            mid = (bid + ask) / 2.0
        data = {**_stamps(batch, taken), "mid_price": mid}
        return KernelOutput(rows=taken, columns=Columns(size=len(rows), data=data))


class RelativeSpreadL2Kernel:
    """``(best ask - best bid) / mid`` for every snapshot with two sides and a non-zero mid."""

    state: Any = None

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """The spread of each row that has one (NaN mids give NaN, as per event)."""
        rows, bid, ask = _tops(batch)
        with np.errstate(all="ignore"):
            mid = (bid + ask) / 2.0
        keep = np.flatnonzero(mid != 0.0)
        taken = np.array(rows, dtype=np.int64)[keep]
        with np.errstate(all="ignore"):
            spread = (ask[keep] - bid[keep]) / mid[keep]
        data = {**_stamps(batch, taken), "relative_spread": spread}
        return KernelOutput(rows=taken, columns=Columns(size=len(taken), data=data))


class OrderBookImbalanceKernel:
    """The imbalance of every snapshot, with the feature's own exact sums; carries its
    :class:`~featurizer_features.order_book_imbalance.BookImbalance` (whose scale grows with
    the sizes seen).

    :param state: the imbalance state to continue from.
    """

    def __init__(self, state: Any) -> None:
        self.state = state

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """One imbalance per row."""
        value = self.state.value
        bids = _levels(batch.data["bids"])
        asks = _levels(batch.data["asks"])
        rows: list[int] = []
        out: list[float] = []
        for row in range(batch.size):
            try:
                obi = value(bids[row], asks[row])
            except Exception as error:
                fail(row, _event(batch, row, bids, asks), error)
                continue
            rows.append(row)
            out.append(obi)
        taken = np.array(rows, dtype=np.int64)
        data = {**_stamps(batch, taken), "obi": np.array(out, dtype=np.float64)}
        return KernelOutput(rows=taken, columns=Columns(size=len(rows), data=data))
