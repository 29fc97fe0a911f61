"""Backfills from storage: the combined vectors of ``featurizer replay``, through the batch path.

:class:`Backfill` reads the config's data sources from storage as merged chunks of columns
(:class:`~featurizer.batch._storage.ColumnarReplay`), computes them with a
:class:`~featurizer.batch.BatchExecutor` and turns the outputs into Arrow tables of rows
(:class:`~featurizer.batch.Combiner`), chunk by chunk: memory is bounded by a chunk, whatever
the range. The range, the warm-up and its extension, the holes policy and the ``per`` choice
are those of :class:`featurizer.offline.OfflineFeatureStreamGenerator`, so the rows are the
replay's, bit for bit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from featurizer._feature import Feature
from featurizer.batch._combine import Combiner
from featurizer.batch._executor import BatchExecutor
from featurizer.batch._storage import ColumnarReplay, MergedChunk
from featurizer.offline._range import StoredRange
from featurizer.storage import Storage

if TYPE_CHECKING:
    import datetime as dt

    import pyarrow as pa

    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins

__all__ = ["Backfill", "backfill"]

_MAX_RESTARTS = 8


class Backfill:
    """The combined feature vectors of a config over a stored range, as Arrow tables.

    Iterate for one table per chunk (rows in order), or call :meth:`table` for all of them.

    :param config: the features (and by default the range, warm-up and storage root).
    :param storage: a :class:`~featurizer.storage.Storage`, a root, or ``None`` for the
        config's.
    :param start: overrides ``start_date`` (datetime or epoch seconds).
    :param end: overrides ``end_date`` (exclusive).
    :param warmup: overrides the config's (or the derived) warm-up, in seconds.
    :param per: ``event`` (one row per input event that updated an output) or ``timestamp``.
    :param holes: ``warn``, ``error`` or ``ignore``.
    :param plugins: the plugins to resolve definitions with.
    :param chunk_rows: rows per source per chunk.
    :param kernels: use the features' kernels (``False``: every node per event).
    :param part_floor: compute this range as a later part of a longer backfill whose reading
        starts at ``part_floor`` (``-inf``: at the first stored event): when an output has no
        value at ``start`` after the warm-up (its last update came before a hole in the data,
        say) while the longer backfill has an older one, the warm-up is extended back (never
        before ``part_floor``) until the rows from ``start`` are the longer backfill's.
        ``None`` (the default): the rows of ``featurizer replay`` from ``start``, which has no
        such rows.
    :raises NoDataError: a data source is not stored or has no data in the range.
    :raises StorageError: damaged blocks, overlapping recordings, schema mismatches.
    """

    def __init__(
        self,
        config: FeaturizerConfig,
        storage: Storage | str | os.PathLike[str] | None = None,
        *,
        start: dt.datetime | float | None = None,
        end: dt.datetime | float | None = None,
        warmup: float | None = None,
        per: str = "event",
        holes: str = "warn",
        plugins: Plugins | None = None,
        chunk_rows: int = 65_536,
        kernels: bool = True,
        part_floor: float | None = None,
    ) -> None:
        stored = StoredRange.resolve(
            config, storage, start=start, end=end, warmup=warmup, per=per, plugins=plugins
        )
        self.config = config
        self.storage = stored.storage
        self._owns_storage = stored.owns_storage
        self.features = stored.features
        self.start = stored.start
        self.end = stored.end
        self.warmup = stored.warmup
        self.per = per
        self._holes = holes
        self._chunk_rows = chunk_rows
        self._kernels = kernels
        self._floor = part_floor
        self._needs = stored.needs
        self.restarts = 0
        """How many times the warm-up was extended (as the replay does)."""
        self.events_in = 0
        """Input events computed so far (warm-up included)."""
        self.rows_out = 0
        """Rows produced so far."""
        self._checked = stored.checked
        self._build(stored.replay_start)

    def _build(self, replay_start: float | None) -> None:
        self.executor = BatchExecutor(self.features, kernels=self._kernels)
        self.combiner = Combiner(self.executor.outputs, self.per)
        self.replay_start = replay_start
        try:
            self.replay = ColumnarReplay(
                self.storage,
                self.executor.sources,
                start=replay_start,
                end=self.end,
                output_start=self.start if not self._checked else None,
                holes=self._holes,
                chunk_rows=self._chunk_rows,
            )
        except BaseException:
            self.close()
            raise

    @property
    def outputs(self) -> list[Feature]:
        """The output features, in column order."""
        return self.executor.outputs

    @property
    def holes(self) -> list[Any]:
        """The holes of the range (reported, never filled)."""
        return self.replay.holes

    @property
    def total_events(self) -> int:
        """An upper bound of the input events (for progress bars)."""
        return self.replay.total_rows

    def states(self) -> dict[Feature, Any]:
        """The per-event state of every node after what was computed so far (continue live
        from it: see :func:`featurizer.batch.restore_states`)."""
        return self.executor.states()

    def _needs_earlier_start(self, stamps: list[float]) -> float | None:
        assert self.replay_start is not None
        data_start = self._data_start()
        if data_start is None or self.replay_start <= data_start:
            return None
        required = min(
            stamp - self._needs.get(feature, 0.0)
            for feature, stamp in zip(self.executor.outputs, stamps, strict=True)
        )
        if self._floor is not None:  # a part never reads before its longer backfill
            required = max(required, self._floor)
        if required >= self.replay_start:
            return None
        return max(required, data_start)

    def _data_start(self) -> float | None:
        stats = self.storage.catalog.series_stats()
        firsts = [stats[s.key][3] for s in self.executor.sources if s.key in stats]
        known = [first for first in firsts if first is not None]
        return min(known) if known else None

    def _further_back(self) -> float | None:
        """Where to read from when rows at the start were withheld for want of an output's
        value (a part of a longer backfill): twice as far back as now, the floor at the end."""
        assert self.replay_start is not None and self.start is not None
        assert self._floor is not None
        lowest = self._floor
        data_start = self._data_start()
        if data_start is not None:
            lowest = max(lowest, data_start)
        if self.replay_start <= lowest:
            return None
        if self.restarts + 1 >= _MAX_RESTARTS:
            return lowest
        span = max(self.start - self.replay_start, 1.0)
        return max(self.start - 2.0 * span, lowest)

    def __iter__(self) -> Iterator[pa.Table]:
        try:
            yield from self._tables()
        finally:
            self.close()

    def _tables(self) -> Iterator[pa.Table]:
        while True:
            restarted = False
            # closed at once, also when a feature raises (else its reading threads would run
            # on for as long as the exception's traceback holds the generator)
            with contextlib.closing(self.replay.chunks()) as chunks:
                restarted = yield from self._chunks(chunks)
            if not restarted:
                break
        held = self.combiner.finish()
        if held is not None:
            self.rows_out += held.num_rows
            yield held

    def _chunks(self, chunks: Iterable[MergedChunk]) -> Generator[pa.Table, None, bool]:
        """The tables of ``chunks``; returns whether the warm-up was extended (the reading
        starts again, earlier)."""
        for chunk in chunks:
            produced = self.executor.process(chunk.sources)
            self.events_in += chunk.size
            table, stamps = self.combiner.combine(chunk.size, produced, chunk.output_from)
            if stamps is not None and not self._checked:
                earlier = self._needs_earlier_start(stamps)
                if earlier is None and self._floor is not None and self.combiner.withheld:
                    earlier = self._further_back()
                if earlier is not None and self.restarts < _MAX_RESTARTS:
                    self.restarts += 1
                    self.events_in = 0
                    self._build(earlier)
                    return True
                self._checked = True
            if table is not None and table.num_rows:
                self.rows_out += table.num_rows
                yield table
        return False

    def table(self) -> pa.Table:
        """Every row as one table (``timestamp`` then ``<feature>.<field>`` columns)."""
        return concat_rows(self)

    def close(self) -> None:
        """Close the storage if this backfill opened it."""
        if self._owns_storage:
            self.storage.close()

    def __enter__(self) -> Backfill:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def backfill(
    config: FeaturizerConfig,
    storage: Storage | str | os.PathLike[str] | None = None,
    *,
    workers: int = 1,
    scaler: str = "local",
    **options: Any,
) -> pa.Table:
    """The combined feature vectors of ``config`` over a stored range, as one Arrow table.

    The same rows as ``featurizer replay`` (and
    :class:`~featurizer.offline.OfflineFeatureStreamGenerator`) over the same range, computed
    with the features' columnar kernels; ``table.to_pandas()`` gives a DataFrame (with pandas
    installed).

    :param config: the features, range, warm-up and storage root.
    :param storage: a storage, a root, or ``None`` for the config's.
    :param workers: split the range into this many parts computed in parallel (each with its
        warm-up, see :func:`featurizer.offline.split`); the rows are the same.
    :param scaler: ``local`` (processes on this machine) or ``ray`` (Ray tasks).
    :param options: ``start``, ``end``, ``warmup``, ``per``, ``holes``, ``plugins``,
        ``chunk_rows``, ``kernels`` (see :class:`Backfill`).
    :returns: the rows.
    :raises BackfillPartError: with ``workers`` > 1, when a part fails (one line naming the
        part, its range and the cause).
    """
    if workers != 1:
        from featurizer.batch._parallel import backfill_parallel

        return backfill_parallel(config, storage, workers=workers, scaler=scaler, **options)
    with Backfill(config, storage, **options) as job:
        return job.table()


def concat_rows(tables: Iterable[pa.Table]) -> pa.Table:
    """``tables`` of backfill rows as one table (a ``timestamp`` column alone if none)."""
    import pyarrow as pa

    collected = list(tables)
    if not collected:
        return pa.table({"timestamp": pa.array([], pa.float64())})
    schema = collected[0].schema
    return pa.concat_tables([t.cast(schema) for t in collected])
