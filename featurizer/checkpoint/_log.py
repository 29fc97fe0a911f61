"""The input log of a checkpointed run: its data-source events, in Featurizer Storage.

Every event a checkpointed run consumes is appended to a :class:`~featurizer.storage.BlockWriter`
on the storage root ``<checkpoint dir>/log`` before the graph computes it. The writer's
write-ahead log makes it durable within ``sync_interval`` (*acknowledged*), and a checkpoint
syncs it before committing, so the log always holds every event up to the last checkpoint's
cut. Arrival numbers (``__seq__``) are global across series and sessions: the tail after a cut,
merged by arrival number, is the exact order in which the run consumed it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.storage import SEQ_COLUMN, BlockWriter, NoDataError, Storage

__all__ = ["InputLog"]


class InputLog:
    """The data-source events of a checkpointed run.

    :param root: the storage root (``<checkpoint dir>/log``).
    :param sources: the data sources of the run's graph.
    :param sync_interval: seconds between acknowledgements.
    """

    def __init__(self, root: Path, sources: Sequence[Feature], sync_interval: float = 0.1) -> None:
        self._storage = Storage(root)
        self._sources = list(sources)
        self._sync_interval = sync_interval
        self._writer: BlockWriter | None = None

    def open_writer(self) -> None:
        """Start recording (first publishing what a crashed run acknowledged)."""
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
            self._storage.close()

    def _stored(self, source: Feature) -> bool:
        return any(series.key == source.key for series in self._storage.series())

    def tail(self, consumed: Mapping[str, int]) -> Iterator[tuple[Feature, Event]]:
        """The logged events after a cut, in the order the run consumed them.

        :param consumed: per data-source key, the events consumed at the cut (the first that
            many of its series are skipped).
        """
        streams: list[Iterator[tuple[int, int, Feature, Event]]] = []
        for position, source in enumerate(self._sources):
            if not self._stored(source):
                continue
            skip = consumed.get(source.key, 0)
            try:
                seqs = self._storage.read_table(source).column(SEQ_COLUMN).to_pylist()
            except NoDataError:
                continue
            if len(seqs) <= skip:
                continue
            streams.append(self._numbered(source, position, seqs, skip))
        for _seq, _position, source, event in heapq.merge(*streams):
            yield source, event

    def _numbered(
        self, source: Feature, position: int, seqs: list[Any], skip: int
    ) -> Iterator[tuple[int, int, Feature, Event]]:
        for index, event in enumerate(self._storage.iter_events(source)):
            if index >= skip:
                yield seqs[index], position, source, event
