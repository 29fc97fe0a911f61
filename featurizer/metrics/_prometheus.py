"""Prometheus exposition of :class:`~featurizer.metrics.RunMetrics` (needs ``prometheus-client``).

The collector reads one :meth:`~featurizer.metrics.RunMetrics.snapshot` per scrape; nothing is
registered in ``prometheus_client``'s global registry. Metric names follow the Prometheus
conventions: a ``featurizer_`` prefix, base units (seconds, bytes), ``_total`` on counters.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from featurizer._errors import FeaturizerError

if TYPE_CHECKING:
    from featurizer.metrics._run import CheckpointStats, RunMetrics

__all__ = [
    "CHECKPOINT_METRIC_NAMES",
    "METRIC_NAMES",
    "SCALED_METRIC_NAMES",
    "MetricsError",
    "MetricsServer",
    "exposition",
    "serve_metrics",
]

METRIC_NAMES = (
    "featurizer_node_events_in_total",
    "featurizer_node_events_out_total",
    "featurizer_node_errors_total",
    "featurizer_node_processing_seconds",
    "featurizer_source_events_total",
    "featurizer_source_lag_seconds",
    "featurizer_source_gaps_total",
    "featurizer_source_reconnects_total",
    "featurizer_emitter_gaps_total",
    "featurizer_emitter_reconnects_total",
    "featurizer_transport_queue_depth_batches",
    "featurizer_transport_batches_total",
    "featurizer_transport_bytes_total",
    "featurizer_uptime_seconds",
)
"""Every metric name exposed (as it appears in the exposition; summaries add ``_count`` and
``_sum`` samples); the transport ones once an edge is reported. Scaled-out runs add
:data:`SCALED_METRIC_NAMES`."""

SCALED_METRIC_NAMES = (
    "featurizer_transport_records_total",
    "featurizer_transport_batches_received_total",
    "featurizer_transport_bytes_received_total",
    "featurizer_transport_records_received_total",
    "featurizer_worker_events_in_total",
    "featurizer_worker_late_events_total",
    "featurizer_worker_errors_total",
)
"""The metric names a scaled-out run (``featurizer run --scaler ...``) exposes besides
:data:`METRIC_NAMES`: what each edge's receiver took, and per-worker counters."""

CHECKPOINT_METRIC_NAMES = (
    "featurizer_checkpoint_checkpoints_total",
    "featurizer_checkpoint_duration_seconds",
    "featurizer_checkpoint_size_bytes",
    "featurizer_checkpoint_last_commit_timestamp_seconds",
    "featurizer_checkpoint_restarts_total",
    "featurizer_checkpoint_replayed_events_total",
    "featurizer_checkpoint_recovery_seconds",
    "featurizer_checkpoint_gaps_total",
)
"""The metric names a checkpointed run (``featurizer run --checkpoint DIR``) exposes besides
:data:`METRIC_NAMES`; ``featurizer_checkpoint_last_commit_timestamp_seconds`` once a checkpoint
is committed."""

_NODE_LABELS = ("node", "key", "definition", "kind")
_SOURCE_LABELS = ("source", "key", "definition", "emitter")
_EDGE_LABELS = ("edge", "transport", "sender", "receiver")


class MetricsError(FeaturizerError):
    """Metrics cannot be served (``prometheus-client`` missing, port in use, ...)."""


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as error:
        raise MetricsError(
            "serving Prometheus metrics needs prometheus-client: "
            "pip install 'featurizer[metrics]' (or pip install prometheus-client)"
        ) from error
    return prometheus_client


class _Collector:
    """A ``prometheus_client`` collector reading one snapshot per scrape."""

    def __init__(self, run_metrics: RunMetrics) -> None:
        self.run_metrics = run_metrics

    def describe(self) -> list[Any]:
        """Nothing to describe up front (the families depend on the graph)."""
        return []

    def collect(self) -> Iterator[Any]:
        """The metric families of the current snapshot."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        snapshot = self.run_metrics.snapshot()
        uptime = GaugeMetricFamily(
            "featurizer_uptime_seconds", "Seconds since the run's metrics were created."
        )
        uptime.add_metric([], snapshot.uptime_seconds)
        yield uptime

        events_in = CounterMetricFamily(
            "featurizer_node_events_in", "Events received by a graph node.", labels=_NODE_LABELS
        )
        events_out = CounterMetricFamily(
            "featurizer_node_events_out", "Events produced by a graph node.", labels=_NODE_LABELS
        )
        errors = CounterMetricFamily(
            "featurizer_node_errors", "Errors raised by a graph node.", labels=_NODE_LABELS
        )
        processing = Metric(
            "featurizer_node_processing_seconds",
            "Processing time of a graph node per sampled input event (for a data source: the "
            "whole dispatch of the event); quantiles over the latest samples.",
            "summary",
        )
        for node in snapshot.nodes:
            labels = [node.name, node.key, node.definition, node.kind]
            events_in.add_metric(labels, node.events_in)
            events_out.add_metric(labels, node.events_out)
            errors.add_metric(labels, node.errors)
            label_map = dict(zip(_NODE_LABELS, labels, strict=True))
            for quantile, value in (("0.5", node.p50_seconds), ("0.99", node.p99_seconds)):
                if value is not None:
                    processing.add_sample(
                        "featurizer_node_processing_seconds",
                        {**label_map, "quantile": quantile},
                        value,
                    )
            processing.add_sample(
                "featurizer_node_processing_seconds_count", label_map, node.samples
            )
            processing.add_sample(
                "featurizer_node_processing_seconds_sum", label_map, node.sampled_seconds
            )
        yield from (events_in, events_out, errors, processing)

        source_events = CounterMetricFamily(
            "featurizer_source_events",
            "Events emitted into the graph by a data source.",
            labels=_SOURCE_LABELS,
        )
        lag = GaugeMetricFamily(
            "featurizer_source_lag_seconds",
            "Now minus the event timestamp of the data source's latest event.",
            labels=_SOURCE_LABELS,
        )
        gaps = CounterMetricFamily(
            "featurizer_source_gaps",
            "Gaps the emitter reported for a data source.",
            labels=_SOURCE_LABELS,
        )
        reconnects = CounterMetricFamily(
            "featurizer_source_reconnects",
            "Reconnections of the connection serving a data source (as its emitter reports).",
            labels=_SOURCE_LABELS,
        )
        for source in snapshot.sources:
            labels = [source.name, source.key, source.definition, source.emitter or ""]
            source_events.add_metric(labels, source.events)
            if source.lag_seconds is not None:
                lag.add_metric(labels, source.lag_seconds)
            if source.gaps is not None:
                gaps.add_metric(labels, source.gaps)
            if source.reconnects is not None:
                reconnects.add_metric(labels, source.reconnects)
        yield from (source_events, lag, gaps, reconnects)

        emitter_gaps = CounterMetricFamily(
            "featurizer_emitter_gaps", "Gaps an emitter reported, all streams.", labels=["emitter"]
        )
        emitter_reconnects = CounterMetricFamily(
            "featurizer_emitter_reconnects",
            "Reconnections an emitter reported.",
            labels=["emitter"],
        )
        for emitter in snapshot.emitters:
            if emitter.gaps is not None:
                emitter_gaps.add_metric([emitter.name], emitter.gaps)
            if emitter.reconnects is not None:
                emitter_reconnects.add_metric([emitter.name], emitter.reconnects)
        yield from (emitter_gaps, emitter_reconnects)

        depth = GaugeMetricFamily(
            "featurizer_transport_queue_depth_batches",
            "Batches waiting on a transport edge (scaled-out runs: sent, not yet received).",
            labels=_EDGE_LABELS,
        )
        edge_counters = [
            (attribute, CounterMetricFamily(name, help_text, labels=_EDGE_LABELS))
            for attribute, name, help_text in (
                ("batches", "featurizer_transport_batches", "Batches sent over a transport edge."),
                ("bytes", "featurizer_transport_bytes", "Bytes sent over a transport edge."),
                (
                    "records",
                    "featurizer_transport_records",
                    "Records (feature events) sent over a transport edge.",
                ),
                (
                    "batches_received",
                    "featurizer_transport_batches_received",
                    "Batches the receiving end of a transport edge took.",
                ),
                (
                    "bytes_received",
                    "featurizer_transport_bytes_received",
                    "Bytes the receiving end of a transport edge took.",
                ),
                (
                    "records_received",
                    "featurizer_transport_records_received",
                    "Records (feature events) the receiving end of a transport edge took.",
                ),
            )
        ]
        for edge in snapshot.edges:
            labels = [edge.name, edge.transport, edge.sender or "", edge.receiver or ""]
            if edge.queue_depth is not None:
                depth.add_metric(labels, edge.queue_depth)
            for attribute, family in edge_counters:
                value = getattr(edge, attribute)
                if value is not None:
                    family.add_metric(labels, value)
        yield depth
        yield from (family for _, family in edge_counters)

        worker_counters = [
            (attribute, CounterMetricFamily(name, help_text, labels=["worker"]))
            for attribute, name, help_text in (
                (
                    "events_in",
                    "featurizer_worker_events_in",
                    "Input events a worker of a scaled-out run ingested.",
                ),
                (
                    "late_events",
                    "featurizer_worker_late_events",
                    "Input events a worker found behind the watermark (sent to the side output).",
                ),
                ("errors", "featurizer_worker_errors", "Feature errors a worker counted."),
            )
        ]
        for worker in snapshot.workers:
            for attribute, family in worker_counters:
                value = getattr(worker, attribute)
                if value is not None:
                    family.add_metric([worker.name], value)
        yield from (family for _, family in worker_counters)
        if snapshot.checkpoint is not None:
            yield from _checkpoint_families(snapshot.checkpoint)


def _checkpoint_families(stats: CheckpointStats) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    for name, help_text, value in (
        ("featurizer_checkpoint_checkpoints", "Checkpoints committed.", stats.checkpoints),
        (
            "featurizer_checkpoint_restarts",
            "Times the run was restarted in its checkpoint directory.",
            stats.restarts,
        ),
        (
            "featurizer_checkpoint_replayed_events",
            "Events replayed from the input log when this process resumed.",
            stats.replayed_events,
        ),
        (
            "featurizer_checkpoint_gaps",
            "Live sources that lost data while the run was down.",
            stats.gaps,
        ),
    ):
        counter = CounterMetricFamily(name, help_text)
        counter.add_metric([], value)
        yield counter
    gauges = [
        (
            "featurizer_checkpoint_duration_seconds",
            "Time from the cut to the commit of the last checkpoint.",
            stats.last_duration_seconds,
        ),
        (
            "featurizer_checkpoint_size_bytes",
            "Size of the last checkpoint's state.",
            stats.last_state_bytes,
        ),
        (
            "featurizer_checkpoint_recovery_seconds",
            "Time this process took to restore the checkpoint and replay the logged events.",
            stats.recovery_seconds,
        ),
    ]
    if stats.last_committed_at is not None:
        gauges.append(
            (
                "featurizer_checkpoint_last_commit_timestamp_seconds",
                "Unix time of the last checkpoint's commit.",
                stats.last_committed_at,
            )
        )
    for name, help_text, number in gauges:
        gauge = GaugeMetricFamily(name, help_text)
        gauge.add_metric([], number)
        yield gauge


def _registry(run_metrics: RunMetrics) -> Any:
    prometheus_client = _prometheus()
    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(run_metrics))
    return registry


def exposition(run_metrics: RunMetrics) -> bytes:
    """The Prometheus text exposition of a run's metrics now (what a scrape returns).

    :param run_metrics: the run's metrics.
    :raises MetricsError: if ``prometheus-client`` is not installed.
    """
    prometheus_client = _prometheus()
    data: bytes = prometheus_client.generate_latest(_registry(run_metrics))
    return data


class MetricsServer:
    """An HTTP endpoint serving a run's metrics at ``/metrics``, on its own daemon thread.

    Use :func:`serve_metrics`; :meth:`close` (or leaving the ``with`` block) stops it.

    :param server: the running WSGI server.
    :param thread: its thread.
    """

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread
        self._closed = False

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on (the chosen one when port 0 was asked)."""
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve_metrics(run_metrics: RunMetrics, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve a run's metrics for Prometheus at ``http://host:port/metrics``.

    The port is bound before this returns, so a port in use is reported at once.

    :param run_metrics: the run's metrics.
    :param port: the TCP port (0: any free port; see :attr:`MetricsServer.port`).
    :param host: the address to listen on (loopback by default; ``0.0.0.0`` for every
        interface).
    :returns: the running server.
    :raises MetricsError: if ``prometheus-client`` is missing or the address cannot be bound.
    """
    if not 0 <= port <= 65535:
        raise MetricsError(f"the metrics port must be between 0 and 65535, received {port!r}")
    prometheus_client = _prometheus()
    app = _only_metrics(prometheus_client.make_wsgi_app(_registry(run_metrics)))
    try:
        server = _server_class(host)((host, port), _QuietHandler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            reason = "the port is already in use"
        else:
            reason = error.strerror or str(error)
        raise MetricsError(
            f"cannot serve metrics on {host}:{port}: {reason}; choose another --metrics-port "
            f"(0 picks a free one)"
        ) from error
    server.set_app(app)
    thread = threading.Thread(
        target=server.serve_forever, name="featurizer-metrics-server", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread)


_METRICS_PATHS = ("/metrics", "/metrics/")


def _only_metrics(app: Any) -> Any:
    """Serve ``app`` at ``/metrics``; every other path is a 404 saying where the metrics are."""

    def serve(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "") in _METRICS_PATHS:
            return app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: featurizer serves its metrics at /metrics\n"]

    return serve


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (scrapes every few seconds would drown the run's output)."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def _server_class(host: str) -> type[WSGIServer]:
    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server
