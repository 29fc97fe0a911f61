"""The offline emitter: replays stored data-source events into a graph, like a live emitter."""

from __future__ import annotations

import collections
import operator
import time
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from featurizer import (
    EmitterError,
    EmitterOption,
    Event,
    EventCallback,
    Feature,
    FeaturizerConfig,
    GeneratorEmitter,
)
from featurizer._emitter import EmitterLimits
from featurizer.storage import Replay, ReplayChunk, Storage, resolve_root
from featurizer_offline.options import OfflineOptions

__all__ = ["OfflineEventEmitter"]

_call = operator.call


def _fan_out(callbacks: list[EventCallback]) -> EventCallback:
    if len(callbacks) == 1:
        return callbacks[0]

    def call_all(event: Event) -> None:
        for callback in callbacks:
            callback(event)

    return call_all


def _integer(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


class OfflineEventEmitter(GeneratorEmitter):
    """Replays recorded data-source events from Featurizer Storage.

    Serves any data source that has a stored series (``ticker``, ``trades``, ``l2_book`` or
    any other definition): the events are read from the storage root over ``start``..``end``,
    prefetched by background threads with bounded memory, merged across sources in timestamp
    order (the recorded arrival order breaks ties, so equal timestamps come out as they were
    recorded) and pushed to the callbacks from one thread, as fast as possible or paced at
    ``pace`` times the recorded speed. ``featurizer run CONFIG --emitter offline`` therefore
    computes features through exactly the live code path.

    The storage root and range come from the options, else from the run's config (bound by
    this plugin's ``featurizer_before_run`` hook), else the defaults. Everything that can be
    checked before emitting (stored series, schemas, data in range, block files present) is
    checked by :meth:`start`, which raises; a block found damaged while replaying stops the
    emitter with the error (see :meth:`failure`).

    The thread, stopping, waiting and error reporting are :class:`~featurizer.GeneratorEmitter`'s
    (:meth:`prepare` opens the replay, :meth:`release` closes the storage); :meth:`run` is
    overridden to push whole replay chunks at a time, the fast path of a replay, and
    :meth:`events` gives the same events one by one.

    A source rebuilt from snapshots (an ``l2_book``) is replayed from its last full-state
    event before ``start``; the events before ``start`` are warm-up: they go to the callbacks
    of :meth:`register_warmup_callback` (so the runner feeds them to the graph but writes none
    of their rows), unpaced and not counted toward ``max_events``.

    The emitter :attr:`replays_input`: started again with the same options it reads the same
    stored events, in the same order (storage is the log), so a checkpointed run over it
    keeps no input log. A recording still being written to the root is read as a consistent
    cut that only grows: each data source's events read again start with the same events as
    before (the resumed run skips those it had consumed), and the events after them are those
    recorded by the time it restarted.

    :param options: storage root, range, pace and bounds.

    >>> emitter = OfflineEventEmitter.from_options({"storage": "/data", "pace": 10})
    >>> emitter.options.pace
    10.0
    """

    replays_input = True

    declared_options = (
        EmitterOption(name="storage", help="the storage root to replay"),
        EmitterOption(name="start", help="first time replayed (ISO-8601 or epoch seconds)"),
        EmitterOption(name="end", help="end of the replayed range (exclusive)"),
        EmitterOption(name="holes", help="what to do about time not recorded"),
        EmitterOption(name="segment_rows", parse=_integer, help="rows read per segment"),
        EmitterOption(name="prefetch", parse=_integer, help="segments read ahead per source"),
    )

    def __init__(self, options: OfflineOptions | None = None) -> None:
        super().__init__({})
        self.options = options or OfflineOptions()
        self._config: FeaturizerConfig | None = None
        self._lists: dict[Feature, list[EventCallback]] = {}
        self._warmups: dict[Feature, list[EventCallback]] = {}
        self._storage: Storage | None = None
        self.replay: Replay | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OfflineEventEmitter:
        """Build from run options (see :class:`OfflineOptions` for the keys); a ``config``
        option (what a scaled-out run's workers pass) is bound as :meth:`bind_config` does.

        :raises ConfigError: for an invalid option value.
        """
        declared = {option.name: option for option in cls.declared_options}
        values = {
            key: declared[key].value(value, emitter="offline") if key in declared else value
            for key, value in options.items()
        }
        emitter = cls(OfflineOptions.from_mapping(values))
        config = options.get("config")
        if config is not None:
            emitter.bind_config(config)
        return emitter

    def limits(self) -> EmitterLimits:
        """The bounds and pace of :attr:`options`."""
        options = self.options
        return EmitterLimits(
            max_events=options.max_events, duration=options.duration, pace=options.pace
        )

    def check_source(self, feature: Feature) -> None:
        """Refuse a feature that is not a data source (only data sources are stored).

        :raises EmitterError: naming the feature.
        """
        if not feature.is_data_source:
            raise EmitterError(
                f"the offline emitter replays data sources; {feature.name!r} (definition "
                f"{feature.definition_name!r}) is a feature"
            )

    def bind_config(self, config: FeaturizerConfig) -> None:
        """Take the storage root and range from ``config`` where the options leave them open.

        Called by the plugin's ``featurizer_before_run`` hook for the run's config, and by
        :meth:`from_options` in the workers of a scaled-out run.
        """
        self._config = config

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every stored event of data source ``feature`` to ``callback(event)``.

        A data source may have several callbacks (each receives every event).

        :raises EmitterError: if ``feature`` is not a data source, or after :meth:`start`.
        """
        if self._started:
            raise EmitterError(f"offline emitter: cannot register {feature.name!r} after start()")
        self.check_source(feature)
        self._lists.setdefault(feature, []).append(callback)
        self._callbacks[feature] = _fan_out(self._lists[feature])

    def register_warmup_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send the warm-up events of data source ``feature`` (those before ``start``,
        replayed from its last snapshot) to ``callback(event)``; without one, warm-up events go
        to the :meth:`register_callback` callbacks like the others.

        :raises EmitterError: if ``feature`` is not a data source, or after :meth:`start`.
        """
        if self._started:
            raise EmitterError(f"offline emitter: cannot register {feature.name!r} after start()")
        self.check_source(feature)
        self._warmups.setdefault(feature, []).append(callback)

    # resolving ------------------------------------------------------------------------------

    def root(self) -> Path:
        """The storage root this emitter reads."""
        config = self._config
        return resolve_root(
            config.storage if config is not None else None,
            config_path=config.path if config is not None else None,
            override=self.options.storage,
        )

    def time_range(self) -> tuple[float | None, float | None]:
        """The replayed range ``[start, end)`` in epoch seconds (``None``: unbounded)."""
        start, end = self.options.start, self.options.end
        config = self._config
        if config is not None:
            if start is None and config.start_date is not None:
                start = config.start_date.timestamp()
            if end is None and config.end_date is not None:
                end = config.end_date.timestamp()
        return start, end

    def open(self) -> Replay:
        """Open the storage and plan the replay (every check that needs no block contents).

        :raises StorageError: (and subclasses) naming the series, block and path at fault.
        """
        if self.replay is not None:
            return self.replay
        storage = Storage.open(self.root())
        start, end = self.time_range()
        try:
            self.replay = storage.replay(
                list(self._lists),
                start=start,
                end=end,
                holes=self.options.holes,
                segment_rows=self.options.segment_rows,
                prefetch=self.options.prefetch,
            )
        except BaseException:
            storage.close()
            raise
        self._storage = storage
        return self.replay

    # running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Replay on the calling thread until the data ends, a bound or :meth:`stop`.

        :meth:`start` runs this on a background thread. Exceptions raised by callbacks or by a
        damaged block propagate.

        :returns: the number of events emitted.
        """
        if not self._lists:
            return 0
        replay = self.open()
        callbacks = [self._callbacks[feature] for feature in replay.sources]
        warmups = [
            _fan_out(self._warmups[feature]) if feature in self._warmups else callbacks[i]
            for i, feature in enumerate(replay.sources)
        ]
        options = self.options
        remaining = options.max_events if options.max_events is not None else -1
        deadline = time.monotonic() + options.duration if options.duration is not None else None
        pace = None if options.pace == "max" else float(options.pace)
        clock: list[float] = []
        count = 0
        try:
            for whole in replay.chunks():
                if self._stopping.is_set():
                    break
                if whole.warmup:
                    _emit(whole, warmups)
                    continue
                chunk = whole
                if remaining >= 0 and len(chunk) > remaining - count:
                    chunk = _truncate(chunk, remaining - count)
                if pace is None:
                    _emit(chunk, callbacks)
                    sent = len(chunk)
                else:
                    sent = self._emit_paced(chunk, callbacks, pace, clock, deadline)
                count += sent
                self._emitted = count
                if sent < len(chunk) or count == remaining:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            replay.close()
        return count

    def _emit_paced(
        self,
        chunk: ReplayChunk,
        callbacks: list[EventCallback],
        pace: float,
        clock: list[float],
        deadline: float | None,
    ) -> int:
        monotonic = time.monotonic
        wait = self._stopping.wait
        sources = chunk.sources
        sent = 0
        for i, event in enumerate(chunk.events):
            if not clock:
                clock.extend((monotonic(), event["timestamp"]))
            due = clock[0] + (event["timestamp"] - clock[1]) / pace
            now = monotonic()
            if deadline is not None and min(due, now) >= deadline:
                return sent
            if due > now:
                if deadline is not None and due >= deadline:
                    wait(deadline - now)
                    return sent
                if wait(due - now):
                    return sent
            callbacks[sources if isinstance(sources, int) else sources[i]](event)
            sent += 1
        return sent

    def events(self) -> Iterator[tuple[Hashable, Event]]:
        """The replay's events one by one, keyed by data source (:meth:`run` sends chunks),
        warm-up events included (see :meth:`Replay.chunks` for telling them apart)."""
        replay = self.open()
        for chunk in replay.chunks():
            sources = chunk.sources
            for i, event in enumerate(chunk.events):
                yield replay.sources[sources if isinstance(sources, int) else sources[i]], event

    def prepare(self) -> None:
        """Open the storage and check the stored data before the thread starts.

        :raises StorageError: (and subclasses) if the data cannot be replayed.
        """
        if self._lists:
            self.open()

    def release(self) -> None:
        """Close the storage (safe to call twice)."""
        if self._storage is not None:
            self._storage.close()
            self._storage = None


def _emit(chunk: ReplayChunk, callbacks: list[EventCallback]) -> None:
    sources = chunk.sources
    if isinstance(sources, int):
        collections.deque(map(callbacks[sources], chunk.events), maxlen=0)
    else:
        targets = list(map(callbacks.__getitem__, sources))
        collections.deque(map(_call, targets, chunk.events), maxlen=0)


def _truncate(chunk: ReplayChunk, count: int) -> ReplayChunk:
    sources = chunk.sources if isinstance(chunk.sources, int) else chunk.sources[:count]
    return ReplayChunk(sources, chunk.events[:count], chunk.warmup)
