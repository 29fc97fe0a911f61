"""Parallel backfills: the range split into consecutive parts, each with its warm-up.

:func:`featurizer.offline.split` cuts the range and gives every part the warm-up that makes
windowed features exact at its start; each part is a :class:`~featurizer.batch.Backfill`
writing its rows to a Parquet file, in a local process or a Ray task; the parts' rows,
concatenated in order, are the rows of one backfill over the whole range.

Local parts run in worker processes (``fork`` where available and the caller has no other
threads, else ``spawn``). Ray tasks use the running Ray, or start a local one on loopback with
``workers`` CPUs and a small object store (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) and shut it
down afterwards.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._errors import FeaturizerError

if TYPE_CHECKING:
    import pyarrow as pa

    from featurizer._config import FeaturizerConfig
    from featurizer.storage import Storage

__all__ = ["SCALERS", "PartResult", "backfill_parallel", "part_configs", "run_parts"]

SCALERS = ("local", "ray")
"""Where parallel parts run."""


@attrs.frozen(kw_only=True)
class PartResult:
    """One part's outcome: its file, rows and input events."""

    path: str
    rows: int
    events_in: int
    restarts: int


def part_configs(
    config: FeaturizerConfig,
    storage: Storage,
    workers: int,
    start: float | None = None,
    end: float | None = None,
) -> list[FeaturizerConfig]:
    """``workers`` consecutive parts of the range (each with its warm-up)."""
    from featurizer.offline import split
    from featurizer.offline._split import to_datetime

    if start is not None:
        config = attrs.evolve(config, start_date=to_datetime(start))
    if end is not None:
        config = attrs.evolve(config, end_date=to_datetime(end))
    parts = split(config, workers, storage=storage)
    # open ends stay open: the first part reads from the first stored event and the last to
    # the last one, exactly as one process does (no hole reported beyond the data)
    if config.start_date is None:
        parts[0] = attrs.evolve(parts[0], start_date=None)
    if config.end_date is None:
        parts[-1] = attrs.evolve(parts[-1], end_date=None)
    return parts


def _run_part(
    config: FeaturizerConfig, root: str, path: str, options: dict[str, Any]
) -> PartResult:
    """Compute one part into ``path`` (runs in a worker)."""
    from featurizer.batch._backfill import Backfill
    from featurizer.batch._write import write_tables

    with Backfill(config, root, **options) as job:
        rows = write_tables(iter(job), path)
        return PartResult(path=path, rows=rows, events_in=job.events_in, restarts=job.restarts)


def _preload(calls: list[tuple[Any, ...]]) -> None:
    """Import what the parts need before forking, so that no worker imports it again."""
    import pyarrow.parquet  # noqa: F401

    from featurizer.batch._executor import BatchExecutor

    BatchExecutor(calls[0][0])


def _local(calls: list[tuple[Any, ...]], workers: int) -> list[PartResult]:
    import concurrent.futures
    import multiprocessing

    method = "fork" if threading.active_count() == 1 and hasattr(os, "fork") else "spawn"
    if method == "fork":
        _preload(calls)
    context = multiprocessing.get_context(method)
    gc.freeze()  # forked workers then never touch (and copy) the caller's objects in a collection
    try:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=context
        ) as pool:
            futures = [pool.submit(_run_part, *call) for call in calls]
            return [future.result() for future in futures]
    finally:
        gc.unfreeze()


def _ray(calls: list[tuple[Any, ...]], workers: int) -> list[PartResult]:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError as error:
        raise FeaturizerError(
            "the ray scaler needs Ray: pip install featurizer-ray (or ray)"
        ) from error
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",  # a Ray of our own, never whatever Ray runs on the machine
            num_cpus=workers,
            object_store_memory=80 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    try:
        task = ray.remote(num_cpus=1)(_run_part)
        return list(ray.get([task.remote(*call) for call in calls]))
    finally:
        if started:
            ray.shutdown()


def run_parts(
    config: FeaturizerConfig,
    root: Path,
    directory: Path,
    *,
    workers: int,
    scaler: str = "local",
    start: float | None = None,
    end: float | None = None,
    **options: Any,
) -> list[PartResult]:
    """Compute the parts of the range into ``directory`` (one Parquet file each).

    :raises FeaturizerError: for an unknown scaler or fewer than one worker.
    """
    from featurizer.storage import Storage

    if scaler not in SCALERS:
        raise FeaturizerError(
            f"scaler must be one of {', '.join(map(repr, SCALERS))}, received {scaler!r}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FeaturizerError(f"workers must be a positive integer, received {workers!r}")
    with Storage.open(root, readonly=True) as storage:
        parts = part_configs(config, storage, workers, start, end)
    calls = [
        (part, str(root), str(directory / f"part-{i:04d}.parquet"), options)
        for i, part in enumerate(parts)
    ]
    run: Callable[[list[tuple[Any, ...]], int], list[PartResult]] = (
        _local if scaler == "local" else _ray
    )
    return run(calls, workers)


def _resolve(config: FeaturizerConfig, storage: Any) -> Path:
    from featurizer.storage import Storage, resolve_root

    if isinstance(storage, Storage):
        return storage.root
    return Path(resolve_root(config.storage, config_path=config.path, override=storage))


def iter_part_tables(results: list[PartResult]) -> Iterator[pa.Table]:
    """The parts' rows, row group by row group, in order."""
    import pyarrow.parquet as pq

    for result in results:
        parquet = pq.ParquetFile(result.path)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            if table.num_rows:  # a part without rows has only a timestamp column
                yield table


def backfill_parallel(
    config: FeaturizerConfig,
    storage: Any = None,
    *,
    workers: int,
    scaler: str = "local",
    **options: Any,
) -> pa.Table:
    """:func:`featurizer.batch.backfill` over ``workers`` parts (see the module docs)."""
    import pyarrow as pa

    root = _resolve(config, storage)
    directory = Path(tempfile.mkdtemp(prefix="featurizer-backfill-"))
    try:
        results = run_parts(config, root, directory, workers=workers, scaler=scaler, **options)
        tables = list(iter_part_tables(results))
        if not tables:
            return pa.table({"timestamp": pa.array([], pa.float64())})
        schema = tables[0].schema
        return pa.concat_tables([t.cast(schema) for t in tables])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
