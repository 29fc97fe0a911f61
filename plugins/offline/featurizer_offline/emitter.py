"""The offline emitter: replays stored data-source events into a graph, like a live emitter."""

from __future__ import annotations

import collections
import operator
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurizer import (
    DataSourceEventEmitter,
    EmitterError,
    Event,
    EventCallback,
    Feature,
    FeaturizerConfig,
)
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


class OfflineEventEmitter(DataSourceEventEmitter):
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

    :param options: storage root, range, pace and bounds.

    >>> emitter = OfflineEventEmitter.from_options({"storage": "/data", "pace": 10})
    >>> emitter.options.pace
    10.0
    """

    def __init__(self, options: OfflineOptions | None = None) -> None:
        self.options = options or OfflineOptions()
        self._config: FeaturizerConfig | None = None
        self._callbacks: dict[Feature, list[EventCallback]] = {}
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopping = False
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._storage: Storage | None = None
        self.replay: Replay | None = None
        self.emitted = 0
        """Events emitted so far."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OfflineEventEmitter:
        """Build from run options (see :class:`OfflineOptions` for the keys); a ``config``
        option (what a scaled-out run's workers pass) is bound as :meth:`bind_config` does.

        :raises ConfigError: for an invalid option value.
        """
        emitter = cls(OfflineOptions.from_mapping(options))
        config = options.get("config")
        if config is not None:
            emitter.bind_config(config)
        return emitter

    def bind_config(self, config: FeaturizerConfig) -> None:
        """Take the storage root and range from ``config`` where the options leave them open.

        Called by the plugin's ``featurizer_before_run`` hook for the run's config, and by
        :meth:`from_options` in the workers of a scaled-out run.
        """
        self._config = config

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every stored event of data source ``feature`` to ``callback(event)``.

        :raises EmitterError: if ``feature`` is not a data source, or after :meth:`start`.
        """
        if self._started:
            raise EmitterError(f"offline emitter: cannot register {feature.name!r} after start()")
        if not feature.is_data_source:
            raise EmitterError(
                f"the offline emitter replays data sources; {feature.name!r} (definition "
                f"{feature.definition_name!r}) is a feature"
            )
        self._callbacks.setdefault(feature, []).append(callback)

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
                list(self._callbacks),
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
        if not self._callbacks:
            return 0
        replay = self.open()
        callbacks = [_fan_out(self._callbacks[feature]) for feature in replay.sources]
        options = self.options
        remaining = options.max_events if options.max_events is not None else -1
        deadline = time.monotonic() + options.duration if options.duration is not None else None
        pace = None if options.pace == "max" else float(options.pace)
        clock: list[float] = []
        count = 0
        try:
            for whole in replay.chunks():
                if self._stopping:
                    break
                chunk = whole
                if remaining >= 0 and len(chunk) > remaining - count:
                    chunk = _truncate(chunk, remaining - count)
                if pace is None:
                    _emit(chunk, callbacks)
                    sent = len(chunk)
                else:
                    sent = self._emit_paced(chunk, callbacks, pace, clock, deadline)
                count += sent
                self.emitted = count
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
        wait = self._stop_event.wait
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

    def _target(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self._error = error
        finally:
            self._close_storage()
            self._done.set()

    def _close_storage(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def start(self) -> None:
        """Check the stored data (raising on problems), then replay on a background thread.

        :raises EmitterError: if called twice.
        :raises StorageError: (and subclasses) if the data cannot be replayed.
        """
        with self._lock:
            if self._started:
                raise EmitterError("offline emitter: start() called twice")
            self._started = True
            if self._stopping:
                self._done.set()
                return
            if self._callbacks:
                try:
                    self.open()
                except BaseException:
                    self._close_storage()
                    self._done.set()
                    raise
            self._thread = threading.Thread(
                target=self._target, name="featurizer-offline-emitter", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop replaying and join the thread; safe to call twice and before :meth:`start`."""
        with self._lock:
            self._stopping = True
            self._stop_event.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        elif thread is None:
            self._close_storage()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the replay finished (end of data, a bound, stop or failure)."""
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        """The exception that ended the replay thread, if any."""
        return self._error


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
