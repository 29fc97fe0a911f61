"""The driver of a scaled-out run: plan, launch through a scaler, collect in order, stop."""

from __future__ import annotations

import abc
import contextlib
import contextvars
import logging
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from featurizer._config import FeaturizerConfig, construct_features_from_configs
from featurizer._events import Event, GroupedNamedDataEvent
from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph
from featurizer._plugin_types import ScalingStrategySpec, TransportSpec
from featurizer._plugins import Plugins, get_plugins
from featurizer._runner import RunContext, RunOptions, assign_emitters, check_emitter_settings
from featurizer._sinks import JsonLinesSink, Sink, flatten_grouped
from featurizer.scaling._barriers import WorkerCheckpointing
from featurizer.scaling._errors import PlanError, ScalingError, WorkerError
from featurizer.scaling._observe import ScaledRunObserver
from featurizer.scaling._ordering import OutputCollector
from featurizer.scaling._outputs import (
    WorkerOutputs,
    join_json_row,
    merge_row,
    names_keep_columns_apart,
)
from featurizer.scaling._plan import FeatureStreamWorkerGraph
from featurizer.scaling._recovery import BarrierCoordinator
from featurizer.scaling._specs import ScalerSpec
from featurizer.scaling._transport import Batch, Inbox, Transport
from featurizer.scaling._worker import EmitterFactory, WorkerRuntime

if TYPE_CHECKING:
    from featurizer.checkpoint._restarts import RestartHistory
    from featurizer.checkpoint._scaled import ScaledCheckpointer
    from featurizer.metrics import RunMetrics

__all__ = [
    "ScaledRun",
    "ScaledRunRequest",
    "ScaledRunSummary",
    "Scaler",
    "build_plan",
    "make_transport",
    "plan_for_request",
    "registered_scalers",
    "reporting_metrics",
    "run_scaled",
]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.2

_RECV_WAIT = 0.005
"""Seconds the driver blocks on one inbox when no inbox had a batch (latency bound)."""

_AMBIENT_METRICS: contextvars.ContextVar[RunMetrics | None] = contextvars.ContextVar(
    "featurizer_scaled_run_metrics", default=None
)


@contextlib.contextmanager
def reporting_metrics(run_metrics: RunMetrics | None) -> Iterator[None]:
    """Within the block, :func:`run_scaled` calls given no ``metrics=`` report to
    ``run_metrics`` (``featurizer run --scaler ... --metrics-port P`` uses this).

    :param run_metrics: the metrics (``None``: nothing changes).
    """
    token = _AMBIENT_METRICS.set(run_metrics)
    try:
        yield
    finally:
        _AMBIENT_METRICS.reset(token)


def registered_scalers(plugins: Plugins) -> dict[str, ScalerSpec]:
    """Registered scalers by name.

    :raises RegistryError: when two plugins register the same name.
    """
    return plugins.scalers()


def _lookup(kind: str, name: str, registry: Mapping[str, Any], flag: str) -> Any:
    if name not in registry:
        raise PlanError(
            f"unknown {kind} {name!r} ({flag}); registered: {', '.join(sorted(registry)) or 'none'}"
            + (
                " (install featurizer-ray for 'ray', featurizer-zmq for 'zmq')"
                if name in ("ray", "zmq")
                else ""
            )
        )
    return registry[name]


def build_plan(
    features: Sequence[Feature], strategy: str, workers: int, plugins: Plugins
) -> FeatureStreamWorkerGraph:
    """Plan ``features`` with the registered strategy ``strategy`` over ``workers`` workers.

    :raises PlanError: for an unknown strategy or a worker count it cannot use.

    >>> from featurizer.testing import ExampleMid, ExampleTicker
    >>> a = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    >>> b = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "B"})
    >>> mids = [Feature.create(ExampleMid, {}, {"ticker": t}) for t in (a, b)]
    >>> plan = build_plan(mids, "by_source", 2, get_plugins())
    >>> [[f.name for f in w.outputs] for w in plan.workers]
    [['example_mid(example_ticker.x.A)'], ['example_mid(example_ticker.x.B)']]
    """
    spec: ScalingStrategySpec = _lookup(
        "scaling strategy", strategy, plugins.scaling_strategies(), "--strategy"
    )
    plan = spec.planner(list(features), workers)
    if not isinstance(plan, FeatureStreamWorkerGraph):
        raise PlanError(
            f"scaling strategy {strategy!r} returned {type(plan).__name__}, expected a "
            f"FeatureStreamWorkerGraph",
            strategy=strategy,
        )
    return plan


def make_transport(name: str, options: Mapping[str, Any], plugins: Plugins) -> Transport:
    """Build the registered transport ``name`` with ``options``.

    :raises PlanError: for an unknown transport.
    """
    spec: TransportSpec = _lookup("transport", name, plugins.transports(), "--transport")
    transport: Transport = spec.factory(dict(options))
    return transport


@attrs.frozen(kw_only=True)
class ScaledRunRequest:
    """Everything a scaler needs to start the workers of a run (picklable with a config).

    :param config: the config (workers rebuild features and plan from it), or ``None`` when
        ``features`` are given (in-process scalers only).
    :param features: the output features, for in-process scalers.
    :param strategy: the scaling strategy's name.
    :param workers: the worker count.
    :param fingerprint: the driver's plan fingerprint; workers check theirs matches.
    :param transport: the transport's name.
    :param transport_options: the transport's options.
    :param driver_address: the driver's inbox, where workers send outputs.
    :param options: run options (emitters, bounds, error policy).
    :param watermark_delay: ``None`` (exact order) or the live watermark delay in seconds.
    :param flush_interval: seconds between flushes of partial batches.
    :param make_emitters: replaces registered emitters (tests with in-memory data).
    :param outputs: worker-output mode: where each worker writes its own outputs; ``None``:
        workers send their outputs to the driver.
    :param driver_addresses: the driver's inbox for each worker (one per worker, so that the
        driver can stop reading a worker that runs ahead: backpressure); a worker missing
        here sends to ``driver_address``.
    :param idle_timeout: seconds without events after which a source group is idle (see
        :class:`~featurizer.scaling.WorkerRuntime`); ``None``: never.
    :param heartbeat_interval: seconds between a worker's heartbeats to the driver.
    :param row_parts: workers send the driver, instead of each output event, its part of the
        combined rows: ``"json"`` (the text of its columns: the driver writes JSON Lines and
        joins rows), ``"columns"`` (its named columns: the driver merges rows), ``None`` (the
        event). See :class:`~featurizer.scaling.WorkerRuntime`.
    :param checkpoint: a checkpointed run: the directory, the checkpoint resumed and each
        worker's acknowledgement of it (``None``: no checkpoints).
    """

    config: FeaturizerConfig | None
    features: tuple[Feature, ...] | None = None
    strategy: str
    workers: int
    fingerprint: str
    transport: str
    transport_options: Mapping[str, Any] = attrs.field(factory=dict)
    driver_address: str
    options: RunOptions
    watermark_delay: float | None = None
    flush_interval: float = 0.005
    make_emitters: EmitterFactory | None = None
    outputs: WorkerOutputs | None = None
    driver_addresses: Mapping[int, str] = attrs.field(factory=dict)
    idle_timeout: float | None = None
    heartbeat_interval: float = 0.5
    row_parts: str | None = None
    checkpoint: WorkerCheckpointing | None = None

    def driver_address_for(self, index: int) -> str:
        """Where worker ``index`` sends to the driver."""
        return self.driver_addresses.get(index, self.driver_address)

    def worker_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`WorkerRuntime` this request sets."""
        return {
            "options": self.options,
            "make_emitters": self.make_emitters,
            "watermark_delay": self.watermark_delay,
            "flush_interval": self.flush_interval,
            "outputs": self.outputs,
            "idle_timeout": self.idle_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "config": self.config,
            "row_parts": self.row_parts,
            "checkpoint": self.checkpoint,
        }


def plan_for_request(request: ScaledRunRequest, plugins: Plugins) -> FeatureStreamWorkerGraph:
    """Rebuild the plan in a worker process and check it is the driver's.

    :raises PlanError: when the fingerprints differ (different plugins or versions).
    """
    features = (
        list(request.features)
        if request.features is not None
        else construct_features_from_configs(request.config, plugins)  # type: ignore[arg-type]
    )
    plan = build_plan(features, request.strategy, request.workers, plugins)
    if plan.fingerprint != request.fingerprint:
        raise PlanError(
            f"this process planned {plan.fingerprint[:12]} but the driver planned "
            f"{request.fingerprint[:12]} for the same config: the processes have different "
            f"plugins or versions installed",
            strategy=request.strategy,
        )
    return plan


class ScaledRun(abc.ABC):
    """A launched run, as its scaler controls it."""

    #: whether :meth:`stats` reads workers of this process (cheap enough for every metrics
    #: scrape); otherwise the driver polls it from a thread
    stats_in_process: bool = False

    def stats(self) -> dict[int, dict[str, Any]]:
        """Live counters of every worker, by index: what
        :meth:`~featurizer.scaling.WorkerRuntime.live_stats` returns (``events_in``,
        ``late_events``, ``errors``, ``finished``, and per channel what was ``sent`` and
        ``received``); read every worker's ``received`` before any worker's ``sent``. Still
        answers, with the final counts, after :meth:`stop`.

        The default, for scalers that cannot tell, is ``{}`` (no live metrics).

        :raises ScalingError: when the workers cannot be asked (the caller logs and retries).
        """
        return {}

    @abc.abstractmethod
    def poll(self) -> None:
        """Check the workers.

        :raises WorkerError: when a worker failed or died.
        """

    def request_barrier(self, checkpoint_id: int) -> None:
        """Ask every worker for checkpoint barrier ``checkpoint_id`` (returns at once; see
        ``docs/fault-tolerance.md``). The default refuses: the scaler cannot checkpoint.

        :raises ScalingError: when the workers cannot be told.
        """
        raise ScalingError(f"the {type(self).__name__} scaler cannot checkpoint")

    def commit(self, checkpoint_id: int) -> None:  # noqa: B027 - optional, with request_barrier
        """Tell every worker checkpoint ``checkpoint_id`` committed (worker-output mode: they
        publish their segments of it; the final one is published before this returns).

        :raises ScalingError: when the workers cannot be told.
        """

    def drain(self) -> None:  # noqa: B027 - optional: scalers that cannot drain keep it
        """Stop the run cleanly: every worker stops taking input, dispatches what it holds and
        ends its channels (the driver goes on collecting until they all ended). Returns at
        once. The default does nothing: such a run can only be stopped by :meth:`stop`, and a
        stop by duration or Ctrl-C fails instead of publishing.

        :raises ScalingError: when the workers cannot be told.
        """

    @abc.abstractmethod
    def stop(self, ok: bool = True) -> dict[int, dict[str, Any]]:
        """Stop every worker and release everything; safe to call twice (the first call's
        ``ok`` counts).

        :param ok: whether the run succeeded: in worker-output mode, workers publish their
            files when true and delete them when false.
        :returns: per-worker metrics.
        """


class Scaler(abc.ABC):
    """Starts the workers of a plan somewhere (threads here, Ray actors, ...)."""

    @abc.abstractmethod
    def launch(
        self, request: ScaledRunRequest, plan: FeatureStreamWorkerGraph, plugins: Plugins
    ) -> ScaledRun:
        """Start, wire and run every worker; return once emitters are running.

        Must leave nothing running when it raises.

        :raises ScalingError: when the workers cannot be started.
        """

    def driver_host(self) -> str | None:
        """The address the driver's inboxes must bind for the workers to reach them (a
        cluster's view of this machine), or ``None`` for the transport's default (loopback)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the scaler itself holds (cluster connections it opened)."""


class LocalScaler(Scaler):
    """Every worker as threads of the driver process, over an in-process transport.

    It runs the same worker code as distributed scalers, so it tests plans and ordering
    without a cluster; it does not use more than one core.

    With ``processes`` (Python API), every worker runs in a process of its own on this
    machine instead, over ``transport="zmq"`` (see :mod:`featurizer.scaling._processes`): a
    worker can then be killed by its PID, as a Ray actor can.

    :param options: ``processes`` (default false) and, with it, ``timeout`` (seconds each
        request to a worker process may take, default 60); others are ignored.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def launch(
        self, request: ScaledRunRequest, plan: FeatureStreamWorkerGraph, plugins: Plugins
    ) -> ScaledRun:
        """Build, wire and start one :class:`WorkerRuntime` per worker (thread or process)."""
        if self.options.get("processes"):
            from featurizer.scaling._processes import start_processes

            return start_processes(request, plan.size, float(self.options.get("timeout", 60.0)))
        transport = make_transport(request.transport, request.transport_options, plugins)
        runtimes: list[WorkerRuntime] = []
        try:
            for index in range(plan.size):
                runtimes.append(
                    WorkerRuntime(
                        plan, index, transport, plugins=plugins, **request.worker_options()
                    )
                )
            addresses = {rt.index: rt.address for rt in runtimes if rt.address is not None}
            for runtime in runtimes:
                runtime.connect(addresses, request.driver_address_for(runtime.index))
            for runtime in runtimes:
                runtime.build_emitters()
            for runtime in reversed(runtimes):
                runtime.start()
        except BaseException:
            for runtime in runtimes:
                runtime.stop(ok=False)
            transport.close()
            raise
        return _LocalRun(runtimes, transport)


class _LocalRun(ScaledRun):
    stats_in_process = True

    def __init__(self, runtimes: list[WorkerRuntime], transport: Transport) -> None:
        self.runtimes = runtimes
        self.transport = transport
        self._metrics: dict[int, dict[str, Any]] | None = None

    def stats(self) -> dict[int, dict[str, Any]]:
        received = {rt.index: rt.received_stats() for rt in self.runtimes}
        return {rt.index: rt.live_stats(received[rt.index]) for rt in self.runtimes}

    def poll(self) -> None:
        for runtime in self.runtimes:
            failure = runtime.failure()
            if failure is not None:
                raise WorkerError(failure, worker=runtime.index, detail=failure)

    def drain(self) -> None:
        for runtime in self.runtimes:
            runtime.drain()

    def request_barrier(self, checkpoint_id: int) -> None:
        for runtime in self.runtimes:
            runtime.request_barrier(checkpoint_id)

    def commit(self, checkpoint_id: int) -> None:
        for runtime in self.runtimes:
            runtime.commit(checkpoint_id)

    def stop(self, ok: bool = True) -> dict[int, dict[str, Any]]:
        if self._metrics is None:
            metrics: dict[int, dict[str, Any]] = {}
            failure: BaseException | None = None
            for rt in self.runtimes:
                try:
                    metrics[rt.index] = rt.stop(ok=ok)
                except Exception as error:  # e.g. publishing an output file failed
                    failure = failure or error
                    metrics[rt.index] = rt.metrics()
            self._metrics = metrics
            self.transport.close()
            if failure is not None:
                raise ScalingError(f"stopping the workers failed: {failure}") from failure
        return self._metrics


@attrs.frozen(kw_only=True)
class ScaledRunSummary:
    """What a scaled-out run did (the fields of :class:`~featurizer._runner.RunSummary` and more).

    :param events_in: input events ingested by all workers.
    :param outputs_out: rows written.
    :param errors: feature errors counted under the ``skip`` policy.
    :param elapsed_seconds: from the first emitter's start to the last output.
    :param stopped_by: ``"completed"``, ``"duration"``, ``"max_events"`` or ``"interrupted"``.
    :param late_events: input events behind the watermark, sent to the side output.
    :param workers: per-worker metrics, by worker index.
    :param strategy: the strategy used.
    :param scaler: the scaler used.
    :param fingerprint: the plan's fingerprint.
    :param output_files: worker-output mode: the files the workers published, by worker.
    """

    events_in: int
    outputs_out: int
    errors: int
    elapsed_seconds: float
    stopped_by: str
    late_events: int = 0
    workers: Mapping[int, Mapping[str, Any]] = attrs.field(factory=dict)
    strategy: str = ""
    scaler: str = ""
    fingerprint: str = ""
    output_files: tuple[str, ...] = ()

    @property
    def events_per_second(self) -> float:
        """Input events per wall-clock second."""
        return self.events_in / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    def describe(self) -> str:
        """Human-readable lines: totals, then one line per worker."""
        lines = [
            f"events in: {self.events_in:,}  outputs out: {self.outputs_out:,}  errors: "
            f"{self.errors:,}  late: {self.late_events:,}  elapsed: {self.elapsed_seconds:.2f} s  "
            f"events/s: {self.events_per_second:,.0f}  stopped by: {self.stopped_by}  "
            f"(scaler {self.scaler}, strategy {self.strategy}, {len(self.workers)} workers, plan "
            f"{self.fingerprint[:12]})"
        ]
        for index, metrics in sorted(self.workers.items()):
            lines.append(
                f"  worker {index}: events in {metrics.get('events_in', 0):,}, records out "
                f"{metrics.get('records_out', 0):,} in {metrics.get('batches_out', 0):,} batches, "
                f"late {metrics.get('late_events', 0):,}, errors {metrics.get('errors', 0):,}"
                + (
                    f", wrote {metrics.get('rows_out', 0):,} rows to {metrics['output']}"
                    if metrics.get("output")
                    else ""
                )
            )
        return "\n".join(lines)


def run_scaled(
    config: FeaturizerConfig | Sequence[Feature],
    options: RunOptions,
    sink: Sink | None,
    *,
    scaler: str = "local",
    workers: int = 1,
    strategy: str | None = None,
    transport: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
    scaler_options: Mapping[str, Any] | None = None,
    watermark_delay: float | None = None,
    flush_interval: float = 0.005,
    plugins: Plugins | None = None,
    on_combined: Callable[[GroupedNamedDataEvent], None] | None = None,
    on_late: Callable[[Feature, Event], None] | None = None,
    make_emitters: EmitterFactory | None = None,
    metrics: RunMetrics | None = None,
    metrics_interval: float = 0.5,
    outputs: WorkerOutputs | None = None,
    idle_timeout: float | None = None,
    heartbeat_timeout: float = 10.0,
    drain_timeout: float = 10.0,
    max_pending: int = 100_000,
    progress: Callable[[int | None, int], None] | None = None,
    checkpoint: ScaledCheckpointer | None = None,
) -> ScaledRunSummary:
    """Run a config scaled out: plan it, start the workers, merge their outputs, stop cleanly.

    For replayed input (``watermark_delay=None``) the rows are those a single-process run
    produces for the same input events ordered by event time (ties between independent
    sub-DAGs broken by their rank in the plan): same rows, same order, same floats.

    Every check happens before anything starts (strategy, transport and scaler names, the
    worker count, binding the driver's inbox); on any failure every worker, actor and socket
    is stopped before the error propagates.

    :param config: the config, or the output features (in-process scalers only).
    :param options: emitter choice, bounds (``max_events`` bounds each worker's input),
        output shape and error policy.
    :param sink: receives rows; closed with ``ok=True`` only when the run ends cleanly
        (``None``: rows are dropped; with ``outputs`` the driver receives no rows).
    :param scaler: a registered scaler (``local``, ``ray``).
    :param workers: the number of workers.
    :param strategy: a registered strategy; default ``single`` for one worker, else
        ``by_source``.
    :param transport: a registered transport; default: the scaler's.
    :param transport_options: e.g. ``{"port": 5555, "hwm": 64, "batch_size": 1024}``.
    :param scaler_options: e.g. ``{"address": "127.0.0.1:6379"}`` for Ray.
    :param watermark_delay: ``None`` for exact event-time order; seconds for live input.
    :param flush_interval: seconds between flushes of partial batches (latency bound).
    :param plugins: the plugins (installed ones by default).
    :param on_combined: also called with every combined output.
    :param on_late: called with ``(data source, event)`` for every late input event.
    :param make_emitters: replaces registered emitters (in-process tests).
    :param metrics: receives, while the run goes, every worker's counters (as
        :meth:`~featurizer.metrics.RunMetrics.add_worker`) and one transport edge per channel
        (batches in flight, batches, records and bytes sent and received); by default the
        metrics of an enclosing :func:`reporting_metrics` block, if any.
    :param metrics_interval: seconds between polls of workers in other processes (Ray);
        in-process workers are read at every snapshot.
    :param outputs: worker-output mode (see :class:`WorkerOutputs` and ``docs/scaling.md``):
        each worker merges, combines and writes its own outputs to its own file and sends the
        driver only its final metrics; files are published when the run ends cleanly and
        deleted when it fails. ``on_combined`` and ``on_late`` are not called in this mode
        (late events are counted in the summary).
    :param idle_timeout: seconds without events after which a source group is idle and stops
        holding back the others (its watermark follows the worker's event clock minus this
        timeout; events it emits behind it are late). ``None``: groups never go idle.
    :param heartbeat_timeout: a worker the driver reads from that sends nothing (workers send
        a heartbeat every 0.5 s) for this many seconds is hung: the run fails naming it.
    :param drain_timeout: seconds a stop by duration, Ctrl-C or SIGTERM may take to drain
        (workers dispatch what they hold, the driver releases every row); past it the run
        fails and nothing is published. A second Ctrl-C while draining abandons the run.
    :param max_pending: records per worker the driver holds at most before it stops reading
        that worker (unless its watermark is the lowest): the worker then blocks on its full
        channel and so does its emitter, which bounds the driver's memory whatever the speed
        difference between workers.
    :param progress: called about every 0.2 s from the driver's thread with the input events
        so far (``None`` when the workers are not in this process: their counts come at the
        end) and the rows the driver wrote (a progress line).
    :param checkpoint: checkpoint the run (see ``docs/fault-tolerance.md``): aligned barriers
        through the channels, a checkpoint committed when every worker acknowledged it,
        outputs published exactly once at commits (``sink`` must be the checkpointer's
        sink, or ``None`` with ``outputs``); a worker that dies is detected, every worker
        restarts from the last checkpoint (at most ``settings.max_restarts`` times without a
        checkpoint committed in between, counted across driver processes),
        and the output is that of an uninterrupted run. Resumes from the checkpoint
        directory when it holds a checkpoint of this run.
    :returns: the summary.
    :raises ScalingError: for planning, transport or worker failures (a worker's error is
        a :class:`WorkerError` naming the worker and its original error), a hung worker, or a
        stop that could not drain.

    >>> from featurizer.testing import ExampleMid, ExampleTicker, InMemoryEmitter
    >>> from featurizer.testing import CollectingSink
    >>> t = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})
    >>> mid = Feature.create(ExampleMid, {}, {"ticker": t})
    >>> events = [(t, {"timestamp": float(i), "receipt_timestamp": float(i), "bid": 1.0,
    ...                "ask": 3.0 + i}) for i in range(3)]
    >>> emitters = lambda plan, w: {"memory": (InMemoryEmitter(events), [t])}
    >>> sink = CollectingSink()
    >>> summary = run_scaled([mid], RunOptions(), sink, make_emitters=emitters)
    >>> [row["example_mid(example_ticker.x.A).mid"] for row in sink.rows]
    [2.0, 2.5, 3.0]
    """
    plugins = plugins or get_plugins()
    if isinstance(config, FeaturizerConfig):
        features = construct_features_from_configs(config, plugins)
        request_config: FeaturizerConfig | None = config
    else:
        features = list(config)
        request_config = None
    strategy = strategy or ("single" if workers == 1 else "by_source")
    scalers = registered_scalers(plugins)
    scaler_spec: ScalerSpec = _lookup("scaler", scaler, scalers, "--scaler")
    transport_name = transport or scaler_spec.default_transport
    transports = plugins.transports()
    _lookup("transport", transport_name, transports, "--transport")
    if transport_name == "inproc" and scaler_spec.separate_processes:
        raise PlanError(
            f"the inproc transport connects threads of one process, but the {scaler!r} "
            f"scaler's workers are separate processes; use --transport zmq (its default)"
        )
    plan = build_plan(features, strategy, workers, plugins)
    if make_emitters is None:  # every worker's emitters exist: checked before anything starts
        sources = [source for worker in plan.workers for source in worker.sources]
        if sources:
            assigned = assign_emitters(sources, plugins.emitters(), options.emitter)
            check_emitter_settings(assigned, plugins.emitters(), options)
    output_files: tuple[str, ...] = ()
    if outputs is not None:
        outputs = outputs.absolute()
        paths = outputs.check(plugins, plan.size)
        output_files = tuple(str(paths[w.index]) for w in plan.workers if w.outputs)
    graph = FeatureStreamGraph(features)
    if checkpoint is not None:
        _check_checkpointable(checkpoint, outputs)
    transport_obj = make_transport(transport_name, transport_options or {}, plugins)
    inboxes: dict[int, Inbox] = {}
    scaler_obj: Scaler | None = None
    launched: ScaledRun | None = None
    context = RunContext(config=request_config, options=options, graph=graph, emitters={})  # type: ignore[arg-type]
    rows = [0]

    write_row = sink.write_row if sink is not None else (lambda row: None)
    # rows are built from parts the workers made: joined text for JSON Lines, else columns
    row_parts = None
    if sink is not None and options.combine_outputs and outputs is None and on_combined is None:
        joinable = isinstance(sink, JsonLinesSink | _text_sink_type()) and names_keep_columns_apart(
            plan.outputs
        )
        row_parts = "json" if joinable else "columns"

    def write_combined(grouped: GroupedNamedDataEvent) -> None:
        rows[0] += 1
        write_row(flatten_grouped(grouped))
        if on_combined is not None:
            on_combined(grouped)

    def write_joined(grouped: Any) -> None:
        rows[0] += 1
        write_text(join_json_row(grouped))

    def write_merged(grouped: Any) -> None:
        rows[0] += 1
        write_row(merge_row(grouped))

    if row_parts == "json":
        write_text = sink.write_text  # type: ignore[union-attr]
    writers = {"json": write_joined, "columns": write_merged}

    def write_event(feature: Feature, event: Event) -> None:
        rows[0] += 1
        write_row({"feature": feature.name, **event})

    def make_collector() -> OutputCollector:
        return OutputCollector(
            plan,
            on_combined=writers.get(row_parts or "", write_combined)
            if options.combine_outputs
            else None,
            on_event=None if options.combine_outputs else write_event,
            on_late=on_late,
            combine=options.combine_outputs,
        )

    collector = make_collector()
    stopped_by = "completed"
    started = time.perf_counter()
    worker_metrics: dict[int, dict[str, Any]] = {}
    run_metrics = metrics if metrics is not None else _AMBIENT_METRICS.get()
    observer = None
    if run_metrics is not None:
        observer = ScaledRunObserver(run_metrics, plan, transport_name, interval=metrics_interval)
        observer.register()
    signals = _StopSignals()
    signals.install()
    try:
        scaler_obj = scaler_spec.factory(dict(scaler_options or {}))
        host = scaler_obj.driver_host()
        if host is not None and "host" not in (transport_options or {}):
            # workers on other machines must reach the driver's inboxes
            transport_obj.close()
            transport_options = {**(transport_options or {}), "host": host}
            transport_obj = make_transport(transport_name, transport_options, plugins)
        port = (transport_options or {}).get("port")
        shared = {k: v for k, v in (transport_options or {}).items() if k != "host"}
        shared.update(transport_obj.shared_options())
        restored = None
        if checkpoint is not None:
            ordering = {"watermark_delay": watermark_delay, "idle_timeout": idle_timeout}
            restored = checkpoint.start(graph, _scaled_identity(plan, strategy, outputs, ordering))
            from featurizer.checkpoint._restarts import RestartHistory

            history = RestartHistory(checkpoint.settings.directory)
            if checkpoint.settings.fresh:
                history.reset()
        detected: float | None = None
        plugins.before_run(context)
        launched_at = time.perf_counter()  # the workers' emitters bound their own duration
        while True:
            collector = make_collector()
            for box in inboxes.values():  # a restart: batches of the workers before it go too
                box.close()
            inboxes.clear()
            for worker in plan.workers:
                inboxes[worker.index] = transport_obj.open_inbox(
                    f"driver-{worker.index}",
                    port=None if port is None else int(port) + worker.index,
                )
            inbox = inboxes[0]
            request = ScaledRunRequest(
                config=request_config,
                features=None if request_config is not None else tuple(features),
                strategy=strategy,
                workers=workers,
                fingerprint=plan.fingerprint,
                transport=transport_name,
                transport_options=shared,
                driver_address=inbox.address,
                driver_addresses={index: box.address for index, box in inboxes.items()},
                idle_timeout=idle_timeout,
                options=options,
                watermark_delay=watermark_delay,
                flush_interval=flush_interval,
                make_emitters=make_emitters,
                outputs=outputs,
                row_parts=row_parts,
                checkpoint=None
                if checkpoint is None
                else _worker_checkpointing(checkpoint, restored, collector, rows),
            )
            launched = scaler_obj.launch(request, plan, plugins)
            if detected is not None and checkpoint is not None:  # a restart: running again
                checkpoint.metrics.recovery_seconds = time.perf_counter() - detected
            if checkpoint is not None and (
                type(launched).request_barrier is ScaledRun.request_barrier
            ):
                raise ScalingError(
                    f"the {scaler!r} scaler cannot take checkpoint barriers: run it without "
                    f"--checkpoint, or use --scaler local or ray"
                )
            if observer is not None:
                observer.bind(launched, _bytes_received(inboxes), collector)
            started = time.perf_counter()
            barriers = None
            if checkpoint is not None:
                barriers = BarrierCoordinator(
                    checkpoint,
                    collector,
                    [w.index for w in plan.workers],
                    launched.request_barrier,
                    _committed(history, launched.commit),
                )
            gatherer = _Gatherer(
                inboxes,
                collector,
                launched,
                heartbeat_timeout=heartbeat_timeout,
                max_pending=max_pending,
                signals=signals,
                progress=None if progress is None else _progress_of(launched, rows, progress),
                barriers=barriers,
            )
            try:
                stopped_by = gatherer.collect(options.duration, drain_timeout)
            except WorkerError as error:
                if checkpoint is None:
                    raise
                detected = time.perf_counter()
                checkpoint.metrics.last_failure_at = time.time()
                checkpoint.metrics.last_failure = (error.detail or str(error)).splitlines()[0]
                limit = checkpoint.settings.max_restarts
                cause = (error.detail or str(error)).splitlines()[0]
                if history.streak >= limit:
                    raise ScalingError(
                        f"worker {error.worker} failed and the run was already restarted "
                        f"{history.streak} time(s) without a checkpoint committed in between, "
                        f"the limit (--max-restarts {limit}): {cause}"
                    ) from error
                restarts = history.record(error.worker, cause)
                logger.warning(
                    "worker %s failed (%s); restart %d of at most %d from the last checkpoint",
                    error.worker,
                    cause,
                    restarts,
                    limit,
                )
                _stop_quietly(launched)
                launched = None
                restored = checkpoint.reload()
                continue
            break
        if barriers is not None:
            barriers.final()
        elapsed = time.perf_counter() - started
        worker_metrics = launched.stop(ok=True)
    except BaseException as error:
        signals.restore()
        _cleanup(launched, inboxes, transport_obj, scaler_obj, observer, ok=False)
        if checkpoint is not None:
            checkpoint.close()
        if sink is not None:
            sink.close(ok=False)
        if isinstance(error, KeyboardInterrupt):  # while starting: nothing to drain
            error = ScalingError("interrupted while starting the workers; nothing is published")
            plugins.on_run_error(context, error)
            raise error from None
        plugins.on_run_error(context, error)
        raise
    signals.restore()
    _cleanup(launched, inboxes, transport_obj, scaler_obj, observer)
    if checkpoint is not None:
        checkpoint.close()
    if sink is not None:
        sink.close(ok=True)
    if (
        stopped_by == "completed"
        and options.max_events is not None
        and any(m.get("events_in", 0) >= options.max_events for m in worker_metrics.values())
    ):
        stopped_by = "max_events"
    if (
        stopped_by == "completed"
        and options.duration is not None
        and time.perf_counter() - launched_at >= options.duration
    ):  # every emitter ended on its own duration bound before the driver's deadline came
        stopped_by = "duration"
    summary = ScaledRunSummary(
        events_in=sum(int(m.get("events_in", 0)) for m in worker_metrics.values()),
        outputs_out=rows[0] + sum(int(m.get("rows_out", 0)) for m in worker_metrics.values()),
        errors=sum(int(m.get("errors", 0)) for m in worker_metrics.values()),
        elapsed_seconds=elapsed,
        stopped_by=stopped_by,
        late_events=sum(collector.late.values())
        + (sum(int(m.get("late_events", 0)) for m in worker_metrics.values()) if outputs else 0),
        workers=worker_metrics,
        strategy=strategy,
        scaler=scaler,
        fingerprint=plan.fingerprint,
        output_files=output_files,
    )
    plugins.after_run(context, summary)
    return summary


def _committed(history: RestartHistory, commit: Callable[[int], None]) -> Callable[[int], None]:
    """``commit`` (tell the workers checkpoint N committed) after a committed checkpoint has
    ended the streak of worker restarts (see :mod:`featurizer.checkpoint._restarts`)."""

    def committed(checkpoint_id: int) -> None:
        history.committed()
        commit(checkpoint_id)

    return committed


def _text_sink_type() -> type:
    from featurizer.checkpoint import SegmentedJsonLinesSink

    return SegmentedJsonLinesSink


def _check_checkpointable(checkpoint: ScaledCheckpointer, outputs: WorkerOutputs | None) -> None:
    """Refuse, before anything starts, what a checkpointed scaled run cannot do."""
    if outputs is not None and outputs.format_name not in (None, "jsonl", "json", "parquet"):
        raise ScalingError(
            f"--checkpoint publishes worker outputs as JSON Lines or Parquet at each "
            f"checkpoint; --format {outputs.format_name} cannot be: use --format jsonl|parquet"
        )
    if (
        outputs is not None
        and outputs.format_name is None
        and not str(outputs.path_for(0)).endswith((".jsonl", ".json", ".parquet"))
    ):
        raise ScalingError(
            f"--checkpoint publishes worker outputs as JSON Lines or Parquet at each "
            f"checkpoint: name .jsonl or .parquet files with --out (received {outputs.target!r})"
        )


def _scaled_identity(
    plan: FeatureStreamWorkerGraph,
    strategy: str,
    outputs: WorkerOutputs | None,
    ordering: Mapping[str, float | None],
) -> dict[str, Any]:
    """What a scaled run's checkpoints may be resumed into (the plan and the ordering mode,
    not the scaler). The ordering (``watermark_delay``, ``idle_timeout``) is part of it only
    when set, so that checkpoints of exact-order runs keep the identity they always had."""
    identity: dict[str, Any] = {
        "workers": plan.size,
        "strategy": strategy,
        "plan": plan.fingerprint,
        "outputs": "driver" if outputs is None else "workers",
    }
    identity.update({name: value for name, value in ordering.items() if value is not None})
    return identity


def _worker_checkpointing(
    checkpoint: ScaledCheckpointer,
    restored: tuple[Any, dict[str, Any]] | None,
    collector: OutputCollector,
    rows: list[int],
) -> WorkerCheckpointing:
    """What the workers of a (re)launch restore from; the collector is restored here."""
    settings = checkpoint.settings
    common: dict[str, Any] = {
        # workers elsewhere (Ray) write there: a path of a filesystem they share
        "directory": str(checkpoint.directory.resolve()),
        "log_input": settings.log_input,
        "sync_interval": settings.sync_interval,
        "log_rotate_events": settings.log_rotate_events,
        "keep": settings.keep,
    }
    if restored is None:
        rows[0] = 0
        return WorkerCheckpointing(**common)
    info, state = restored
    collector.restore(pickle.loads(state["collector"]))
    rows[0] = info.rows if checkpoint.sink is not None else 0
    return WorkerCheckpointing(last_id=info.id, restore=dict(state["workers"]), **common)


def _stop_quietly(launched: ScaledRun) -> None:
    """Stop the workers of a failed attempt (their uncommitted output is discarded)."""
    try:
        launched.stop(ok=False)
    except Exception:
        logger.exception("stopping the workers of the failed attempt failed")


class _StopSignals:
    """While a run goes, the first Ctrl-C (SIGINT) or SIGTERM asks for a clean stop (a flag
    the driver's loop reads, so that no half-handled batch is left behind); another one while
    stopping raises :class:`KeyboardInterrupt` (the run is abandoned). Only in the main
    thread (signals are delivered there); elsewhere nothing changes."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # pragma: no cover - platforms without the signal
                continue

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(f"signal {signum} while stopping")
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _bytes_received(inboxes: Mapping[int, Inbox]) -> Callable[[], dict[int, int] | None]:
    """The bytes the driver's inboxes received, per worker (``None`` if one cannot tell)."""

    def received() -> dict[int, int] | None:
        total: dict[int, int] = {}
        for index, box in inboxes.items():
            counts = box.bytes_received()
            if counts is None:
                return None
            total[index] = counts.get(index, 0)
        return total

    return received


def _progress_of(
    launched: ScaledRun, rows: list[int], report: Callable[[int | None, int], None]
) -> Callable[[], None]:
    """``report(input events or None, rows written)`` for the gatherer's polls."""

    def progress() -> None:
        events = None
        if launched.stats_in_process:
            events = sum(int(stats.get("events_in", 0)) for stats in launched.stats().values())
        report(events, rows[0])

    return progress


class _Gatherer:
    """The driver's loop: read the workers' inboxes, merge, watch heartbeats, stop cleanly.

    A worker's inbox is read only while the driver holds fewer than ``max_pending`` of its
    records or its watermark is the lowest (then only its batches can release anything), so
    that a worker running ahead of the others blocks on its full channel instead of growing
    the driver's memory.
    """

    def __init__(
        self,
        inboxes: Mapping[int, Inbox],
        collector: OutputCollector,
        launched: ScaledRun,
        *,
        heartbeat_timeout: float,
        max_pending: int,
        signals: _StopSignals | None = None,
        progress: Callable[[], None] | None = None,
        barriers: BarrierCoordinator | None = None,
    ) -> None:
        self.barriers = barriers
        self.signals = signals or _StopSignals()
        self.progress = progress
        self.inboxes = inboxes
        self.collector = collector
        self.launched = launched
        self.heartbeat_timeout = heartbeat_timeout
        self.max_pending = max_pending
        now = time.monotonic()
        self.last_seen = dict.fromkeys(inboxes, now)
        self.last_poll = now
        self._turn = 0

    def collect(self, duration: float | None, drain_timeout: float) -> str:
        """Collect until every worker ended; on ``duration`` or Ctrl-C, drain first.

        :returns: ``"completed"``, ``"duration"`` or ``"interrupted"``.
        :raises ScalingError: a worker failed or hung, or the drain did not finish in time or
            was interrupted (nothing may be published then).
        """
        deadline = None if duration is None else time.monotonic() + duration
        try:
            if self._run(deadline):
                return "completed"
            stopped_by = "interrupted" if self.signals.requested else "duration"
        except KeyboardInterrupt:  # a signal handler of the caller's, or off the main thread
            stopped_by = "interrupted"
            self.signals.requested = self.signals.requested or "SIGINT"
        logger.info("stopping (%s): draining the workers", stopped_by)
        try:
            self.launched.drain()
            if self._run(time.monotonic() + drain_timeout, draining=True):
                return stopped_by
        except KeyboardInterrupt:
            raise ScalingError(
                "interrupted again while draining: the run is abandoned and nothing is published"
            ) from None
        late = [str(i) for i, c in self.collector.channels.items() if not c.ended]
        raise ScalingError(
            f"the run was stopped ({stopped_by}) but worker(s) {', '.join(late)} did not finish "
            f"within {drain_timeout:g} s (a feature that never returns?); nothing is published"
        )

    def _run(self, until: float | None, *, draining: bool = False) -> bool:
        collector = self.collector
        barriers = self.barriers
        while not collector.finished:
            self._receive()
            now = time.monotonic()
            if barriers is not None:
                barriers.tick(now)
            if now - self.last_poll >= _POLL_SECONDS:
                self.launched.poll()
                self._check_heartbeats(now)
                self.last_poll = now
                if self.progress is not None:
                    self.progress()
            if until is not None and now >= until:
                return False
            if self.signals.requested is not None and not draining:
                return False
        return True

    def _receive(self) -> None:
        collector = self.collector
        barriers = self.barriers
        if barriers is not None and barriers.in_flight is not None:
            # aligning: every worker not aligned yet is read, whatever it holds, so that
            # its barrier arrives; the aligned ones wait for the commit
            readable = [
                index
                for index, channel in collector.channels.items()
                if not channel.ended and not barriers.blocked(index)
            ]
        else:
            readable = [
                index
                for index, channel in collector.channels.items()
                if not channel.ended and collector.queued(index) < self.max_pending
            ]
            if len(readable) < len(self.inboxes):
                readable = sorted(set(readable) | collector.holding_back())
        got = False
        for index in readable:
            batch = self.inboxes[index].recv(0)
            if batch is not None:
                self._take(index, batch)
                got = True
        if not got and readable:
            self._turn = (self._turn + 1) % len(readable)
            index = readable[self._turn]
            batch = self.inboxes[index].recv(_RECV_WAIT)
            if batch is not None:
                self._take(index, batch)
        now = time.monotonic()
        for index in self.inboxes:  # a worker the driver does not read cannot be late
            if index not in readable:
                self.last_seen[index] = now

    def _take(self, index: int, batch: Batch) -> None:
        self.last_seen[index] = time.monotonic()
        if batch.error is not None:
            raise WorkerError(batch.error, worker=batch.sender, detail=batch.error)
        self.collector.handle(batch)
        if self.barriers is not None:
            self.barriers.count(index, batch.events_in)
            if batch.barrier or batch.end:
                self.barriers.taken(index, batch)

    def _check_heartbeats(self, now: float) -> None:
        for index, seen in self.last_seen.items():
            silent = now - seen
            if silent > self.heartbeat_timeout and not self.collector.channels[index].ended:
                message = (
                    f"worker {index} sent nothing for {silent:.1f} s (heartbeat timeout "
                    f"{self.heartbeat_timeout:g} s): it is hung, stopped (SIGSTOP) or stuck in "
                    f"a feature that does not return"
                )
                raise WorkerError(message, worker=index, detail=message)


def _cleanup(
    launched: ScaledRun | None,
    inboxes: Mapping[int, Inbox],
    transport: Transport,
    scaler: Scaler | None,
    observer: ScaledRunObserver | None = None,
    *,
    ok: bool = True,
) -> dict[int, dict[str, Any]]:
    metrics: dict[int, dict[str, Any]] = {}
    if launched is not None:
        try:
            metrics = launched.stop(ok=ok)
        except Exception:
            logger.exception("stopping the workers failed")
    if observer is not None:
        observer.close()  # the final reading, once the workers stopped
    for inbox in inboxes.values():
        inbox.close()
    transport.close()
    if scaler is not None:
        scaler.close()
    return metrics
