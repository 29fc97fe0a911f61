"""Stored data sources as merged chunks of columns: the batch path's replay.

The range, the checks (schemas, missing blocks, overlapping sessions) and the holes are those
of :class:`featurizer.storage.Replay`, which is built first and whose plans are then read
here without turning rows into dicts. The merge order is the replay's too: every source's
rows keyed by ``(running max of timestamp, arrival number)``, sources merged by that key,
rows before ``output_start`` (by key) being warm-up. A chunk holds at most ``chunk_rows`` rows
per source plus whatever other sources have up to the same key, so memory does not grow
with the range.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._feature import Feature
from featurizer.batch._executor import SourceBatch
from featurizer.batch._kernel import Columns
from featurizer.storage import SEQ_COLUMN, Replay, Storage
from featurizer.storage._blocks import open_block, read_block_bytes
from featurizer.storage._codec import EventDecoder
from featurizer.storage._reader import conform, series_arrow_schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ColumnarReplay", "MergedChunk"]


@attrs.frozen(kw_only=True)
class MergedChunk:
    """Consecutive merged events, per source as columns.

    :param size: events in the chunk.
    :param sources: per source (replay order), its rows (``None`` if it has none).
    :param output_from: positions before this are warm-up.
    """

    size: int
    sources: list[SourceBatch | None]
    output_from: int


class _Pending:
    __slots__ = ("keys", "pos", "seqs", "table")

    def __init__(self, table: pa.Table, keys: Any, seqs: Any) -> None:
        self.table = table
        self.keys = keys
        self.seqs = seqs
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.keys) - self.pos


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class _Loader:
    """Reads one source's tables in a background thread, a few ahead of the consumer (file
    reads, checksums and Parquet decoding release the GIL, so they overlap the kernels)."""

    def __init__(self, tables: Iterator[_Pending], name: str, ahead: int = 2) -> None:
        self._tables = tables
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._tables:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as error:
            self._put(_Failure(error))

    def next(self) -> _Pending | None:
        """The next table, ``None`` at the end; re-raises the loader's error."""
        item = self._queue.get()
        if item is _END:
            return None
        if isinstance(item, _Failure):
            raise item.error
        pending: _Pending = item
        return pending

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=10.0)


class ColumnarReplay:
    """The stored events of ``sources`` over ``[start, end)`` as :class:`MergedChunk` s.

    :param storage: the storage.
    :param sources: the data sources (chunk index ``i`` is ``sources[i]``).
    :param start: first timestamp (``None``: from the beginning).
    :param end: end, exclusive (``None``: to the end).
    :param output_start: rows keyed before it are warm-up.
    :param holes: ``warn``, ``error`` or ``ignore`` (see :data:`featurizer.storage.HOLE_POLICIES`).
    :param chunk_rows: rows per source read at once.
    :raises NoDataError: (and the other errors of :class:`~featurizer.storage.Replay`).
    """

    def __init__(
        self,
        storage: Storage,
        sources: Sequence[Feature],
        *,
        start: float | None = None,
        end: float | None = None,
        output_start: float | None = None,
        holes: str = "warn",
        chunk_rows: int = 65_536,
    ) -> None:
        self.storage = storage
        self.sources = list(sources)
        self.replay: Replay = storage.replay(
            self.sources, start=start, end=end, output_start=output_start, holes=holes
        )
        self.start = start
        self.end = end
        self.output_start = output_start
        self.chunk_rows = chunk_rows
        self._decoders: list[EventDecoder | None] = []
        for plan in self.replay.plans:
            arrow_schema = series_arrow_schema(plan.series)
            self._decoders.append(
                None if arrow_schema is None else EventDecoder(arrow_schema, plan.series.schema)
            )

    @property
    def holes(self) -> list[Any]:
        """The holes of the range (reported, never filled)."""
        return list(self.replay.holes)

    @property
    def total_rows(self) -> int:
        """Rows in the planned blocks: an upper bound of the events read."""
        return self.replay.total_rows

    def _tables(self, index: int) -> Iterator[_Pending]:
        import numpy as np
        import pyarrow.compute as pc

        plan = self.replay.plans[index]
        if self._decoders[index] is None:  # a running session's source, nothing committed
            return
        carry = -math.inf
        # the replay's range: its end is cut at what a running recording has committed, and a
        # source rebuilt from full-state events starts at its last one before the start (a
        # stored snapshot, if there is one, comes first)
        lo, hi = self.start, self.replay.end
        from_seq = -1
        resume = self.replay.resume[index] if hasattr(self.replay, "resume") else None
        if resume is not None:
            lo, from_seq = resume
            injected = getattr(self.replay, "_injected", {}).get(index)
            if injected is not None:
                seqs = pc.cast(injected.column(SEQ_COLUMN), "int64").to_numpy()
                yield _Pending(injected, np.full(injected.num_rows, lo), seqs)
                from_seq += 1
        for table in self._row_groups(plan, lo):
            if isinstance(table, float):  # a skipped row group: its largest timestamp
                carry = max(carry, table)
                continue
            ts = table.column("timestamp").to_numpy()
            keys = np.maximum.accumulate(np.maximum(ts, carry)) if len(ts) else ts
            if len(keys):
                carry = float(keys[-1])
            a = 0 if lo is None else int(np.searchsorted(keys, lo, side="left"))
            b = len(keys) if hi is None else int(np.searchsorted(keys, hi, side="left"))
            seqs = pc.cast(table.column(SEQ_COLUMN), "int64").to_numpy()
            if from_seq >= 0 and a < b:
                a = max(a, int(np.searchsorted(seqs, from_seq, side="left")))
                if a < b:
                    from_seq = -1
            if a < b:
                for offset in range(a, b, self.chunk_rows):
                    n = min(self.chunk_rows, b - offset)
                    yield _Pending(
                        table.slice(offset, n), keys[offset : offset + n], seqs[offset : offset + n]
                    )
            if b < len(keys):
                return

    def _row_groups(self, plan: Any, lo: float | None) -> Iterator[pa.Table | float]:
        """The plan's row groups in order (checked as :func:`read_tables` checks them); a row
        group whose timestamps are all before ``lo`` is not decoded: its largest timestamp
        (from the Parquet statistics) stands for it."""
        root = self.storage.root
        label = plan.series.label
        schema = series_arrow_schema(plan.series)
        for block in plan.blocks:
            data = read_block_bytes(root, block, label)
            parquet = open_block(data, block, label, root / block.path, schema)
            metadata = parquet.metadata
            leaf = next(
                (
                    i
                    for i in range(metadata.num_columns)
                    if metadata.schema.column(i).path == "timestamp"
                ),
                None,
            )
            for group in range(parquet.num_row_groups):
                if lo is not None and leaf is not None:
                    stats = metadata.row_group(group).column(leaf).statistics
                    if stats is not None and stats.has_min_max and stats.max < lo:
                        yield float(stats.max)
                        continue
                yield conform(parquet.read_row_group(group), schema)

    def chunks(self) -> Generator[MergedChunk, None, None]:
        """The merged chunks, in order.

        :raises StorageError: when a block turns out to be damaged.
        """
        loaders = [
            _Loader(self._tables(i), f"featurizer-backfill-{s.name}")
            for i, s in enumerate(self.sources)
        ]
        try:
            yield from self._merged(loaders)
        finally:
            for loader in loaders:
                loader.close()

    def _merged(self, loaders: list[_Loader]) -> Iterator[MergedChunk]:
        import numpy as np

        count = len(loaders)
        current: list[_Pending | None] = [None] * count
        done = [False] * count
        while True:
            for i in range(count):
                pending = current[i]
                if not done[i] and (pending is None or pending.remaining == 0):
                    current[i] = loaders[i].next()
                    done[i] = current[i] is None
            active = [i for i in range(count) if not done[i]]
            if not active:
                return
            cuts: dict[int, int] = {}
            if len(active) == 1:
                (i,) = active
                pending = current[i]
                assert pending is not None
                cuts[i] = len(pending.keys)
            else:
                last = min(
                    (float(p.keys[-1]), int(p.seqs[-1]))
                    for p in (current[i] for i in active)
                    if p is not None
                )
                for i in active:
                    pending = current[i]
                    assert pending is not None
                    keys = pending.keys
                    cut = int(np.searchsorted(keys, last[0], side="left"))
                    upper = int(np.searchsorted(keys, last[0], side="right"))
                    if upper > cut:
                        cut += int(np.searchsorted(pending.seqs[cut:upper], last[1], side="right"))
                    cuts[i] = max(cut, pending.pos)
            yield self._merge(current, cuts)

    def _merge(self, current: list[_Pending | None], cuts: dict[int, int]) -> MergedChunk:
        import numpy as np

        parts = []
        for i, cut in cuts.items():
            pending = current[i]
            assert pending is not None
            if cut > pending.pos:
                parts.append((i, pending, pending.pos, cut))
                pending.pos = cut
        keys = np.concatenate([p.keys[a:b] for _, p, a, b in parts])
        seqs = np.concatenate([p.seqs[a:b] for _, p, a, b in parts])
        order = np.lexsort((seqs, keys)) if len(parts) > 1 else np.arange(len(keys))
        positions = np.empty(len(keys), dtype=np.int64)
        positions[order] = np.arange(len(keys), dtype=np.int64)
        sorted_keys = keys[order]
        output_from = 0
        if self.output_start is not None:
            output_from = int(np.searchsorted(sorted_keys, self.output_start, side="left"))
        batches: list[SourceBatch | None] = [None] * len(self.sources)
        offset = 0
        for i, pending, a, b in parts:
            mine = positions[offset : offset + b - a]
            offset += b - a
            table = pending.table.slice(a, b - a)
            if len(mine) > 1 and not (mine[1:] > mine[:-1]).all():
                sort = np.argsort(mine, kind="stable")
                table = table.take(sort)
                mine = mine[sort]
            batches[i] = self._batch(i, table, mine)
        return MergedChunk(size=len(keys), sources=batches, output_from=output_from)

    def _batch(self, index: int, table: pa.Table, positions: Any) -> SourceBatch:
        decoder = self._decoders[index]
        assert decoder is not None  # sources without a decoder yield no tables
        data = {name: table.column(name).combine_chunks() for name in decoder.names}
        return SourceBatch(
            positions=positions,
            columns=Columns(size=table.num_rows, data=data),
            decode=lambda: decoder.decode(table),
        )
