"""The synthetic emitter: pushes a :class:`~featurizer_synthetic.SyntheticMarket` into a graph."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from featurizer import (
    DataSourceEventEmitter,
    EmitterError,
    Event,
    EventCallback,
    Feature,
    validate_event,
)
from featurizer_synthetic.market import CHANNELS, StreamKey, SyntheticMarket
from featurizer_synthetic.options import SyntheticOptions

__all__ = ["SyntheticEventEmitter"]


def _fan_out(callbacks: list[EventCallback]) -> EventCallback:
    if len(callbacks) == 1:
        return callbacks[0]

    def call_all(event: Event) -> None:
        for callback in callbacks:
            callback(event)

    return call_all


def _validating(feature: Feature, callback: EventCallback) -> EventCallback:
    schema = feature.definition.event_schema()
    origin = f"synthetic emitter, data source {feature.name!r}"

    def checked(event: Event) -> None:
        callback(validate_event(event, schema, origin=origin))

    return checked


class SyntheticEventEmitter(DataSourceEventEmitter):
    """Emits a seeded, deterministic synthetic market for ``ticker``, ``trades`` and ``l2_book``.

    Any ``exchange`` param is accepted; the ``symbol`` param selects the instrument. Only the
    registered ``(channel, symbol)`` streams are generated, and each stream's events depend
    only on the seed and the market options: never on the pace, the wall clock or the other
    streams (see :mod:`featurizer_synthetic.market`). Several features on the same stream
    (e.g. two exchanges) receive the same event objects, which they must not modify.

    The emitter stops at the first bound reached: ``max_events`` events emitted (all streams
    together, so the output is a prefix of the same sequence every time) or ``duration``
    wall-clock seconds. Without a bound it runs until :meth:`stop`; with no registered data
    source it finishes at once.

    :param options: what to generate and when to stop (defaults: seed 0, unbounded, max pace).

    >>> from featurizer_features import TickerSource
    >>> ticker = Feature.create(TickerSource, {"exchange": "synthetic", "symbol": "BTC-USDT"})
    >>> emitter = SyntheticEventEmitter.from_options({"seed": 1, "max_events": 3})
    >>> received = []
    >>> emitter.register_callback(ticker, received.append)
    >>> emitter.run()
    3
    >>> [sorted(event) for event in received][0]
    ['ask', 'ask_size', 'bid', 'bid_size', 'receipt_timestamp', 'timestamp']
    """

    def __init__(self, options: SyntheticOptions | None = None) -> None:
        self.options = options or SyntheticOptions()
        self._callbacks: dict[Feature, tuple[StreamKey, EventCallback]] = {}
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopping = False
        self._stop_event = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._emitted = 0
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SyntheticEventEmitter:
        """Build from run options (see :meth:`SyntheticOptions.from_mapping` for the keys).

        :param options: the run options; unknown keys are ignored.
        :returns: the emitter.
        :raises ConfigError: for an invalid option value.
        """
        return cls(SyntheticOptions.from_mapping(options))

    @property
    def emitted(self) -> int:
        """Events emitted so far (all streams together)."""
        return self._emitted

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Send every event of data source ``feature`` to ``callback(event)``.

        :param feature: a ``ticker``, ``trades`` or ``l2_book`` data source with a ``symbol``.
        :param callback: called with each event, from the emitter's thread.
        :raises EmitterError: for another definition, a missing symbol, or after :meth:`start`.
        """
        if self._started:
            raise EmitterError(f"synthetic emitter: cannot register {feature.name!r} after start()")
        if feature.definition_name not in CHANNELS:
            raise EmitterError(
                f"the synthetic emitter serves data sources {', '.join(map(repr, CHANNELS))}; "
                f"received {feature.name!r} of definition {feature.definition_name!r}"
            )
        symbol = feature.params.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise EmitterError(
                f"synthetic emitter: data source {feature.name!r} needs a 'symbol' param, "
                f"received params {dict(feature.params)!r}"
            )
        self._callbacks[feature] = ((feature.definition_name, symbol), callback)

    def _dispatch_table(self) -> dict[StreamKey, EventCallback]:
        by_stream: dict[StreamKey, list[EventCallback]] = {}
        for feature, (stream, callback) in self._callbacks.items():
            wrapped = _validating(feature, callback) if self.options.validate else callback
            by_stream.setdefault(stream, []).append(wrapped)
        return {stream: _fan_out(callbacks) for stream, callbacks in by_stream.items()}

    def market(self) -> SyntheticMarket:
        """A fresh market for the registered streams, with this emitter's options.

        :returns: the market whose events :meth:`run` emits.
        """
        options = self.options
        return SyntheticMarket(
            {stream for stream, _ in self._callbacks.values()},
            seed=options.seed,
            start_time=options.start_time,
            rates=options.rates,
            depth=options.book_depth,
        )

    def run(self) -> int:
        """Emit on the calling thread until a bound is reached or :meth:`stop` is called.

        :meth:`start` runs this on a background thread; call it directly for benchmarks and
        tests. Each call starts the market from its beginning. With a speed-factor ``pace``,
        an event is never emitted before its time; slow callbacks make the emitter fall behind
        the clock, never skip events. Exceptions raised by callbacks propagate.

        :returns: the number of events emitted by this call.
        """
        options = self.options
        dispatch = self._dispatch_table()
        if not dispatch:
            return 0
        remaining = options.max_events if options.max_events is not None else -1
        deadline = time.monotonic() + options.duration if options.duration is not None else None
        events = self.market().events()
        if options.pace == "max":
            count = self._run_max(events, dispatch, remaining, deadline)
        else:
            count = self._run_paced(events, dispatch, remaining, deadline, float(options.pace))
        return count

    def _run_max(
        self,
        events: Iterator[tuple[StreamKey, Event]],
        dispatch: dict[StreamKey, EventCallback],
        remaining: int,
        deadline: float | None,
    ) -> int:
        count = 0
        monotonic = time.monotonic
        for stream, event in events:
            if self._stopping or (deadline is not None and monotonic() >= deadline):
                break
            dispatch[stream](event)
            count += 1
            self._emitted += 1
            if count == remaining:
                break
        return count

    def _run_paced(
        self,
        events: Iterator[tuple[StreamKey, Event]],
        dispatch: dict[StreamKey, EventCallback],
        remaining: int,
        deadline: float | None,
        pace: float,
    ) -> int:
        count = 0
        monotonic = time.monotonic
        wall_start = monotonic()
        event_start = self.options.start_time
        stop_event = self._stop_event
        for stream, event in events:
            now = monotonic()
            if self._stopping or (deadline is not None and now >= deadline):
                break
            due = wall_start + (event["timestamp"] - event_start) / pace
            if due > now:
                if deadline is not None and due >= deadline:
                    stop_event.wait(deadline - now)
                    break
                if stop_event.wait(due - now):
                    break
            dispatch[stream](event)
            count += 1
            self._emitted += 1
            if count == remaining:
                break
        return count

    def _target(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def start(self) -> None:
        """Start emitting on a background thread; returns immediately.

        After :meth:`stop`, starting does nothing (the emitter counts as finished).

        :raises EmitterError: if called twice.
        """
        with self._lock:
            if self._started:
                raise EmitterError("synthetic emitter: start() called twice")
            self._started = True
            if self._stopping:
                self._done.set()
                return
            self._thread = threading.Thread(
                target=self._target, name="featurizer-synthetic-emitter", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop emitting and join the thread; safe to call twice and before :meth:`start`.

        The thread notices within one event (a paced wait is interrupted at once). Called from
        a callback (the emitter's own thread), it only asks the thread to stop.
        """
        with self._lock:
            self._stopping = True
            self._stop_event.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the emitter finished (a bound, :meth:`stop` or a failure) or ``timeout``.

        :param timeout: seconds to wait at most; ``None`` waits for ever.
        :returns: ``True`` if it finished, ``False`` on timeout.
        """
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        """The exception a callback raised on the emitter's thread (which then stopped)."""
        return self._error
