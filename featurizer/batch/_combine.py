"""Combined feature vectors from per-output positions, as the live graph emits them.

Live, the graph emits one combined vector per input event that updated some output, once
every output has a value, holding the latest event of each output (see
:doc:`graph-semantics`). With the positions of every output's events in a chunk that is a
``searchsorted`` per output: the vector at position ``p`` takes each output's last event at or
before ``p`` (or the one carried from an earlier chunk). Rows are flattened as
:func:`featurizer._sinks.flatten_grouped` does: ``timestamp`` (the outputs' latest timestamp,
taken with Python's ``max`` semantics) then ``<feature>.<field>``.

``per="timestamp"`` keeps, of consecutive vectors with the same timestamp, only the last; the
last vector of a chunk is held until the next chunk shows whether it was the last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from featurizer._feature import Feature
from featurizer.batch._executor import NodeOutput

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Combiner"]

_TIMESTAMPS = ("timestamp", "receipt_timestamp")


def _gather(last: Any, column: Any, index: Any, carried: bool) -> Any:
    import numpy as np

    if not carried:
        return column[index]
    head = np.empty(1, dtype=column.dtype)
    head[0] = last
    return np.concatenate([head, column])[index + 1]


def _arrow(values: Any) -> pa.Array:
    import numpy as np
    import pyarrow as pa

    if values.dtype == object:
        return pa.array(values.tolist())
    return pa.array(np.ascontiguousarray(values))


class Combiner:
    """Turns per-chunk node outputs into rows of combined vectors.

    :param outputs: the output features, in combined order.
    :param per: ``event`` or ``timestamp``.
    """

    def __init__(self, outputs: Sequence[Feature], per: str = "event") -> None:
        self.outputs = list(outputs)
        self.per = per
        self._last: list[dict[str, Any] | None] = [None] * len(self.outputs)
        self._held: pa.Table | None = None
        self.rows_out = 0
        self.vectors = 0
        self.withheld = 0
        """Input events after the warm-up that updated an output before the first vector but
        gave no row, for want of a value of every output."""

    def combine(
        self, size: int, produced: Mapping[Feature, NodeOutput], output_from: int = 0
    ) -> tuple[pa.Table | None, list[float] | None]:
        """The rows of one chunk.

        :param size: the chunk's number of input events.
        :param produced: per output, what it produced (from :meth:`BatchExecutor.process`).
        :param output_from: positions before this are warm-up: computed, never emitted.
        :returns: the rows to write (``None`` if none) and, for the first vector of the chunk,
            each output's event timestamp (``None`` if no vector).
        """
        import numpy as np
        import pyarrow as pa

        parts = [produced.get(feature) for feature in self.outputs]
        marks = np.zeros(size, dtype=bool)
        for part in parts:
            if part is not None:
                marks[part.positions] = True
        fired = np.flatnonzero(marks)
        ready = output_from
        for last, part in zip(self._last, parts, strict=True):
            if last is None:
                ready = max(ready, int(part.positions[0]) if part is not None else size)
        emit = fired[fired >= ready]
        if not self.vectors:
            self.withheld += int(((fired >= output_from) & (fired < ready)).sum())
        names: list[str] = ["timestamp"]
        arrays: list[Any] = []
        stamps = None
        first_stamps: list[float] | None = [] if len(emit) else None
        for k, (feature, part) in enumerate(zip(self.outputs, parts, strict=True)):
            last = self._last[k]
            if part is None:
                columns = {name: _one(value) for name, value in (last or {}).items()}
                index = np.zeros(len(emit), dtype=np.int64)
                carried = False
            else:
                columns = {name: _column(part.columns, name) for name in part.columns.data}
                index = _latest_index(part.positions, emit, size)
                carried = last is not None and bool(len(index)) and int(index[0]) < 0
            if len(emit):
                event_ts = _gather(
                    None if last is None else last["timestamp"],
                    columns["timestamp"],
                    index,
                    carried,
                )
                if stamps is None:
                    stamps = event_ts.astype(np.float64)
                else:
                    stamps = np.where(event_ts > stamps, event_ts, stamps)
                assert first_stamps is not None
                first_stamps.append(float(event_ts[0]))
                for name, column in columns.items():
                    if name in _TIMESTAMPS:
                        continue
                    names.append(f"{feature.name}.{name}")
                    value = None if last is None else last.get(name)
                    arrays.append(_arrow(_gather(value, column, index, carried)))
            if part is not None and len(part.positions):
                self._last[k] = {name: _item(column[-1]) for name, column in columns.items()}
        self.vectors += len(emit)
        if not len(emit):
            return None, None
        assert stamps is not None
        table = pa.table([pa.array(stamps), *arrays], names=names)
        if self.per == "timestamp":
            table = self._collapse(table)
        self.rows_out += table.num_rows if table is not None else 0
        return table, first_stamps

    def _collapse(self, table: pa.Table) -> pa.Table | None:
        import numpy as np
        import pyarrow as pa

        if self._held is not None:
            table = pa.concat_tables([self._held, table.cast(self._held.schema)])
        stamps = table.column("timestamp").to_numpy()
        keep = np.append(stamps[1:] != stamps[:-1], False)
        self._held = table.slice(table.num_rows - 1)
        out = table.filter(pa.array(keep))
        return out if out.num_rows else None

    def finish(self) -> pa.Table | None:
        """What is still held (``per="timestamp"``): the last vector."""
        held, self._held = self._held, None
        if held is not None:
            self.rows_out += held.num_rows
        return held


def _column(columns: Any, name: str) -> Any:
    import numpy as np

    column = columns.data[name]
    if isinstance(column, np.ndarray):
        return column
    if hasattr(column, "to_numpy"):
        if hasattr(column, "combine_chunks"):
            column = column.combine_chunks()
        return column.to_numpy(zero_copy_only=False)
    return np.asarray(column)


def _item(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _one(value: Any) -> Any:
    import numpy as np

    column = np.empty(1, dtype=np.float64 if type(value) is float else object)
    column[0] = value
    return column


def _latest_index(positions: Any, emit: Any, size: int) -> Any:
    """For each position in ``emit``, the index of the last of ``positions`` at or before it
    (-1 if none); ``positions`` is non-decreasing."""
    import numpy as np

    if len(positions) > 1 and not (positions[1:] > positions[:-1]).all():
        return np.searchsorted(positions, emit, side="right") - 1
    marks = np.zeros(size, dtype=np.int64)
    marks[positions] = 1
    return np.cumsum(marks)[emit] - 1
