"""Live metrics of a running graph: per-node counters and timings, per-source rates and lag,
transport gauges; exposed to Prometheus and drawn as a terminal dashboard.

* :class:`NodeMetrics` instruments one :class:`~featurizer.FeatureStreamGraph`
  (``metrics=``): exact events in/out and errors per node, sampled processing times. Without
  it the graph compiles no instrumentation at all.
* :class:`RunMetrics` adds what emitters (an optional ``stats()`` method), transports and the
  workers of a scaled-out run report, computes rates and lags, and gives one frozen
  :class:`MetricsSnapshot` at a time.
* :func:`serve_metrics` serves a Prometheus endpoint, :func:`exposition` gives its text, and
  :class:`Dashboard` / :func:`render_dashboard` draw the live view (``rich``).

``prometheus-client`` and ``rich`` are imported only when used (``pip install
'featurizer[metrics]'``).
"""

from __future__ import annotations

from featurizer.metrics._dashboard import Dashboard, render_dashboard
from featurizer.metrics._nodes import NodeMetrics, NodeReading, quantile
from featurizer.metrics._prometheus import (
    CHECKPOINT_METRIC_NAMES,
    METRIC_NAMES,
    SCALED_METRIC_NAMES,
    MetricsError,
    MetricsServer,
    exposition,
    serve_metrics,
)
from featurizer.metrics._run import (
    CheckpointStats,
    EdgeStats,
    EmitterReading,
    MetricsSnapshot,
    NodeStats,
    RunMetrics,
    SourceStats,
    WorkerStats,
)

__all__ = [
    "CHECKPOINT_METRIC_NAMES",
    "METRIC_NAMES",
    "SCALED_METRIC_NAMES",
    "CheckpointStats",
    "Dashboard",
    "EdgeStats",
    "EmitterReading",
    "MetricsError",
    "MetricsServer",
    "MetricsSnapshot",
    "NodeMetrics",
    "NodeReading",
    "NodeStats",
    "RunMetrics",
    "SourceStats",
    "WorkerStats",
    "exposition",
    "quantile",
    "render_dashboard",
    "serve_metrics",
]
