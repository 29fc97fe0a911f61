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
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.storage import SEQ_COLUMN, BlockWriter, NoDataError, Storage

__all__ = ["InputLog", "log_roots"]


def log_roots(directory: Path) -> list[Path]:
    """The storage roots of a log directory, in the order the run's processes wrote them."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()), key=_number)


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
        number = _number(roots[-1]) + 1 if roots else 1
        self._storage = Storage(self._directory / f"{number:06d}")
        self._writer = self._storage.writer(self._sources, sync_interval=self._sync_interval)

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
        skip = dict(consumed)
        current = None if self._storage is None else self._storage.root
        for root in log_roots(self._directory):
            if current is not None and root.resolve() == current:
                continue
            with Storage(root) as storage:
                if self._writer is None:
                    storage.recover()
                yield from self._root_tail(storage, skip)

    def _root_tail(self, storage: Storage, skip: dict[str, int]) -> Iterator[tuple[Feature, Event]]:
        stored = {series.key for series in storage.series()}
        streams: list[Iterator[tuple[int, int, Feature, Event]]] = []
        for position, source in enumerate(self._sources):
            if source.key not in stored:
                continue
            try:
                seqs = storage.read_table(source).column(SEQ_COLUMN).to_pylist()
            except NoDataError:
                continue
            skipped = min(skip.get(source.key, 0), len(seqs))
            skip[source.key] = skip.get(source.key, 0) - skipped
            if skipped < len(seqs):
                streams.append(_numbered(storage, source, position, seqs, skipped))
        for _seq, _position, source, event in heapq.merge(*streams):
            yield source, event


def _numbered(
    storage: Storage, source: Feature, position: int, seqs: list[Any], skip: int
) -> Iterator[tuple[int, int, Feature, Event]]:
    for index, event in enumerate(storage.iter_events(source)):
        if index >= skip:
            yield seqs[index], position, source, event
