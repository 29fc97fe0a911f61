"""The canonical order of input events that share a timestamp, for single-process runs.

A scaled-out run cannot see how one emitter interleaved the events of two independent
sub-DAGs at the same timestamp (the ticker and the book delta of one quote update): each
worker sequences its own groups, and the driver merges by ``(time, group rank, sequence)``
(see ``docs/scaling.md``). So that the same input gives the same combined rows in every mode,
a single-process run applies that order too: :class:`TieOrder` holds the events of the
current timestamp and dispatches them, once a later timestamp arrives, by the rank of their
sub-DAG (the plan's group rank), keeping each sub-DAG's own order. A graph with one sub-DAG
is not touched. Held events are dispatched at the latest ``max_hold`` seconds after they
arrived (a quiet live feed) and at the end of the run (:meth:`TieOrder.close`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from featurizer._errors import FeaturizerError
from featurizer._events import Event
from featurizer._feature import Feature

__all__ = ["TieOrder"]

Dispatch = Callable[[Event], None]

_CLOSE_WAIT = 2.0


class TieOrder:
    """Dispatches input events by ``(timestamp, sub-DAG rank)``, each sub-DAG in its order.

    :param features: the graph's output features (the sub-DAGs and their ranks come from
        the ``single`` scaling plan of them, exactly as a scaled-out run ranks them).
    :param max_hold: seconds an event may wait for the rest of its timestamp.

    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    >>> b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    >>> mids = [Feature.create(ExampleMid, {}, {"ticker": t}) for t in (a, b)]
    >>> ties, seen = TieOrder(mids), []
    >>> on_a = ties.wrap(a, lambda e: seen.append(("A", e["timestamp"])))
    >>> on_b = ties.wrap(b, lambda e: seen.append(("B", e["timestamp"])))
    >>> for call, ts in ((on_b, 1.0), (on_a, 1.0), (on_a, 2.0)):
    ...     call({"timestamp": ts})
    >>> ties.close()
    >>> seen
    [('A', 1.0), ('B', 1.0), ('A', 2.0)]
    """

    def __init__(self, features: Sequence[Feature], *, max_hold: float = 0.05) -> None:
        from featurizer.scaling._strategies import plan_single

        plan = plan_single(list(features))
        self._rank = {
            source: plan.group_of(source) for group in plan.groups for source in group.sources
        }
        self.active = len(plan.groups) > 1
        self.max_hold = max_hold
        self._lock = threading.Lock()
        self._held: list[tuple[int, int, Dispatch, Event]] = []
        self._time: float | None = None
        self._since = 0.0
        self._arrivals = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        """An error a feature raised while the watcher thread dispatched: raised again by
        the next event's callback and by :meth:`close`."""

    def wrap(self, source: Feature, dispatch: Dispatch) -> Dispatch:
        """The callback to give the emitter for ``source`` (``dispatch`` itself when the graph
        has one sub-DAG)."""
        if not self.active:
            return dispatch
        rank = self._rank[source]
        lock, held = self._lock, self._held

        def ordered(event: Event) -> None:
            with lock:
                if self.failure is not None:
                    raise self.failure
                ts = event["timestamp"]
                if ts != self._time:
                    if held:
                        self._flush()
                    self._time = ts
                    self._since = time.monotonic()
                self._arrivals += 1
                held.append((rank, self._arrivals, dispatch, event))

        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="featurizer-tie-order", daemon=True
            )
            self._thread.start()
        return ordered

    def _flush(self) -> None:
        held = self._held
        if len(held) > 1:
            held.sort(key=_order)
        try:
            for _, _, dispatch, event in held:
                dispatch(event)
        finally:
            held.clear()

    def _watch(self) -> None:
        while not self._closed.wait(self.max_hold / 2):
            with self._lock:
                if self._held and time.monotonic() - self._since >= self.max_hold:
                    self._time = None
                    try:
                        self._flush()
                    except Exception as error:  # raised again on the emitter's thread
                        self.failure = error
                        return

    def close(self, *, flush: bool = True) -> None:
        """Dispatch what is held (unless ``flush`` is false: the run failed) and stop the
        watcher thread; safe to call twice."""
        self._closed.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        if not self._lock.acquire(timeout=_CLOSE_WAIT):  # a dispatch never returned
            if flush:
                raise FeaturizerError(
                    f"a feature did not return within {_CLOSE_WAIT:g} s: the events of the "
                    f"last timestamp cannot be dispatched"
                )
            return
        try:
            if flush and self.failure is None:
                self._flush()
            self._held.clear()
        finally:
            self._lock.release()
        if flush and self.failure is not None:
            raise self.failure


def _order(item: tuple[int, int, Dispatch, Event]) -> tuple[int, int]:
    return item[0], item[1]
