"""The metrics options of ``featurizer run``: ``--metrics-port``, ``--metrics-host`` and
``--dashboard``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["add_metrics_arguments", "observing"]


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port 0-65535 (0: any free port), got {value!r}"
        )
    return number


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the live-metrics options to a command."""
    group = parser.add_argument_group("live metrics (see docs/metrics.md)")
    group.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics during the run "
        "(0: any free port)",
    )
    group.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 for all)",
    )
    group.add_argument(
        "--dashboard",
        action="store_true",
        help="show a live view of the graph's nodes (rates, latencies) on standard error",
    )


@contextlib.contextmanager
def observing(args: argparse.Namespace, *, stream: Any = None) -> Iterator[Any]:
    """Start what the metrics options ask for, yield the run's ``RunMetrics`` (or ``None``).

    The metrics port is bound first, so a port in use is an error before anything else starts;
    the endpoint and the dashboard stop when the block ends, however it ends.

    With ``--scaler``, the metrics are those of the driver: every worker's counters and every
    channel's transport stats (see :func:`featurizer.scaling.run_scaled`).

    :param args: parsed options of ``featurizer run``.
    :param stream: where to say where metrics are served (standard error by default).
    :raises MetricsError: for a port in use or a missing library.
    """
    port = getattr(args, "metrics_port", None)
    dashboard_wanted = bool(getattr(args, "dashboard", False))
    if port is None and not dashboard_wanted:
        yield None
        return
    from featurizer.cli._common import write
    from featurizer.metrics._dashboard import Dashboard
    from featurizer.metrics._prometheus import serve_metrics
    from featurizer.metrics._run import RunMetrics

    run_metrics = RunMetrics()
    with contextlib.ExitStack() as stack:
        if port is not None:
            server = serve_metrics(run_metrics, port, args.metrics_host)
            stack.callback(server.close)
            write(f"serving metrics at {server.url}", stream=stream or sys.stderr)
        if dashboard_wanted:
            scaler = getattr(args, "scaler", None)
            title = (
                f"featurizer run --scaler {scaler} --workers {getattr(args, 'workers', 1)}"
                if scaler
                else "featurizer run"
            )
            dashboard = Dashboard(run_metrics, title=title)
            dashboard.start()
            stack.callback(dashboard.stop)
        yield run_metrics
