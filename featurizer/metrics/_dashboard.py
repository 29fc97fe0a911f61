"""A live terminal view of a run (needs ``rich``): the graph's nodes with rates and latencies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurizer.metrics._prometheus import MetricsError

if TYPE_CHECKING:
    from featurizer.metrics._run import MetricsSnapshot, RunMetrics

__all__ = ["Dashboard", "render_dashboard"]


def _rich() -> Any:
    try:
        import rich
    except ImportError as error:
        raise MetricsError(
            "the dashboard needs rich: pip install 'featurizer[metrics]' (or pip install rich)"
        ) from error
    return rich


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:,.1f}"


def _duration(seconds: float | None) -> str:
    """A short human duration.

    >>> [_duration(s) for s in (None, 2e-6, 0.0125, 3.5, 600, 7200, 9e7)]
    ['-', '2.0 µs', '12.5 ms', '3.50 s', '10.0 min', '2.0 h', '1,042 d']
    """
    if seconds is None:
        return "-"
    magnitude = abs(seconds)
    if magnitude < 1e-3:
        return f"{seconds * 1e6:,.1f} µs"
    if magnitude < 1:
        return f"{seconds * 1e3:,.1f} ms"
    if magnitude < 120:
        return f"{seconds:,.2f} s"
    if magnitude < 7200:
        return f"{seconds / 60:,.1f} min"
    if magnitude < 172_800:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.0f} d"


def _optional(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render_dashboard(snapshot: MetricsSnapshot, *, title: str = "featurizer run") -> Any:
    """The dashboard for one snapshot, as a ``rich`` renderable.

    Nodes in topological order (data sources first in their branch) with events in and out,
    their recent rates, errors and sampled p50/p99 processing times; then the data sources
    with rate, lag, gaps and reconnects; then the workers of a scaled-out run and the transport
    edges (batches in flight, batches and bytes sent and received), if any.

    :param snapshot: from :meth:`RunMetrics.snapshot`.
    :param title: the heading.
    :returns: a renderable (print it with a ``rich.console.Console``).
    """
    _rich()
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    heading = Text.assemble(
        (title, "bold"),
        f"  up {snapshot.uptime_seconds:,.1f} s  events in {snapshot.events_in:,}  "
        f"({_rate(snapshot.events_per_second)}/s)",
    )
    nodes = Table(title="nodes", title_justify="left", pad_edge=False, box=box.SIMPLE_HEAD)
    nodes.add_column("node", min_width=12, overflow="ellipsis", no_wrap=True, ratio=1)
    for column in ("in/s", "out/s", "out", "errors", "p50", "p99"):
        nodes.add_column(column, justify="right", no_wrap=True)
    for node in snapshot.nodes:
        marker = {"source": "◆ ", "input": "◇ ", "feature": "  "}[node.kind]
        name = Text(marker + node.name, style="bold" if node.output else "")
        name.append(f" {node.definition}", style="dim")
        nodes.add_row(
            name,
            _rate(node.in_per_second),
            _rate(node.out_per_second),
            f"{node.events_out:,}",
            Text(f"{node.errors:,}", style="red" if node.errors else ""),
            _duration(node.p50_seconds),
            _duration(node.p99_seconds),
        )
    # A scaled-out run's driver has no graph of its own: its view is the workers and edges.
    show_nodes = bool(snapshot.nodes) or not snapshot.workers
    parts: list[Any] = [heading, nodes] if show_nodes else [heading]
    if snapshot.sources:
        sources = Table(
            title="data sources", title_justify="left", pad_edge=False, box=box.SIMPLE_HEAD
        )
        sources.add_column("source", min_width=12, overflow="ellipsis", no_wrap=True, ratio=1)
        sources.add_column("emitter", overflow="ellipsis", no_wrap=True)
        for column in ("events", "events/s", "lag", "gaps", "reconn."):
            sources.add_column(column, justify="right", no_wrap=True)
        for source in snapshot.sources:
            sources.add_row(
                source.name,
                source.emitter or "-",
                f"{source.events:,}",
                _rate(source.events_per_second),
                _duration(source.lag_seconds),
                _optional(source.gaps),
                _optional(source.reconnects),
            )
        parts.append(sources)
    if snapshot.workers:
        workers = Table(title="workers", title_justify="left", pad_edge=False, box=box.SIMPLE_HEAD)
        workers.add_column("worker", min_width=6, no_wrap=True, ratio=1)
        for column in ("events in", "events/s", "records out", "late", "errors", "state"):
            workers.add_column(column, justify="right", no_wrap=True)
        for worker in snapshot.workers:
            state = {None: "-", True: "done", False: "running"}[worker.finished]
            workers.add_row(
                worker.name,
                f"{worker.events_in:,}",
                _rate(worker.events_per_second),
                _optional(worker.records_out),
                _optional(worker.late_events),
                Text(_optional(worker.errors), style="red" if worker.errors else ""),
                state,
            )
        parts.append(workers)
    if snapshot.edges:
        transports = sorted({edge.transport for edge in snapshot.edges})
        single = len(transports) == 1  # then named in the title, not in a column
        edges = Table(
            title=f"transport edges ({transports[0]})" if single else "transport edges",
            title_justify="left",
            pad_edge=False,
            box=box.SIMPLE_HEAD,
        )
        edges.add_column("edge", min_width=12, overflow="ellipsis", no_wrap=True, ratio=1)
        if not single:
            edges.add_column("transport", no_wrap=True)
        received = any(edge.batches_received is not None for edge in snapshot.edges)
        columns = ["queue", "batches", "bytes"]
        if received:
            columns += ["recv.", "bytes recv."]
        for column in columns:
            edges.add_column(column, justify="right", no_wrap=True)
        for edge in snapshot.edges:
            cells = [
                _optional(edge.queue_depth),
                _optional(edge.batches),
                _optional(edge.bytes),
            ]
            if received:
                cells += [_optional(edge.batches_received), _optional(edge.bytes_received)]
            edges.add_row(edge.name, *([] if single else [edge.transport]), *cells)
        parts.append(edges)
    if show_nodes:
        parts.append(Text("◆ data source  ◇ input from another worker  bold: output", style="dim"))
    for part in parts:
        if isinstance(part, Table):
            _keep_numbers_whole(part)
    return Group(*parts)


def _keep_numbers_whole(table: Any) -> None:
    """Right-aligned (number) columns are at least as wide as their widest cell and never
    cut: when the view is narrow, only the name columns are shortened (with an ellipsis)."""
    for column in table.columns:
        if column.justify != "right":
            continue
        widest = max((len(str(cell)) for cell in column.cells), default=0)
        column.min_width = max(widest, len(str(column.header)))
        column.overflow = "fold"


_FILE_WIDTH = 200
"""Columns of the dashboard's final view when standard error is not a terminal."""


class Dashboard:
    """Redraws :func:`render_dashboard` of a run's metrics a few times a second.

    On a terminal the view updates in place; elsewhere (a file, a pipe) only the final view is
    printed when the dashboard stops.

    :param run_metrics: the run's metrics.
    :param console: a ``rich.console.Console`` (standard error by default).
    :param refresh_per_second: redraws per second.
    :param title: the heading.
    """

    def __init__(
        self,
        run_metrics: RunMetrics,
        *,
        console: Any = None,
        refresh_per_second: float = 4.0,
        title: str = "featurizer run",
    ) -> None:
        _rich()
        from rich.console import Console

        self.run_metrics = run_metrics
        if console is None:
            console = Console(stderr=True)
            if not console.is_terminal:  # a file or a pipe has no width: never cut a line
                console = Console(stderr=True, width=_FILE_WIDTH)
        self.console = console
        self.refresh_per_second = refresh_per_second
        self.title = title
        self._live: Any = None

    def render(self) -> Any:
        """The current view."""
        return render_dashboard(self.run_metrics.snapshot(), title=self.title)

    def start(self) -> None:
        """Start redrawing (on ``rich``'s refresh thread)."""
        from rich.live import Live

        if self._live is not None:
            return
        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=self.refresh_per_second,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start(refresh=True)

    def stop(self) -> None:
        """Draw the final view and stop; safe to call twice."""
        live, self._live = self._live, None
        if live is not None:
            live.stop()
            if not self.console.is_terminal:
                self.console.line()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
