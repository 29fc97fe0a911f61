"""The input log of a checkpointed run: its data-source events, in Featurizer Storage.

Every event a checkpointed run consumes is appended to a :class:`~featurizer.storage.BlockWriter`
before the graph computes it. The writer's write-ahead log makes it durable within
``sync_interval`` (*acknowledged*), and a checkpoint syncs it before committing, so the log
always holds every event up to the last checkpoint's cut.

Each process of the run writes its own storage root, ``<checkpoint dir>/log/<n>`` (``n`` =
1, 2, ...): a restarted live feed re-sends event times a previous process already stored (a
new book snapshot, exchange timestamps before the crash), which one root refuses as an
overlapping recording, and rightly so for recordings. Within a root, arrival numbers
(``__seq__``) are global across series; roots follow each other. The log in consumption order
is therefore: roots in order, each merged by arrival number.

A long-running process rotates to a new root every ``log_rotate_events`` events (at a
checkpoint), and roots whose events every kept checkpoint has consumed are deleted. What was
deleted is recorded first, atomically, in ``pruned.json`` (the roots and their event counts
per source), so reading the tail skips the right number of events even if a crash interrupted
the deletion.

A worker of a scaled-out run with a live source keeps a log of its own the same way, under
``<checkpoint dir>/workers/<index>/log`` (see ``featurizer.scaling._worker_log``).

A run whose every emitter replays its input itself keeps no log (see
:meth:`featurizer.checkpoint.Checkpointer.start`): it discards a log an earlier process left
(:func:`discard_log`, atomically). A logging process that resumes a cut the log does not
hold (an earlier process did not log) starts the log at that cut (:func:`start_log_at`):
``pruned.json`` then counts the consumed events as if they had been logged and deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.storage import SEQ_COLUMN, BlockWriter, Storage

__all__ = ["PRUNED", "InputLog", "discard_log", "log_roots", "read_pruned", "start_log_at"]

PRUNED = "pruned.json"
"""The record of deleted roots in a log directory: ``{"roots": [...], "counts": {key: n}}``."""


def read_pruned(directory: Path) -> tuple[set[str], dict[str, int]]:
    """The names of the deleted roots and their events per data-source key."""
    import json

    try:
        data = json.loads((directory / PRUNED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set(), {}
    return set(data["roots"]), {k: int(v) for k, v in data["counts"].items()}


def _write_pruned(directory: Path, roots: Sequence[str], counts: Mapping[str, int]) -> None:
    """Replace ``pruned.json`` atomically (written, fsynced, renamed)."""
    import json
    import os

    tmp = directory / f".{PRUNED}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump({"roots": sorted(roots), "counts": dict(counts)}, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, directory / PRUNED)


def discard_log(directory: Path) -> None:
    """Delete a log directory: renamed away first (atomic), so that a crash leaves either
    the whole log or none."""
    import shutil

    doomed = directory.with_name(f".{directory.name}.discarded")
    shutil.rmtree(doomed, ignore_errors=True)
    if directory.is_dir():
        directory.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)


def start_log_at(directory: Path, consumed: Mapping[str, int]) -> None:
    """Start an empty log at a cut: ``consumed`` events per data-source key count as
    logged and deleted, so :meth:`InputLog.tail` skips none of the events logged next."""
    import shutil

    discard_log(directory)
    staging = directory.with_name(f".{directory.name}.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _write_pruned(staging, [], consumed)
    staging.rename(directory)


def log_roots(directory: Path) -> list[Path]:
    """The storage roots of a log directory still in use, in the order they were written."""
    if not directory.is_dir():
        return []
    pruned, _ = read_pruned(directory)
    return sorted(
        (
            p
            for p in directory.iterdir()
            if p.is_dir() and p.name.isdigit() and p.name not in pruned
        ),
        key=_number,
    )


def _number(path: Path) -> int:
    return int(path.name)


class InputLog:
    """The data-source events of a checkpointed run.

    :param directory: the log directory (``<checkpoint dir>/log``).
    :param sources: the data sources of the run's graph.
    :param sync_interval: seconds between acknowledgements.
    """

    def __init__(
        self, directory: Path, sources: Sequence[Feature], sync_interval: float = 0.1
    ) -> None:
        self._directory = directory
        self._sources = list(sources)
        self._sync_interval = sync_interval
        self._storage: Storage | None = None
        self._writer: BlockWriter | None = None

    def open_writer(self) -> None:
        """Start recording into a new root, after publishing what earlier (crashed) processes
        acknowledged in theirs."""
        roots = log_roots(self._directory)
        for root in roots:
            with Storage(root) as storage:
                storage.recover()
        self._open_next()

    def _open_next(self) -> None:
        numbers = (
            [_number(p) for p in self._directory.glob("[0-9]*") if p.name.isdigit()]
            if self._directory.is_dir()
            else []
        )
        number = max(numbers, default=0) + 1
        self._storage = Storage(self._directory / f"{number:06d}")
        # Nobody reads a root while its process writes it (tail() skips it): no block is
        # written early for readers (max_block_lag), and no book snapshots are stored (a
        # resumed run replays the log from a cut, never from a time).
        self._writer = self._storage.writer(
            self._sources,
            sync_interval=self._sync_interval,
            max_block_lag=None,
            snapshot_interval=None,
        )

    def rotate(self) -> None:
        """Close the current root (every event written) and record into a new one."""
        writer, storage = self._writer, self._storage
        self._writer = self._storage = None
        try:
            if writer is not None:
                writer.stop()
        finally:
            if storage is not None:
                storage.close()
        self._open_next()

    def prune(self, covered: Mapping[str, int]) -> int:
        """Delete the oldest roots whose events are all within ``covered`` (per data-source
        key: the events the oldest kept checkpoint consumed); returns how many."""
        import shutil

        pruned, counts = read_pruned(self._directory)
        current = None if self._storage is None else self._storage.root
        deletable: list[Path] = []
        totals = dict(counts)
        for root in log_roots(self._directory):
            if current is not None and root.resolve() == current:
                break
            with Storage(root) as storage:
                stored = {series.key for series in storage.series()}
                rows = {
                    s.key: sum(b.rows for b in storage.plan(s).blocks)
                    for s in self._sources
                    if s.key in stored
                }
            after = {key: totals.get(key, 0) + rows.get(key, 0) for key in {*totals, *rows}}
            if any(after[key] > covered.get(key, 0) for key in after):
                break
            deletable.append(root)
            totals = after
        if not deletable:
            return 0
        _write_pruned(self._directory, sorted(pruned | {r.name for r in deletable}), totals)
        for root in deletable:
            shutil.rmtree(root, ignore_errors=True)
        return len(deletable)

    def recorder(self, source: Feature) -> Callable[[Event], None]:
        """The hot-path callback appending events of ``source``."""
        assert self._writer is not None
        return self._writer.event_callback(source)

    def sync(self) -> None:
        """Acknowledge everything appended so far (before a checkpoint commits)."""
        if self._writer is not None:
            self._writer.sync(timeout=None)

    def close(self) -> None:
        """Write every recorded event and close the storage."""
        try:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
        finally:
            if self._storage is not None:
                self._storage.close()
                self._storage = None

    def tail(self, consumed: Mapping[str, int]) -> Iterator[tuple[Feature, Event]]:
        """The logged events after a cut, in the order the run consumed them.

        Roots being written by this process are not read (they hold nothing consumed before).

        :param consumed: per data-source key, the events consumed at the cut (the first that
            many of its events in the log are skipped).
        """
        _, pruned = read_pruned(self._directory)
        skip = {key: count - pruned.get(key, 0) for key, count in consumed.items()}
        current = None if self._storage is None else self._storage.root
        for root in log_roots(self._directory):
            if current is not None and root.resolve() == current:
                continue
            with Storage(root) as storage:
                if self._writer is None:
                    storage.recover()
                yield from self._root_tail(storage, skip)

    def _root_tail(self, storage: Storage, skip: dict[str, int]) -> Iterator[tuple[Feature, Event]]:
        """One root's events after the skipped ones, merged by arrival number.

        The arrival numbers are read alone (one column of each block), sorted once with
        Arrow, and the events of each series decoded in order by the storage's own reader.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        stored = {series.key for series in storage.series()}
        tails: list[tuple[Feature, Iterator[Event]]] = []
        seqs: list[Any] = []
        owners: list[Any] = []
        for source in self._sources:
            if source.key not in stored:
                continue
            plan = storage.plan(source)
            if not plan.blocks:
                continue
            column = pa.concat_arrays(
                [
                    chunk
                    for block in plan.blocks
                    for chunk in pq.read_table(storage.root / block.path, columns=[SEQ_COLUMN])
                    .column(SEQ_COLUMN)
                    .chunks
                ]
            )
            skipped = min(skip.get(source.key, 0), len(column))
            skip[source.key] = skip.get(source.key, 0) - skipped
            if skipped == len(column):
                continue
            events = storage.iter_events(source)
            for _ in range(skipped):
                next(events)
            seqs.append(column.slice(skipped))
            owners.append(pa.array([len(tails)] * (len(column) - skipped), type=pa.int32()))
            tails.append((source, events))
        if not tails:
            return
        order = pc.sort_indices(pa.concat_arrays(seqs))
        by_position = pc.take(pa.concat_arrays(owners), order).to_pylist()
        for index in by_position:
            source, events = tails[index]
            yield source, next(events)
