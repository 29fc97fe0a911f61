"""In-memory emitter and sink."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from featurizer._emitter import DataSourceEventEmitter, EventCallback
from featurizer._errors import EmitterError
from featurizer._events import Event, GroupedNamedDataEvent, NamedDataEvent, validate_event
from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph, check_output_event

__all__ = ["CollectingSink", "InMemoryEmitter", "run_graph"]


class InMemoryEmitter(DataSourceEventEmitter):
    """Emits a fixed list of named events, in list order, on its own thread.

    Events are validated against their definition's schema when the emitter is built (the
    boundary), so a malformed test stream fails early with a clear error.

    :param events: ``(data_source_feature, event)`` pairs in emission order.
    :param validate: check every event against its feature's schema.
    """

    def __init__(self, events: Iterable[NamedDataEvent] = (), *, validate: bool = True) -> None:
        self._events = list(events)
        if validate:
            for feature, event in self._events:
                validate_event(event, feature.definition.event_schema(), origin=feature.name)
        self._callbacks: dict[Feature, EventCallback] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self.emitted = 0

    def register_callback(self, feature: Feature, callback: EventCallback) -> None:
        """Route events of ``feature`` to ``callback``."""
        self._callbacks[feature] = callback

    def run(self) -> None:
        """Emit every event synchronously on the calling thread."""
        for feature, event in self._events:
            if self._stop.is_set():
                break
            callback = self._callbacks.get(feature)
            if callback is None:
                continue
            callback(event)
            self.emitted += 1

    def _target(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self._error = error
        finally:
            self._done.set()

    def start(self) -> None:
        """Emit on a background thread."""
        if self._thread is not None:
            raise EmitterError("InMemoryEmitter.start() called twice")
        self._thread = threading.Thread(target=self._target, name="featurizer-memory-emitter")
        self._thread.start()

    def stop(self) -> None:
        """Stop emitting and join the thread; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every event was emitted."""
        return self._done.wait(timeout)

    def failure(self) -> BaseException | None:
        """The exception a callback raised, if any."""
        return self._error


class CollectingSink:
    """Collects what a graph produces: combined vectors and per-feature events.

    ``events[feature]`` is the list of a feature's events, empty for a feature that produced
    nothing (never a ``KeyError``).
    """

    def __init__(self) -> None:
        self.combined: list[GroupedNamedDataEvent] = []
        self.events: collections.defaultdict[Feature, list[Event]] = collections.defaultdict(list)
        self.rows: list[Mapping[str, Any]] = []

    def on_combined(self, grouped: GroupedNamedDataEvent) -> None:
        """Use as ``combined_out_callback``."""
        self.combined.append(grouped)

    def on_event(self, feature: Feature, event: Event) -> None:
        """Use as a ``set_callback`` callback."""
        self.events[feature].append(event)

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Sink protocol: collect an output row."""
        self.rows.append(row)

    def close(self, ok: bool = True) -> None:
        """Sink protocol: nothing to flush."""


def run_graph(
    features: Iterable[Feature],
    events: Iterable[NamedDataEvent],
    *,
    combine_outputs: bool = True,
    observe: Callable[[FeatureStreamGraph], None] | None = None,
    check: bool = True,
) -> CollectingSink:
    """Build a graph over ``features``, emit ``events`` one by one, return what came out.

    Every node's events are collected (not only the outputs'), and the combined output.

    :param features: the output features.
    :param events: data-source events in order.
    :param combine_outputs: also collect combined vectors.
    :param observe: called with the graph before any event, to add callbacks.
    :param check: check every event of every node against its definition's declared schema
        (:func:`~featurizer._graph.check_output_event`): a feature forgetting ``timestamp`` or
        a declared field fails here, naming it.
    """
    sink = CollectingSink()
    graph = FeatureStreamGraph(list(features), combine_outputs, sink.on_combined)
    collect = sink.on_event
    if check:

        def collect(feature: Feature, event: Event) -> None:
            check_output_event(feature, event)
            sink.on_event(feature, event)

    for feature in graph.nodes():
        graph.set_callback(feature, collect)
    if observe is not None:
        observe(graph)
    for named in events:
        graph.emit_named_data_event(named)
    return sink
