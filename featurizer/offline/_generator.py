"""OfflineFeatureStreamGenerator: features over a stored range, pulled one vector at a time."""

from __future__ import annotations

import collections
import operator
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from featurizer._events import Event, GroupedNamedDataEvent
from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph
from featurizer._sinks import flatten_grouped
from featurizer.offline._range import PER_CHOICES, StoredRange
from featurizer.storage._replay import Replay, ReplayChunk
from featurizer.storage._storage import Storage

if TYPE_CHECKING:
    import datetime as dt

    from featurizer._config import FeaturizerConfig
    from featurizer._plugins import Plugins
    from featurizer.storage._reader import Hole

__all__ = ["PER_CHOICES", "OfflineFeatureStreamGenerator"]

_call = operator.call
_MAX_RESTARTS = 8
FeatureCallback = Callable[[Feature, Event], None]


def _drain(iterator: Iterator[Any]) -> None:
    collections.deque(iterator, maxlen=0)


class OfflineFeatureStreamGenerator:
    """Replays stored data sources through the config's :class:`FeatureStreamGraph` and yields
    its combined feature vectors.

    The data sources of the graph are read from ``storage`` over ``start_date``..``end_date``
    (the config's, or the ``start``/``end`` arguments), merged in timestamp order (recorded
    arrival order breaking ties) and pushed through the compiled graph: the same code that
    runs live, so the vectors equal those computed live from the same events, bit for bit.
    ``warmup`` seconds of data before the start are replayed first without yielding anything,
    so windowed features are already correct at the start. If the first vector shows that an
    output's latest value was computed from a window reaching further back than the warm-up
    (a feature that last updated well before the start), the replay restarts from early
    enough (:attr:`restarts` counts this), so the vectors equal those of a replay of the whole
    recording for every windowed feature.

    Use :meth:`has_next` / :meth:`next`, or iterate. Each item is a
    :data:`~featurizer.GroupedNamedDataEvent` (the latest event of every output, in
    :meth:`FeatureStreamGraph.get_outs` order); :func:`featurizer._sinks.flatten_grouped`
    turns it into a flat row (``rows()`` does so for you).

    :param config: the features (and by default the range, warm-up and storage root).
    :param storage: a :class:`~featurizer.storage.Storage`, a root directory, or ``None`` for
        the config's root.
    :param start: overrides ``start_date`` (a datetime or epoch seconds).
    :param end: overrides ``end_date`` (exclusive).
    :param warmup: overrides the config's (or the derived) warm-up, in seconds.
    :param per: one of :data:`PER_CHOICES`.
    :param holes: what to do about holes in the range (``warn``, ``error``, ``ignore``).
    :param plugins: the plugins to resolve definitions with.
    :param segment_rows: events decoded at once per source.
    :param prefetch: decoded segments buffered per source.
    :raises NoDataError: a data source is not stored or has no data in the range.
    :raises StorageError: for damaged blocks, overlapping recordings or schema mismatches.
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
        segment_rows: int = 16_384,
        prefetch: int = 8,
    ) -> None:
        stored = StoredRange.resolve(
            config, storage, start=start, end=end, warmup=warmup, per=per, plugins=plugins
        )
        self.config = config
        self.storage = stored.storage
        self._owns_storage = stored.owns_storage
        self._features = stored.features
        self._out: list[GroupedNamedDataEvent] = []
        self._collect: Callable[[GroupedNamedDataEvent], None] = self._out.append
        self._callbacks: list[tuple[Feature, FeatureCallback]] = []
        self.start = stored.start
        self.end = stored.end
        self.warmup = stored.warmup
        self.per = per
        self._holes = holes
        self._segment_rows = segment_rows
        self._prefetch = prefetch
        self._needs = stored.needs
        self.restarts = 0
        """How many times the warm-up was extended (see the class docs)."""
        replay_start = stored.replay_start
        self._checked = stored.checked
        self.events_in = 0
        """Input events pushed through the graph so far (warm-up included)."""
        self.outputs_out = 0
        """Vectors yielded so far."""
        self._buffer: collections.deque[GroupedNamedDataEvent] = collections.deque()
        self._held: GroupedNamedDataEvent | None = None
        self._exhausted = False
        self._build(replay_start)

    def _build(self, replay_start: float | None) -> None:
        """A fresh graph (same callbacks) and a replay from ``replay_start``."""
        self.graph = FeatureStreamGraph(
            self._features, combine_outputs=True, combined_out_callback=self._on_combined
        )
        for feature, callback in self._callbacks:
            self.graph.set_callback(feature, callback)
        self.sources: list[Feature] = self.graph.get_ins()
        self.replay_start = replay_start
        try:
            self.replay: Replay = self.storage.replay(
                self.sources,
                start=replay_start,
                end=self.end,
                output_start=self.start if not self._checked else None,
                holes=self._holes,
                segment_rows=self._segment_rows,
                prefetch=self._prefetch,
            )
        except BaseException:
            self.close()
            raise
        self._inputs = [self.graph.input_callback(source) for source in self.sources]
        self._chunks: Iterator[ReplayChunk] | None = None

    def set_callback(self, feature: Feature, callback: FeatureCallback) -> None:
        """Observe every event of a node of the graph (see
        :meth:`FeatureStreamGraph.set_callback`); kept if the warm-up is extended.

        Events computed during the warm-up are observed too.
        """
        self.graph.set_callback(feature, callback)
        self._callbacks.append((feature, callback))

    def _first_output_needs_more(self, grouped: GroupedNamedDataEvent) -> float | None:
        """An earlier replay start if an output's value at the start depends on older data."""
        assert self.replay_start is not None
        data_start = self._data_start()
        if data_start is None or self.replay_start <= data_start:
            return None
        required = min(event["timestamp"] - self._needs.get(f, 0.0) for f, event in grouped)
        if required >= self.replay_start:
            return None
        return max(required, data_start)

    def _data_start(self) -> float | None:
        stats = self.storage.catalog.series_stats()
        firsts = [stats[s.key][3] for s in self.sources if s.key in stats]
        known = [first for first in firsts if first is not None]
        return min(known) if known else None

    def _restart(self, replay_start: float) -> None:
        self.replay.close()
        self._out.clear()
        self.events_in = 0
        self.restarts += 1
        self._build(replay_start)

    @property
    def holes(self) -> list[Hole]:
        """The holes of the replayed range (reported, never filled)."""
        return list(self.replay.holes)

    @property
    def total_events(self) -> int:
        """An upper bound of the input events this replay pushes (for progress bars)."""
        return self.replay.total_rows

    def _on_combined(self, grouped: GroupedNamedDataEvent) -> None:
        self._collect(grouped)

    @staticmethod
    def _ignore(grouped: GroupedNamedDataEvent) -> None:
        pass

    def _emit(self, chunk: ReplayChunk) -> None:
        self._collect = self._ignore if chunk.warmup else self._out.append
        if isinstance(chunk.sources, int):
            _drain(map(self._inputs[chunk.sources], chunk.events))
        else:
            callbacks = list(map(self._inputs.__getitem__, chunk.sources))
            _drain(map(_call, callbacks, chunk.events))
        self.events_in += len(chunk.events)

    def _fill(self) -> None:
        while not self._buffer and not self._exhausted:
            if self._chunks is None:
                self._chunks = self.replay.chunks()
            chunk = next(self._chunks, None)
            if chunk is None:
                self._exhausted = True
                if self._held is not None:
                    self._buffer.append(self._held)
                    self._held = None
                self.close()
                break
            self._emit(chunk)
            out = self._out
            if not out:
                continue
            if not self._checked:
                earlier = self._first_output_needs_more(out[0])
                if earlier is not None and self.restarts < _MAX_RESTARTS:
                    self._restart(earlier)
                    continue
                self._checked = True
            if self.per == "event":
                self._buffer.extend(out)
            else:
                self._collapse(out)
            out.clear()

    def _collapse(self, out: list[GroupedNamedDataEvent]) -> None:
        held = self._held
        for grouped in out:
            if held is not None and _stamp(held) != _stamp(grouped):
                self._buffer.append(held)
            held = grouped
        self._held = held

    def has_next(self) -> bool:
        """Whether another vector is available (reads and computes until one is).

        :raises StorageError: if a block turns out to be damaged.
        """
        if not self._buffer:
            self._fill()
        return bool(self._buffer)

    def next(self) -> GroupedNamedDataEvent:
        """The next combined vector.

        :raises StopIteration: at the end of the range.
        """
        if not self.has_next():
            raise StopIteration
        self.outputs_out += 1
        return self._buffer.popleft()

    def __iter__(self) -> OfflineFeatureStreamGenerator:
        return self

    def __next__(self) -> GroupedNamedDataEvent:
        return self.next()

    def rows(self) -> Iterator[dict[str, Any]]:
        """The remaining vectors as flat rows (``timestamp`` and ``<feature>.<field>``)."""
        for grouped in self:
            yield flatten_grouped(grouped)

    def close(self) -> None:
        """Stop the prefetch threads (and close the storage if this generator opened it)."""
        replay = getattr(self, "replay", None)
        if replay is not None:
            replay.close()
        if self._owns_storage:
            self.storage.close()

    def __enter__(self) -> OfflineFeatureStreamGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stamp(grouped: GroupedNamedDataEvent) -> float:
    return max(event["timestamp"] for _, event in grouped)
