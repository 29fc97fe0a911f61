"""The batch-kernel protocol: what a feature's columnar implementation receives and returns.

A kernel is the columnar twin of a feature's per-event ``stream()``: it receives a chunk of its
upstream's events as :class:`Columns` (numpy or Arrow arrays, one per field) and returns the
rows that produced an output with the output's columns. Features that are a ``map`` over their
upstream (every standard feature with a kernel) produce at most one output per input row, so
an output is identified by the input row that caused it.

A kernel owns the per-event state object of its feature (``kernel.state``, the object
``stream()`` returns with its stream, e.g. a ``VolatilityWindow``) and leaves it, after every
chunk, exactly as the per-event path would have left it after the same events: carried state
is live state. Where a vectorized computation cannot be shown exact for a chunk (NaN or
infinite values, decreasing timestamps, numbers too large for machine integers), a kernel runs
the per-event code on that chunk instead; errors then surface exactly as they do live, through
the :data:`ErrorHandler` the executor passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from featurizer._events import Event

__all__ = [
    "BatchKernel",
    "Columns",
    "ErrorHandler",
    "KernelOutput",
    "columns_from_events",
    "events_from_columns",
]

ErrorHandler = Callable[[int, Event, Exception], None]
"""``fail(row, event, error)``: a kernel's per-event fallback raised on ``row`` (the event it
was processing and the error). Under the ``raise`` policy it raises
:class:`~featurizer.FeatureComputationError`; under ``skip`` it records the error and
returns, and the row produces no output."""


def _to_list(values: Any) -> list[Any]:
    to_pylist = getattr(values, "to_pylist", None)
    if to_pylist is not None:
        return list(to_pylist())
    return list(values.tolist())


@attrs.frozen(kw_only=True)
class Columns:
    """A chunk of events of one node as columns: ``size`` rows, one array per field.

    Arrays are numpy arrays or pyarrow arrays (as read from storage); :meth:`floats` and
    :meth:`equals` give numpy views whatever the source.

    :param size: the number of rows.
    :param data: field name to array, ``timestamp`` and ``receipt_timestamp`` included, in the
        order the per-event path puts the fields in its events.
    """

    size: int
    data: Mapping[str, Any]

    def floats(self, name: str) -> Any:
        """The field as a float64 numpy array."""
        import numpy as np

        column = self.data[name]
        if hasattr(column, "to_numpy") and not isinstance(column, np.ndarray):
            if hasattr(column, "combine_chunks"):
                column = column.combine_chunks()
            column = column.to_numpy(zero_copy_only=False)
        return np.asarray(column, dtype=np.float64)

    def equals(self, name: str, value: Any) -> Any:
        """A boolean numpy array: whether the field equals ``value`` on each row."""
        import numpy as np

        column = self.data[name]
        if isinstance(column, np.ndarray):
            return np.asarray(column == value, dtype=bool)
        import pyarrow.compute as pc

        mask = pc.equal(column, value)
        if hasattr(mask, "combine_chunks"):
            mask = mask.combine_chunks()
        return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)

    def events(self, rows: Sequence[int] | None = None) -> list[Event]:
        """The rows as event dicts (all rows when ``rows`` is ``None``), for per-event code."""
        return events_from_columns(self, rows)


def events_from_columns(columns: Columns, rows: Sequence[int] | None = None) -> list[Event]:
    """Event dicts (Python scalars, fields in column order) of some rows of ``columns``.

    :param columns: the chunk.
    :param rows: row indexes, or ``None`` for every row.
    """
    names = list(columns.data)
    values = []
    for name in names:
        column = columns.data[name]
        if rows is not None:
            column = column.take(rows) if hasattr(column, "take") else column[rows]
        values.append(_to_list(column))
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def columns_from_events(events: Sequence[Event], names: Sequence[str] | None = None) -> Columns:
    """Columns of event dicts (numpy arrays: float64 for floats, object otherwise).

    :param events: the events, all with the same fields.
    :param names: the fields to keep (default: the first event's, in its order).
    """
    import numpy as np

    if names is None:
        names = list(events[0]) if events else []
    data: dict[str, Any] = {}
    for name in names:
        items = [event[name] for event in events]
        if items and all(type(item) is float for item in items):
            data[name] = np.array(items, dtype=np.float64)
        else:
            column = np.empty(len(items), dtype=object)
            column[:] = items
            data[name] = column
    return Columns(size=len(events), data=data)


@attrs.frozen(kw_only=True)
class KernelOutput:
    """What a kernel produced for a chunk.

    :param rows: int64 numpy array, increasing: the input rows that produced an output.
    :param columns: the outputs, ``len(rows)`` rows, fields in the order of the per-event
        events (``timestamp``, ``receipt_timestamp``, then the feature's fields).
    """

    rows: Any
    columns: Columns

    def __iter__(self) -> Iterator[Any]:
        yield self.rows
        yield self.columns


@runtime_checkable
class BatchKernel(Protocol):
    """The columnar implementation of one feature node (see the module docs).

    Returned by :meth:`FeatureDefinition.batch_kernel`.
    """

    @property
    def state(self) -> Any:
        """The per-event state object the kernel carries (``None`` for stateless features)."""

    def process(self, batch: Columns, fail: ErrorHandler) -> KernelOutput:
        """Compute a chunk of the upstream's events.

        :param batch: the upstream's events of this chunk, as columns.
        :param fail: called when the per-event fallback raises on a row.
        :returns: the rows that produced an output and the outputs.
        """
