"""Per-node counters and sampled timings, written by a graph's compiled dispatch code.

A :class:`NodeMetrics` is handed to a :class:`~featurizer.FeatureStreamGraph` with
``metrics=``; the graph then compiles instrumented dispatch functions that

* count every event emitted into each input (a countdown to the next timed event, and the
  rounds of it), and, for every other node, either the events it
  produces (list-valued streamz nodes) or its *empty visits* (an input event reached the node
  and it produced nothing). ``events_out`` follows exactly (visits are the events of the inputs
  whose dispatch computes the node), and ``events_in`` too: a node receives every event its
  upstreams produce. Counting empty visits costs nothing on the common path: the compiled code
  already branches on "produced a value";
* count the errors each node raises (under both error policies);
* remember the latest event of every input (for the lag, ``now - event timestamp``);
* time one input event in every ``sample_every`` per input with ``perf_counter_ns``: each node's
  own computation, and for the input itself the whole dispatch (its features, callbacks and the
  combined output). The latest ``reservoir`` samples per node give the p50 and p99.

The counters are plain Python lists written by the graph's thread only; other threads copy
them (atomic under the GIL), so a reading is cheap and needs no lock. Once the graph is idle a
reading is exact. A reading taken while an event is being dispatched can count that event at
nodes it has not reached yet, or miss up to ``sample_every`` events of an input whose round is
just completing; readings never decrease (each is floored at the previous one). If a callback
(not a feature: feature errors are handled) raises out of a dispatch, the nodes that event did
not reach stay one event ahead.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._errors import FeaturizerError

if TYPE_CHECKING:
    from featurizer._feature import Feature

__all__ = ["NodeMetrics", "NodeReading", "quantile"]


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), ``None`` when there is none.

    >>> quantile([1, 2, 3, 4], 0.5), quantile([1, 2, 3, 4], 0.99), quantile([], 0.5)
    (2, 4, None)
    """
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1_000_000) * len(sorted_values) // 1_000_000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@attrs.frozen(kw_only=True)
class NodeReading:
    """Counters of one node at one moment (totals since the graph was built).

    :param feature: the node.
    :param kind: ``source`` (a data source), ``input`` (an external input) or ``feature``.
    :param output: whether the node is an output of the graph.
    :param events_in: events the node received (for an input: events emitted into the graph).
    :param events_out: events the node produced (for an input: the same as ``events_in``).
    :param errors: errors the node raised.
    :param p50_seconds: median processing time of the sampled events, ``None`` before any.
    :param p99_seconds: 99th percentile of the sampled processing times.
    :param samples: events timed so far.
    :param sampled_seconds: total time of the timed events.
    :param last_event_time: the ``timestamp`` of the latest event of an input, else ``None``.
    """

    feature: Feature
    kind: str
    output: bool
    events_in: int
    events_out: int
    errors: int
    p50_seconds: float | None
    p99_seconds: float | None
    samples: int
    sampled_seconds: float
    last_event_time: float | None


class NodeMetrics:
    """Opt-in instrumentation of one :class:`~featurizer.FeatureStreamGraph`.

    :param sample_every: time one input event in this many, per input (at most 256 keeps the
        per-event bookkeeping free of allocations).
    :param reservoir: how many recent timings per node the quantiles are computed from.

    >>> from featurizer import Feature, FeatureStreamGraph
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> mid = Feature.create(ExampleMid, {}, {"ticker": ticker})
    >>> metrics = NodeMetrics(sample_every=2)
    >>> graph = FeatureStreamGraph([mid], metrics=metrics)
    >>> for t in range(10):
    ...     graph.emit_named_data_event((ticker, {"timestamp": float(t),
    ...         "receipt_timestamp": float(t), "bid": 1.0, "ask": 2.0}))
    >>> [(r.feature.name, r.events_in, r.events_out, r.samples) for r in metrics.read()]
    [('example_ticker.x.S', 10, 10, 5), ('example_mid(example_ticker.x.S)', 10, 10, 5)]
    """

    def __init__(self, *, sample_every: int = 64, reservoir: int = 1024) -> None:
        if (
            isinstance(sample_every, bool)
            or not isinstance(sample_every, int)
            or not (1 <= sample_every <= 1 << 20)
        ):
            raise FeaturizerError(
                f"sample_every must be an integer between 1 and {1 << 20}, "
                f"received {sample_every!r}"
            )
        if reservoir < 1:
            raise FeaturizerError(f"reservoir must be at least 1, received {reservoir!r}")
        self.sample_every = sample_every
        self.reservoir = reservoir
        self.started = time.time()
        self._features: list[Feature] = []
        self._kinds: list[str] = []
        self._outputs: list[bool] = []
        self._upstreams: list[list[int]] = []
        self._modes: dict[int, str] = {}
        self._visitors: list[list[int]] = []
        self._schedule: dict[int, list[int]] = {}
        self.out_counts: list[int] = []
        self.countdowns: list[int] = []
        self.rounds: list[int] = []
        self.empty_visits: list[int] = []
        self.error_counts: list[int] = []
        self.last_events: list[Any] = []
        self.sample_counts: list[int] = []
        self.sample_sums: list[int] = []
        self.sample_appenders: list[Any] = []
        self._samples: list[collections.deque[int]] = []
        self._owner: int | None = None
        self._read_lock = threading.Lock()
        self._floor_in: list[int] = []
        self._floor_out: list[int] = []

    def bind(
        self,
        owner: object,
        features: Sequence[Feature],
        upstreams: Sequence[Sequence[int]],
        inputs: Sequence[int],
        outputs: Sequence[int],
    ) -> None:
        """Size the counters for a graph's nodes (called by the graph, once).

        :param owner: the graph.
        :param features: the nodes, by index.
        :param upstreams: each node's upstream indexes.
        :param inputs: indexes of the inputs (data sources and external inputs).
        :param outputs: indexes of the outputs.
        :raises FeaturizerError: if this object already instruments another graph.
        """
        if self._owner is not None and self._owner != id(owner):
            raise FeaturizerError(
                "this NodeMetrics already instruments another graph; use one per graph"
            )
        self._owner = id(owner)
        count = len(features)
        self._features = list(features)
        self._upstreams = [list(ups) for ups in upstreams]
        input_set, output_set = set(inputs), set(outputs)
        self._kinds = [
            ("source" if features[i].is_data_source else "input") if i in input_set else "feature"
            for i in range(count)
        ]
        self._outputs = [i in output_set for i in range(count)]
        self.out_counts = [0] * count
        self.countdowns = [self.sample_every] * count
        self.rounds = [0] * count
        self.empty_visits = [0] * count
        self._floor_in = [0] * count
        self._floor_out = [0] * count
        self.error_counts = [0] * count
        self.last_events = [None] * count
        self._samples = [collections.deque(maxlen=self.reservoir) for _ in range(count)]
        self.sample_appenders = [samples.append for samples in self._samples]
        self.sample_counts = [0] * count
        self.sample_sums = [0] * count

    def set_counting(self, modes: dict[int, str], schedule: dict[int, list[int]]) -> None:
        """How the compiled code counts each node (called by the graph after compiling).

        :param modes: node index to ``"list"`` (its produced events are counted) or
            ``"visits"`` (its empty visits are counted); inputs are absent.
        :param schedule: input index to the node indexes its dispatch computes, in order.
        """
        self._modes = dict(modes)
        self._schedule = {source: list(nodes) for source, nodes in schedule.items()}
        visitors: list[list[int]] = [[] for _ in self._features]
        for source, nodes in self._schedule.items():
            for node in nodes:
                visitors[node].append(source)
        self._visitors = visitors

    def count_error(self, index: int) -> None:
        """Count an error of node ``index`` (called by the graph)."""
        self.error_counts[index] += 1

    def abandon(self, input_index: int, failed: int) -> None:
        """An error propagates out of ``input_index``'s dispatch at node ``failed``: the nodes
        from there on were visited (by the count) but produced nothing.
        """
        nodes = self._schedule.get(input_index, [])
        if failed not in nodes:
            return
        for node in nodes[nodes.index(failed) :]:
            if self._modes.get(node) == "visits":
                self.empty_visits[node] += 1

    def _events_out(self) -> list[int]:
        # Rounds first, then countdowns: a round completing in between makes an input look
        # up to ``sample_every`` events behind (the floors keep readings monotonic), never ahead.
        rounds = list(self.rounds)
        countdowns = list(self.countdowns)
        outs = list(self.out_counts)
        empty = list(self.empty_visits)
        every = self.sample_every
        inputs = {
            index: rounds[index] * every + every - countdowns[index]
            for index, kind in enumerate(self._kinds)
            if kind != "feature"
        }
        produced = []
        for index in range(len(self._features)):
            if index in inputs:
                produced.append(inputs[index])
            elif self._modes.get(index) == "visits":
                visits = sum(inputs[source] for source in self._visitors[index])
                produced.append(visits - empty[index])
            else:
                produced.append(outs[index])
        return produced

    @property
    def features(self) -> list[Feature]:
        """The instrumented nodes, in the graph's order."""
        return list(self._features)

    def read(self) -> list[NodeReading]:
        """The counters of every node now, in the graph's topological order."""
        with self._read_lock:
            outs = self._events_out()
            ins = [
                sum(outs[up] for up in self._upstreams[index])
                if self._kinds[index] == "feature"
                else outs[index]
                for index in range(len(self._features))
            ]
            outs = [max(a, b) for a, b in zip(outs, self._floor_out, strict=True)]
            ins = [max(a, b) for a, b in zip(ins, self._floor_in, strict=True)]
            self._floor_out, self._floor_in = outs, ins
        readings = []
        for index, feature in enumerate(self._features):
            kind = self._kinds[index]
            events_in = ins[index]
            timings = sorted(self._samples[index].copy())
            p50 = quantile(timings, 0.5)
            p99 = quantile(timings, 0.99)
            last = self.last_events[index] if kind != "feature" else None
            last_time = last.get("timestamp") if isinstance(last, dict) else None
            readings.append(
                NodeReading(
                    feature=feature,
                    kind=kind,
                    output=self._outputs[index],
                    events_in=events_in,
                    events_out=outs[index],
                    errors=self.error_counts[index],
                    p50_seconds=None if p50 is None else p50 / 1e9,
                    p99_seconds=None if p99 is None else p99 / 1e9,
                    samples=self.sample_counts[index],
                    sampled_seconds=self.sample_sums[index] / 1e9,
                    last_event_time=float(last_time)
                    if isinstance(last_time, int | float)
                    else None,
                )
            )
        return readings
