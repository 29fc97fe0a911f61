"""Everything observable about a run, gathered into one frozen snapshot.

:class:`RunMetrics` combines a graph's :class:`~featurizer.metrics.NodeMetrics` with what the
emitters report through an optional ``stats()`` method (gaps, reconnects) and with gauges of
transport edges, and computes rates. Exporters (Prometheus, the terminal dashboard) only read
:meth:`RunMetrics.snapshot`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from featurizer.metrics._nodes import NodeMetrics, NodeReading

if TYPE_CHECKING:
    from featurizer._feature import Feature
    from featurizer._graph import FeatureStreamGraph

__all__ = [
    "CheckpointStats",
    "EdgeStats",
    "EmitterReading",
    "MetricsSnapshot",
    "NodeStats",
    "RunMetrics",
    "SourceStats",
    "WorkerStats",
]

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class NodeStats:
    """One node of the graph.

    :param name: the feature's name.
    :param key: its short key.
    :param definition: its definition's name.
    :param kind: ``source``, ``input`` (computed elsewhere) or ``feature``.
    :param output: whether it is an output.
    :param events_in: events received since the start.
    :param events_out: events produced since the start.
    :param errors: errors raised since the start.
    :param in_per_second: events received per second, recently.
    :param out_per_second: events produced per second, recently.
    :param p50_seconds: median processing time of the sampled events.
    :param p99_seconds: 99th percentile processing time of the sampled events.
    :param samples: events timed since the start.
    :param sampled_seconds: total processing time of the timed events.
    """

    name: str
    key: str
    definition: str
    kind: str
    output: bool
    events_in: int
    events_out: int
    errors: int
    in_per_second: float
    out_per_second: float
    p50_seconds: float | None
    p99_seconds: float | None
    samples: int
    sampled_seconds: float


@attrs.frozen(kw_only=True)
class SourceStats:
    """One data source (or external input) of the graph.

    :param name: the feature's name.
    :param key: its short key.
    :param definition: its definition's name.
    :param emitter: the emitter serving it, when known.
    :param events: events emitted into the graph since the start.
    :param events_per_second: recently.
    :param lag_seconds: ``now - timestamp`` of its latest event (``None`` before the first).
    :param gaps: gaps its emitter reported for it (``None``: the emitter does not report them).
    :param reconnects: reconnections of its emitter's connection (``None``: not reported).
    """

    name: str
    key: str
    definition: str
    emitter: str | None
    events: int
    events_per_second: float
    lag_seconds: float | None
    gaps: int | None
    reconnects: int | None


@attrs.frozen(kw_only=True)
class EmitterReading:
    """What an emitter's ``stats()`` reported, when it has that method.

    :param name: the emitter's registered name.
    :param gaps: gaps on every stream, if reported.
    :param reconnects: reconnections, if reported.
    """

    name: str
    gaps: int | None
    reconnects: int | None


@attrs.frozen(kw_only=True)
class EdgeStats:
    """A transport edge between workers (a scaled-out run has one per channel: from a worker
    to another worker or to the driver).

    :param name: the edge (``"worker 0 -> worker 1"``, ``"worker 1 -> driver"``, or a
        feature's name).
    :param transport: the transport's name.
    :param queue_depth: batches (or events) waiting on the edge, if reported; for the edges of
        a scaled-out run, the batches in flight: sent but not yet taken by the receiver.
    :param batches: batches sent since the start, if reported.
    :param bytes: bytes sent since the start, if reported.
    :param sender: the sending end (a worker's index), if known.
    :param receiver: the receiving end (a worker's index or ``driver``), if known.
    :param records: records (events) sent since the start, if reported.
    :param batches_received: batches the receiver took since the start, if reported.
    :param bytes_received: bytes the receiver took since the start, if reported.
    :param records_received: records the receiver took since the start, if reported.
    """

    name: str
    transport: str
    queue_depth: int | None
    batches: int | None
    bytes: int | None
    sender: str | None = None
    receiver: str | None = None
    records: int | None = None
    batches_received: int | None = None
    bytes_received: int | None = None
    records_received: int | None = None


@attrs.frozen(kw_only=True)
class WorkerStats:
    """One worker of a scaled-out run, as the driver last heard from it.

    :param name: the worker (its index).
    :param events_in: input events it ingested since the start.
    :param events_per_second: recently.
    :param records_out: records it sent (to other workers and the driver), if reported.
    :param batches_out: batches it sent, if reported.
    :param late_events: input events it found behind the watermark, if reported.
    :param errors: feature errors it counted, if reported.
    :param finished: whether it sent its last batches, if reported.
    """

    name: str
    events_in: int
    events_per_second: float
    records_out: int | None
    batches_out: int | None
    late_events: int | None
    errors: int | None
    finished: bool | None


@attrs.frozen(kw_only=True)
class CheckpointStats:
    """What checkpointing did in this process (a checkpointed run, see
    :mod:`featurizer.checkpoint`).

    :param checkpoints: checkpoints committed.
    :param last_duration_seconds: time from the cut to the commit of the last one.
    :param last_state_bytes: size of its state.
    :param last_committed_at: Unix time of its commit (``None`` before the first).
    :param restarts: times the run was restarted in its checkpoint directory.
    :param replayed_events: events replayed from the input log when this process resumed.
    :param recovery_seconds: time to restore and replay them.
    :param gaps: live sources that lost data while the run was down.
    """

    checkpoints: int
    last_duration_seconds: float
    last_state_bytes: int
    last_committed_at: float | None
    restarts: int
    replayed_events: int
    recovery_seconds: float
    gaps: int


@attrs.frozen(kw_only=True)
class MetricsSnapshot:
    """Everything :class:`RunMetrics` knows at one moment.

    :param taken_at: wall-clock time of the snapshot (seconds since the epoch).
    :param uptime_seconds: seconds since the metrics were created.
    :param nodes: every node, in topological order.
    :param sources: the graph's inputs.
    :param emitters: emitters that report ``stats()``.
    :param edges: transport edges.
    :param workers: the workers of a scaled-out run.
    :param checkpoint: the checkpoints of a checkpointed run (``None`` otherwise).
    """

    taken_at: float
    uptime_seconds: float
    nodes: tuple[NodeStats, ...]
    sources: tuple[SourceStats, ...]
    emitters: tuple[EmitterReading, ...]
    edges: tuple[EdgeStats, ...]
    workers: tuple[WorkerStats, ...] = ()
    checkpoint: CheckpointStats | None = None

    @property
    def events_in(self) -> int:
        """Events emitted into the graph, all inputs together (for a scaled-out run, whose
        driver has no graph: the events its workers ingested)."""
        if not self.sources and self.workers:
            return sum(worker.events_in for worker in self.workers)
        return sum(source.events for source in self.sources)

    @property
    def events_per_second(self) -> float:
        """Input events per second, all inputs together, recently."""
        if not self.sources and self.workers:
            return sum(worker.events_per_second for worker in self.workers)
        return sum(source.events_per_second for source in self.sources)


def _field(stats: Any, name: str) -> Any:
    if isinstance(stats, Mapping):
        return stats.get(name)
    return getattr(stats, name, None)


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def read_emitter_stats(emitter: Any) -> Any:
    """The emitter's ``stats()``, or ``None`` if it has none or it fails (never raises)."""
    stats = getattr(emitter, "stats", None)
    if not callable(stats):
        return None
    try:
        return stats()
    except Exception:
        logger.debug("stats() of emitter %r failed", emitter, exc_info=True)
        return None


def _matches(stream: Any, source: Feature) -> bool:
    exchange = str(source.params.get("exchange", "")).upper()
    return (
        str(_field(stream, "exchange") or "").upper() == exchange
        and _field(stream, "symbol") == source.params.get("symbol")
        and _field(stream, "channel") == source.definition_name
    )


def _source_counters(stats: Any, source: Feature) -> tuple[int | None, int | None]:
    """Gaps of the source's stream and reconnects of its exchange, from an emitter's stats."""
    gaps = reconnects = None
    streams = _field(stats, "streams")
    if isinstance(streams, Iterable):
        for stream in streams:
            if _matches(stream, source):
                gaps = _count(_field(stream, "gaps"))
                break
    exchanges = _field(stats, "exchanges")
    exchange = str(source.params.get("exchange", "")).upper()
    if isinstance(exchanges, Iterable):
        for found in exchanges:
            if str(_field(found, "exchange") or "").upper() == exchange:
                reconnects = _count(_field(found, "reconnects"))
                break
    return gaps, reconnects


class RunMetrics:
    """The metrics of one run: a graph's node counters, its emitters' and transports' stats.

    Create it first, give :attr:`nodes` to the graph (``FeatureStreamGraph(...,
    metrics=run_metrics.nodes)``; :func:`featurizer._runner.run` does this with ``metrics=``),
    then :meth:`attach` the graph and its emitters. Exporters call :meth:`snapshot` from their
    own threads.

    :param nodes: the node instrumentation (a default :class:`NodeMetrics` if omitted).
    :param rate_window: seconds over which rates are computed (the oldest snapshot within the
        window, or the previous one, is the reference).
    :param clock: monotonic clock (for rates).
    :param wall_clock: wall clock (for lags).

    >>> from featurizer import Feature, FeatureStreamGraph
    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> ticker = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "S"})
    >>> run_metrics = RunMetrics()
    >>> graph = FeatureStreamGraph([Feature.create(ExampleMid, {}, {"ticker": ticker})],
    ...                            metrics=run_metrics.nodes)
    >>> run_metrics.attach(graph)
    >>> graph.emit_named_data_event((ticker, {"timestamp": 0.0, "receipt_timestamp": 0.0,
    ...                                       "bid": 1.0, "ask": 2.0}))
    >>> snapshot = run_metrics.snapshot()
    >>> snapshot.events_in, [node.events_out for node in snapshot.nodes]
    (1, [1, 1])
    """

    def __init__(
        self,
        *,
        nodes: NodeMetrics | None = None,
        rate_window: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.nodes = nodes if nodes is not None else NodeMetrics()
        self.rate_window = rate_window
        self._clock = clock
        self._wall_clock = wall_clock
        self._started = clock()
        self._graph: FeatureStreamGraph | None = None
        self._emitters: dict[str, Any] = {}
        self._served_by: dict[Feature, str] = {}
        self._edges: list[tuple[str, str, str | None, str | None, Callable[[], Any]]] = []
        self._workers: list[tuple[str, Callable[[], Any]]] = []
        self._checkpoint: Callable[[], Any] | None = None
        self._history: collections.deque[tuple[float, tuple[int, ...], tuple[int, ...]]] = (
            collections.deque(maxlen=256)
        )
        self._worker_history: collections.deque[tuple[float, tuple[int, ...], tuple[int, ...]]] = (
            collections.deque(maxlen=256)
        )
        self._lock = threading.Lock()

    @property
    def attached(self) -> bool:
        """Whether a graph is attached."""
        return self._graph is not None

    def attach(
        self,
        graph: FeatureStreamGraph,
        emitters: Mapping[str, Any] | None = None,
        plan: Mapping[str, Iterable[Feature]] | None = None,
    ) -> None:
        """Observe ``graph`` (built with ``metrics=self.nodes``) and its emitters.

        :param graph: the graph.
        :param emitters: emitter name to emitter; those with a ``stats()`` method are read.
        :param plan: emitter name to the data sources it serves (for per-source gaps).
        :raises FeaturizerError: if the graph is not instrumented by :attr:`nodes`.
        """
        from featurizer._errors import FeaturizerError

        if graph.metrics is not self.nodes:
            raise FeaturizerError("attach() needs the graph built with metrics=run_metrics.nodes")
        with self._lock:
            self._graph = graph
            self._emitters = dict(emitters or {})
            self._served_by = {
                source: name for name, sources in (plan or {}).items() for source in sources
            }
            self._history.clear()

    def add_transport_edge(
        self,
        name: str,
        transport: str,
        stats: Callable[[], Any],
        *,
        sender: str | None = None,
        receiver: str | None = None,
    ) -> None:
        """Report a transport edge's gauges: ``stats()`` returns an object or mapping with
        ``queue_depth``, ``batches``, ``bytes`` and ``records`` sent, and ``batches_received``,
        ``bytes_received`` and ``records_received`` (any may be missing or ``None``).

        :param name: the edge's name.
        :param transport: the transport's name.
        :param stats: called at each snapshot, from the exporter's thread.
        :param sender: the sending end (a worker's index), if the edge has one.
        :param receiver: the receiving end (a worker's index or ``driver``).
        """
        with self._lock:
            self._edges.append((name, transport, sender, receiver, stats))

    def add_worker(self, name: str, stats: Callable[[], Any]) -> None:
        """Report a worker of a scaled-out run: ``stats()`` returns an object or mapping with
        ``events_in`` and, optionally, ``records_out``, ``batches_out``, ``late_events``,
        ``errors`` and ``finished``; ``None`` while nothing is known.

        :param name: the worker (its index).
        :param stats: called at each snapshot, from the exporter's thread.
        """
        with self._lock:
            self._workers.append((name, stats))

    def add_checkpoint(self, stats: Callable[[], Any]) -> None:
        """Report a checkpointed run: ``stats()`` returns an object or mapping with the fields
        of :class:`CheckpointStats` (a :class:`featurizer.checkpoint.CheckpointMetrics`).

        :param stats: called at each snapshot, from the exporter's thread.
        """
        with self._lock:
            self._checkpoint = stats

    def _rates(
        self,
        now: float,
        ins: tuple[int, ...],
        outs: tuple[int, ...],
        history: collections.deque[tuple[float, tuple[int, ...], tuple[int, ...]]] | None = None,
    ) -> tuple[list[float], list[float]]:
        history = self._history if history is None else history
        reference = None
        for point in history:
            if point[0] >= now - self.rate_window:
                reference = point
                break
        if reference is None and history:
            reference = history[-1]
        if reference is None:
            reference = (self._started, (0,) * len(ins), (0,) * len(outs))
        history.append((now, ins, outs))
        while len(history) > 1 and history[0][0] < now - self.rate_window:
            history.popleft()
        elapsed = now - reference[0]
        if elapsed <= 0:
            return [0.0] * len(ins), [0.0] * len(outs)
        return (
            [(a - b) / elapsed for a, b in zip(ins, reference[1], strict=False)],
            [(a - b) / elapsed for a, b in zip(outs, reference[2], strict=False)],
        )

    def snapshot(self) -> MetricsSnapshot:
        """Read everything now (safe from any thread).

        :returns: the snapshot; empty (no nodes) before :meth:`attach`.
        """
        with self._lock:
            now = self._clock()
            wall = self._wall_clock()
            readings: list[NodeReading] = self.nodes.read() if self._graph is not None else []
            ins = tuple(r.events_in for r in readings)
            outs = tuple(r.events_out for r in readings)
            in_rates, out_rates = self._rates(now, ins, outs)
            emitter_stats = {name: read_emitter_stats(e) for name, e in self._emitters.items()}
            nodes = tuple(
                NodeStats(
                    name=r.feature.name,
                    key=r.feature.short_key,
                    definition=r.feature.definition_name,
                    kind=r.kind,
                    output=r.output,
                    events_in=r.events_in,
                    events_out=r.events_out,
                    errors=r.errors,
                    in_per_second=in_rate,
                    out_per_second=out_rate,
                    p50_seconds=r.p50_seconds,
                    p99_seconds=r.p99_seconds,
                    samples=r.samples,
                    sampled_seconds=r.sampled_seconds,
                )
                for r, in_rate, out_rate in zip(readings, in_rates, out_rates, strict=True)
            )
            sources = []
            for r, rate in zip(readings, out_rates, strict=True):
                if r.kind == "feature":
                    continue
                emitter = self._served_by.get(r.feature)
                stats = emitter_stats.get(emitter) if emitter is not None else None
                gaps, reconnects = (
                    (None, None) if stats is None else _source_counters(stats, r.feature)
                )
                sources.append(
                    SourceStats(
                        name=r.feature.name,
                        key=r.feature.short_key,
                        definition=r.feature.definition_name,
                        emitter=emitter,
                        events=r.events_out,
                        events_per_second=rate,
                        lag_seconds=None if r.last_event_time is None else wall - r.last_event_time,
                        gaps=gaps,
                        reconnects=reconnects,
                    )
                )
            emitters = tuple(
                EmitterReading(
                    name=name,
                    gaps=_count(_field(stats, "gaps")),
                    reconnects=_count(_field(stats, "reconnects")),
                )
                for name, stats in emitter_stats.items()
                if stats is not None
            )
            edges = tuple(self._edge_stats())
            workers = self._worker_stats(now)
            checkpoint = self._checkpoint_stats()
            return MetricsSnapshot(
                taken_at=wall,
                uptime_seconds=now - self._started,
                nodes=nodes,
                sources=tuple(sources),
                emitters=emitters,
                edges=edges,
                workers=workers,
                checkpoint=checkpoint,
            )

    def _checkpoint_stats(self) -> CheckpointStats | None:
        if self._checkpoint is None:
            return None
        try:
            values = self._checkpoint()
        except Exception:
            logger.debug("checkpoint stats failed", exc_info=True)
            return None
        if values is None:
            return None
        committed = _field(values, "last_committed_at")
        return CheckpointStats(
            checkpoints=_count(_field(values, "checkpoints")) or 0,
            last_duration_seconds=float(_field(values, "last_duration_seconds") or 0.0),
            last_state_bytes=_count(_field(values, "last_state_bytes")) or 0,
            last_committed_at=None if committed is None else float(committed),
            restarts=_count(_field(values, "restarts")) or 0,
            replayed_events=_count(_field(values, "replayed_events")) or 0,
            recovery_seconds=float(_field(values, "recovery_seconds") or 0.0),
            gaps=_count(_field(values, "gaps")) or 0,
        )

    def _edge_stats(self) -> Iterable[EdgeStats]:
        for name, transport, sender, receiver, stats in self._edges:
            try:
                values = stats()
            except Exception:
                logger.debug("stats of transport edge %r failed", name, exc_info=True)
                continue
            yield EdgeStats(
                name=name,
                transport=transport,
                sender=sender,
                receiver=receiver,
                queue_depth=_count(_field(values, "queue_depth")),
                batches=_count(_field(values, "batches")),
                bytes=_count(_field(values, "bytes")),
                records=_count(_field(values, "records")),
                batches_received=_count(_field(values, "batches_received")),
                bytes_received=_count(_field(values, "bytes_received")),
                records_received=_count(_field(values, "records_received")),
            )

    def _worker_stats(self, now: float) -> tuple[WorkerStats, ...]:
        if not self._workers:
            return ()
        readings = []
        for name, stats in self._workers:
            try:
                values = stats()
            except Exception:
                logger.debug("stats of worker %r failed", name, exc_info=True)
                values = None
            readings.append((name, values))
        counts = tuple(_count(_field(values, "events_in")) or 0 for _, values in readings)
        rates, _ = self._rates(now, counts, (), self._worker_history)
        rates += [0.0] * (len(counts) - len(rates))  # workers added since the last snapshot
        return tuple(
            WorkerStats(
                name=name,
                events_in=count,
                events_per_second=rate,
                records_out=_count(_field(values, "records_out")),
                batches_out=_count(_field(values, "batches_out")),
                late_events=_count(_field(values, "late_events")),
                errors=_count(_field(values, "errors")),
                finished=_flag(_field(values, "finished")),
            )
            for (name, values), count, rate in zip(readings, counts, rates, strict=True)
        )
