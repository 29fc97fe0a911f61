"""Parallel backfills: the range cut into consecutive parts, the caller computing one of them.

:func:`~featurizer.batch._parts.plan_parts` cuts the range into parts holding about the same
number of stored events, each with the warm-up that makes windowed features exact at its
start. The calling process computes the first part itself while the others run in workers
(:mod:`featurizer.batch._workers`: processes forked from the caller, so they start with its
imports, or Ray tasks), which write their rows as Arrow IPC streams that the caller reads back
memory-mapped, in order, once its own part is done. The parts' rows, concatenated in order,
are the rows of one backfill over the whole range.

A part that fails (a feature raising, damaged data, a worker process dying) ends the whole
backfill with one :class:`~featurizer.batch._workers.BackfillPartError` naming the part and its
range; the caller notices a failed worker between its own chunks, so it does not finish its part
first. The workers still running are then stopped and their files removed.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._errors import FeaturizerError
from featurizer.batch._backfill import Backfill, concat_rows
from featurizer.batch._parts import Part, plan_parts
from featurizer.batch._workers import (
    BackfillPartError,
    LocalWorker,
    PartResult,
    RayWorkers,
    describe,
    fork_available,
    part_error,
    read_part,
)

if TYPE_CHECKING:
    import datetime as dt

    import pyarrow as pa

    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins
    from featurizer.batch._workers import RayWorker
    from featurizer.storage import Storage

__all__ = ["SCALERS", "BackfillPartError", "ParallelBackfill", "backfill_parallel"]

SCALERS = ("local", "ray")
"""Where the parts other than the caller's run."""


def _resolve(config: FeaturizerConfig, storage: Any) -> Path:
    from featurizer.storage import Storage, resolve_root

    if isinstance(storage, Storage):
        return storage.root
    return Path(resolve_root(config.storage, config_path=config.path, override=storage))


def _preload() -> None:
    """Import what a part needs before forking, so that no worker imports it again."""
    import numpy  # noqa: F401
    import pyarrow.compute
    import pyarrow.ipc
    import pyarrow.parquet  # noqa: F401


class ParallelBackfill:
    """A :class:`~featurizer.batch.Backfill` over ``workers`` parts computed in parallel: the
    same rows, as Arrow tables in order (see the module docs).

    :param config: the features, range, warm-up and storage root.
    :param storage: a storage, a root, or ``None`` for the config's.
    :param workers: the number of parts (the caller computes one of them).
    :param scaler: ``local`` (forked processes) or ``ray`` (Ray tasks).
    :param start: overrides ``start_date``.
    :param end: overrides ``end_date``.
    :param plugins: the plugins to resolve definitions with (with ``local`` workers forked
        from the caller only: others use the installed plugins).
    :param directory: where workers put their rows until the caller reads them (default: the
        system's temporary directory); removed afterwards.
    :param options: ``warmup``, ``per``, ``holes``, ``chunk_rows``, ``kernels`` (see
        :class:`~featurizer.batch.Backfill`).
    :raises FeaturizerError: for an unknown scaler or fewer than one worker.
    :raises BackfillPartError: from the iteration, when a part fails.
    """

    def __init__(
        self,
        config: FeaturizerConfig,
        storage: Storage | str | os.PathLike[str] | None = None,
        *,
        workers: int,
        scaler: str = "local",
        start: dt.datetime | float | None = None,
        end: dt.datetime | float | None = None,
        plugins: Plugins | None = None,
        directory: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        from featurizer.storage import Storage

        if scaler not in SCALERS:
            raise FeaturizerError(
                f"scaler must be one of {', '.join(map(repr, SCALERS))}, received {scaler!r}"
            )
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise FeaturizerError(f"workers must be a positive integer, received {workers!r}")
        import datetime as dt_

        # datetimes go into the config; epoch seconds stay exact (a microsecond datetime
        # could move the bound past an event)
        exact: dict[str, float | None] = {"start": None, "end": None}
        if isinstance(start, dt_.datetime):
            config = attrs.evolve(config, start_date=start)
        elif start is not None:
            exact["start"] = float(start)
        if isinstance(end, dt_.datetime):
            config = attrs.evolve(config, end_date=end)
        elif end is not None:
            exact["end"] = float(end)
        warmup = options.pop("warmup", None)
        if warmup is not None:  # the parts' own warm-up, with the margin of plan_parts
            config = attrs.evolve(config, warmup=float(warmup))
        self.root = _resolve(config, storage)
        with Storage.open(self.root, readonly=True) as opened:
            self.parts: list[Part] = plan_parts(config, opened, workers, plugins=plugins, **exact)
            self.total_events = _stored_rows(opened, self.parts, plugins)
            """An estimate of the input events (for progress bars)."""
        self._scaler = scaler
        self._plugins = plugins
        self._options = options
        self._parent = directory
        self._directory: Path | None = None
        self._workers: list[LocalWorker | RayWorker] = []
        self._ray: RayWorkers | None = None
        self._job: Backfill | None = None
        self._finished: list[PartResult] = []
        self.rows_out = 0
        """Rows produced so far."""

    @property
    def events_in(self) -> int:
        """Input events computed so far by the caller and the finished workers."""
        own = self._job.events_in if self._job is not None else 0
        return own + sum(r.events_in for r in self._finished)

    @property
    def restarts(self) -> int:
        """Warm-up extensions, over the parts."""
        own = self._job.restarts if self._job is not None else 0
        return own + sum(r.restarts for r in self._finished)

    def _start(self) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix=".featurizer-backfill-", dir=self._parent))
        root = str(self.root)
        calls = [
            (part, root, str(self._directory / f"part-{part.index:04d}.arrow"), self._options)
            for part in self.parts[1:]
        ]
        if self._scaler == "ray":
            self._ray = RayWorkers(len(self.parts))
            self._workers = [self._ray.start(*call) for call in calls]
            return
        fork = fork_available()
        options = dict(self._options, plugins=self._plugins) if fork else self._options
        if fork:
            _preload()
        gc.freeze()  # forked workers then never touch (and copy) the caller's objects in a gc
        try:
            for part, root_, path, _ in calls:
                self._workers.append(LocalWorker(part, root_, path, options, fork=fork))
        finally:
            gc.unfreeze()

    def _check_workers(self) -> None:
        """Raise the error of a worker that has failed by now: one that sent its error, or whose
        process has ended (its pipe closed, once its last thread is gone: that can be a while
        after its main thread was killed)."""
        for worker in self._workers:
            error = worker.failure()
            if error is not None:
                raise error

    def _own(self) -> Iterator[pa.Table]:
        part = self.parts[0]
        try:
            self._job = Backfill(
                part.config,
                self.root,
                start=part.start,
                end=part.end,
                plugins=self._plugins,
                **self._options,
            )
        except FeaturizerError as error:
            raise part_error(part, describe(error)) from error
        with self._job as job:
            tables = iter(job)
            while True:
                try:
                    table = next(tables)
                except StopIteration:
                    break
                except Exception as error:
                    raise part_error(part, describe(error)) from error
                yield table
                self._check_workers()

    def __iter__(self) -> Iterator[pa.Table]:
        try:
            self._start()
            for table in self._own():
                self.rows_out += table.num_rows
                yield table
            for worker in self._workers:
                result = worker.result()
                self._finished.append(result)
                for category, message in result.warnings:
                    warnings.warn(message, category, stacklevel=2)
                for table in read_part(result):
                    self.rows_out += table.num_rows
                    yield table
        finally:
            self.close()

    def table(self) -> pa.Table:
        """Every row as one table (``timestamp`` then ``<feature>.<field>`` columns)."""
        return concat_rows(self)

    def close(self) -> None:
        """Stop the workers still running and remove their files."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        if self._ray is not None:
            self._ray.stop()
            self._ray = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> ParallelBackfill:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stored_rows(storage: Storage, parts: list[Part], plugins: Plugins | None) -> int:
    """The stored events of the parts' data sources over their range (an upper bound)."""
    from featurizer._config import construct_features_from_configs
    from featurizer._graph import FeatureStreamGraph
    from featurizer.offline._split import to_timestamp

    sources = FeatureStreamGraph(
        construct_features_from_configs(parts[0].config, plugins)
    ).get_ins()
    start = (
        parts[0].start if parts[0].start is not None else to_timestamp(parts[0].config.start_date)
    )
    end = parts[-1].end if parts[-1].end is not None else to_timestamp(parts[-1].config.end_date)
    return sum(b.rows for s in sources for b in storage.catalog.blocks(s.key, start, end))


def backfill_parallel(
    config: FeaturizerConfig,
    storage: Any = None,
    *,
    workers: int,
    scaler: str = "local",
    **options: Any,
) -> pa.Table:
    """:func:`featurizer.batch.backfill` over ``workers`` parts (see the module docs).

    :raises BackfillPartError: when a part fails.
    """
    with ParallelBackfill(config, storage, workers=workers, scaler=scaler, **options) as job:
        return job.table()
