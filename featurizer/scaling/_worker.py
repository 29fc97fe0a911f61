"""One worker of a scaled-out run, independent of where it runs (thread, Ray actor, ...)."""

from __future__ import annotations

import collections
import heapq
import logging
import math
import pickle
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from featurizer._config import FeaturizerConfig
from featurizer._emitter import DataSourceEventEmitter
from featurizer._errors import FeaturizerError
from featurizer._events import Event, GroupedNamedDataEvent
from featurizer._feature import Feature
from featurizer._plugins import Plugins
from featurizer._runner import RunOptions, assign_emitters, refuse_warmup
from featurizer._sinks import Sink, flatten_grouped
from featurizer.checkpoint._resend import (
    GAPS_DEFINITION,
    send_gap_events,
    skip_resent,
    skip_resent_from,
)
from featurizer.scaling._barriers import WorkerCheckpointing, fault_count, load_ack, worker_fault
from featurizer.scaling._errors import ScalingError, TransportError
from featurizer.scaling._ordering import GroupMerge, OutputCollector, _Channel
from featurizer.scaling._outputs import (
    JsonColumns,
    RowColumns,
    WorkerOutputs,
    join_json_row,
    merge_row,
    names_keep_columns_apart,
)
from featurizer.scaling._plan import FeatureStreamWorkerGraph
from featurizer.scaling._transport import END_WATERMARK, Batch, Outbox, Transport, Watermark
from featurizer.scaling._worker_log import WorkerLog

__all__ = ["DRIVER", "EmitterFactory", "WorkerRuntime", "format_error"]

logger = logging.getLogger(__name__)

DRIVER = -1
"""The destination index of the driver's collector."""

EmitterFactory = Callable[
    [FeatureStreamWorkerGraph, int], Mapping[str, tuple[DataSourceEventEmitter, list[Feature]]]
]
"""``factory(plan, worker) -> {name: (emitter, sources)}``: replaces the registered emitters."""

_SEND_TIMEOUT = 0.25

_STOP_WAIT = 2.0
"""Seconds :meth:`WorkerRuntime.stop` waits for an emitter's ``stop()`` or for the worker's
lock (held by a feature that never returns) before going on without it."""


def format_error(index: int, error: BaseException) -> str:
    """The one-paragraph error a worker reports to the driver."""
    where = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=-3))
    return f"worker {index} failed: {type(error).__name__}: {error}\n{where.rstrip()}"


class _Destination:
    def __init__(self, index: int, groups: tuple[int, ...]) -> None:
        self.index = index
        self.groups = groups
        self.buffer: list[tuple[Any, ...]] = []
        self.outbox: Outbox | None = None
        self.number = 0
        self.total = 0
        self.sent_marks: dict[int, Watermark] = {}
        self.closed_bytes: int | None = None
        self.last_sent = time.monotonic()

    def bytes_sent(self) -> int | None:
        outbox = self.outbox
        return outbox.bytes_sent() if outbox is not None else self.closed_bytes


class _GroupState:
    """Sequencing state of one source group this worker ingests (mutated under the lock)."""

    __slots__ = (
        "announced",
        "done_sequence",
        "done_time",
        "held",
        "idle",
        "last_wall",
        "max_time",
        "sequence",
    )

    def __init__(self) -> None:
        self.max_time = float("-inf")
        """The running maximum event time: the time part of every key of the group."""
        self.sequence = -1
        """The last sequence number given to an event of the group."""
        self.done_time = float("-inf")
        """The time of the last event fully dispatched (the watermark's time)."""
        self.done_sequence = -1
        """The sequence of the last event fully dispatched (the watermark's sequence)."""
        self.announced = float("-inf")
        """The live watermark (``watermark_delay`` or idleness): events before it are late."""
        self.held: list[tuple[float, int, Callable[[Event], None], Event]] = []
        """Events waiting for the live watermark, a heap by ``(time, arrival)``."""
        self.last_wall = time.time()
        """Processing time of the group's last event (or of the worker's start)."""
        self.idle = False
        """Whether the group had no event for ``idle_timeout`` seconds."""


class WorkerRuntime:
    """Runs worker ``index`` of ``plan``: its graph, emitters, inbox and outboxes.

    Lifecycle: construct (builds the graph, binds the inbox when the worker receives events),
    :meth:`connect` (outboxes to the other workers and to the driver), :meth:`start` (emitters
    and threads), then :meth:`finished`/:meth:`failure` until done, and :meth:`stop`.

    :param plan: the plan.
    :param index: this worker.
    :param transport: the transport of this process.
    :param options: the run options (emitter choice, bounds, error policy).
    :param plugins: where emitters come from.
    :param make_emitters: replaces the registered emitters (tests with in-memory data).
    :param watermark_delay: ``None`` for exact event-time order (replays); seconds for live
        input: each group's events are held and dispatched in event-time order once the
        worker's event clock minus this delay passes them; events behind that watermark are
        late.
    :param idle_timeout: seconds without an event after which a group is idle: its watermark
        follows the worker's event clock minus this timeout, so that it does not hold back
        the others; when it emits again, events behind its watermark are late. ``None``:
        groups never go idle.
    :param heartbeat_interval: seconds between batches to the driver when there is nothing
        else to send (the driver detects a hung worker by their absence).
    :param config: the run's config, given to the emitters this worker builds in their
        options as ``config`` (e.g. the offline emitter's storage root and date range); other
        emitters ignore it.
    :param flush_interval: seconds between flushes of partly filled batches and watermarks.
    :param outputs: worker-output mode: merge, combine and write this worker's own outputs
        to its own file (published by :meth:`stop` with ``ok=True``) and send the driver only
        the final metrics; ``None``: send every output record to the driver.
    :param row_parts: send the driver, instead of each output event, its part of the combined
        rows: ``"json"``, its timestamp and the text of its columns in a JSON Lines row
        (:class:`JsonColumns`: the driver joins rows without encoding values); ``"columns"``,
        its timestamp and its named columns (:class:`RowColumns`: the driver merges them);
        ``None``: the event. Only when combining; in worker-output mode a worker combines its
        own rows from the parts its sink takes, whatever this says.
    :param checkpoint: a checkpointed run: take the barriers the driver asks for, and restore
        this worker from its acknowledgement of the checkpoint resumed (see
        :mod:`featurizer.scaling._barriers`); ``None``: no checkpoints.
    :param own_process: whether the worker is alone in its process (a Ray actor): the fault
        hook then kills the process; otherwise the worker fails as a dead worker would.
    """

    def __init__(
        self,
        plan: FeatureStreamWorkerGraph,
        index: int,
        transport: Transport,
        *,
        options: RunOptions,
        plugins: Plugins,
        make_emitters: EmitterFactory | None = None,
        watermark_delay: float | None = None,
        flush_interval: float = 0.005,
        outputs: WorkerOutputs | None = None,
        idle_timeout: float | None = None,
        heartbeat_interval: float = 0.5,
        config: FeaturizerConfig | None = None,
        row_parts: str | None = None,
        checkpoint: WorkerCheckpointing | None = None,
        own_process: bool = False,
    ) -> None:
        self.plan = plan
        self.checkpoint = checkpoint
        self.own_process = own_process
        self._positions: dict[str, list[Any]] = {
            s.key: [0, -math.inf] for s in plan.workers[index].sources
        }
        self._skip: dict[str, tuple[int, float]] = {}
        self._dispatch_keys: dict[int, str] = {}
        self._barrier_requested = 0
        self._barrier_done = 0 if checkpoint is None else checkpoint.last_id
        self._barrier_in: dict[int, int] = {}
        self._deferred: dict[int, collections.deque[Batch]] = {}
        self._cuts: dict[int, int] = {}
        self._output_state: dict[str, Any] | None = None
        self._final_ack: bytes = b""
        self.restored_finished = False
        self._log: WorkerLog | None = None
        self._ingests: dict[str, Callable[[Event], None]] = {}
        self._emitters_started = threading.Event()
        self._emitters_closed = False
        self._start_lock = threading.Lock()
        self._log_committed = 0
        self._log_pruned = 0
        self.gaps = 0
        self.replayed = 0
        if not options.combine_outputs:
            row_parts = None
        elif outputs is not None:
            mine = [f for f in plan.outputs if f in plan.workers[index].outputs]
            row_parts = outputs.row_parts(plugins, index) if mine else None
            if row_parts == "json" and not names_keep_columns_apart(mine):
                row_parts = "columns"
        self.row_parts = row_parts
        self.config = config
        self.index = index
        self.worker = plan.workers[index]
        self.transport = transport
        self.options = options
        self.plugins = plugins
        self.watermark_delay = watermark_delay
        self.idle_timeout = idle_timeout
        self.heartbeat_interval = heartbeat_interval
        self.flush_interval = flush_interval
        self._clock_offset: float | None = None
        self._started_wall = time.time()
        self._started_cpu: float | None = None
        self._arrivals = 0
        self._draining = threading.Event()
        self.batch_size = max(1, int(getattr(transport, "batch_size", 1024)))
        self.lock = threading.RLock()
        self.graph = plan.worker_graph(
            index, error_policy=options.error_policy, error_callback=self._feature_error
        )
        self.errors = 0
        self.events_in = 0
        self.late: list[tuple[Any, ...]] = []
        self.late_count = 0
        self._current: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        self._failure: str | None = None
        self._torn = False
        """An exception left an event or a batch half taken under the lock: see
        :meth:`_maybe_barrier` (set under the lock, before the lock is released)."""
        self._stopping = threading.Event()
        self._stop_requested = False
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._emitters: dict[str, DataSourceEventEmitter] = {}
        self._emitter_sources: dict[str, list[Feature]] = {}
        self._make_emitters = make_emitters
        self._table = list(self.worker.roots)
        self._keys = tuple(f.key for f in self._table)
        self._destinations = self._plan_destinations()
        self._install_callbacks()
        self._groups = {group: _GroupState() for group in self.worker.groups}
        self._inputs_done = not self.worker.sources
        self._merges: dict[int, GroupMerge] = {}
        self._frontiers: dict[int, Watermark] = {}
        senders: dict[int, set[int]] = {}
        for edge in plan.edges:
            if edge.target == index:
                senders.setdefault(plan.group_of(edge.feature), set()).add(edge.source)
        for group, from_workers in senders.items():
            self._merges[group] = GroupMerge(sorted(from_workers))
            self._frontiers[group] = (float("-inf"), -1)
        self._channels = {s: _Channel(s) for s in plan.upstream_workers(index)}
        self._barrier_in = dict.fromkeys(self._channels, self._barrier_done)
        self._by_key = plan.feature_by_key()
        self._dispatch = {f: self.graph.input_callback(f) for f in self.worker.inputs}
        self.rows_out = 0
        self._control_sent = 0
        self._control_last = time.monotonic()
        self._local: OutputCollector | None = None
        self._sink: Sink | None = None
        self._output_path: str | None = None
        if outputs is not None and self.worker.outputs:
            self._open_outputs(outputs)
        try:
            if checkpoint is not None:
                self._start_checkpointing(checkpoint)
            self.inbox = transport.open_inbox(f"worker-{index}") if self._channels else None
        except BaseException:
            if self._sink is not None:
                self._sink.close(ok=False)
            raise

    def _start_checkpointing(self, checkpoint: WorkerCheckpointing) -> None:
        """Restore this worker from its acknowledgement of the resumed checkpoint, and bring
        its output file (worker-output mode) to that checkpoint's state."""
        from featurizer.scaling._worker_state import restore_worker

        if not Path(checkpoint.directory).is_dir():
            raise ScalingError(
                f"worker {self.index}: the checkpoint directory {checkpoint.directory!r} does "
                f"not exist where this worker runs; the workers of a checkpointed run log their "
                f"input and write their segments there: use a path of a filesystem every "
                f"machine of the cluster shares"
            )
        ack = checkpoint.restore.get(self.index)
        output = None if ack is None else load_ack(ack).get("output")
        sink: Any = self._sink
        if sink is not None:
            if output is None:
                sink.start_fresh()
            else:
                sink.rows = output["rows"]
                sink.reconcile(output["id"], output["output_bytes"], output["segment_bytes"])
                self._output_state = dict(output)
        if ack is not None:
            restore_worker(self, load_ack(ack))

    def _open_outputs(self, outputs: WorkerOutputs) -> None:
        sink: Any
        if self.checkpoint is not None:  # rows are published at checkpoints
            from featurizer.checkpoint._sink import make_segmented_sink

            path = outputs.path_for(self.index, self.plugins.sinks())
            directory = Path(self.checkpoint.directory) / "workers" / str(self.index)
            sink = make_segmented_sink(path, directory, outputs.sink_name(self.plugins, self.index))
        else:
            sink = outputs.make_sink(self.index, self.plugins)
        self._sink = sink
        self._output_path = str(outputs.path_for(self.index, self.plugins.sinks()))
        write_row = sink.write_row
        write_text: Any = getattr(sink, "write_text", None)

        def write_combined(grouped: GroupedNamedDataEvent) -> None:
            self.rows_out += 1
            write_row(flatten_grouped(grouped))

        def write_joined(grouped: Any) -> None:  # (feature, (timestamp, text)) per output
            self.rows_out += 1
            write_text(join_json_row(grouped))

        def write_merged(grouped: Any) -> None:  # (feature, (timestamp, columns)) per output
            self.rows_out += 1
            write_row(merge_row(grouped))

        writers = {"json": write_joined, "columns": write_merged}

        def write_event(feature: Feature, event: Event) -> None:
            self.rows_out += 1
            write_row({"feature": feature.name, **event})

        combine = self.options.combine_outputs
        self._local = OutputCollector(
            self.plan,
            on_combined=writers.get(self.row_parts or "", write_combined) if combine else None,
            on_event=None if combine else write_event,
            combine=combine,
            worker=self.index,
        )

    # -- setup -------------------------------------------------------------------------------

    def _plan_destinations(self) -> dict[int, _Destination]:
        plan, worker = self.plan, self.worker
        destinations: dict[int, _Destination] = {}
        groups_to: dict[int, set[int]] = {}
        for feature in worker.outputs:
            groups_to.setdefault(DRIVER, set()).add(plan.group_of(feature))
        for feature, targets in plan.targets(self.index).items():
            for target in targets:
                groups_to.setdefault(target, set()).add(plan.group_of(feature))
        destinations[DRIVER] = _Destination(DRIVER, tuple(sorted(groups_to.get(DRIVER, ()))))
        for target, groups in sorted(groups_to.items()):
            if target != DRIVER:
                destinations[target] = _Destination(target, tuple(sorted(groups)))
        return destinations

    def _install_callbacks(self) -> None:
        targets = self.plan.targets(self.index)
        for position, feature in enumerate(self._table):
            wanted = [DRIVER] if feature in self.worker.outputs else []
            wanted += list(targets.get(feature, ()))
            self.graph.set_callback(feature, self._recorder(position, wanted))

    def _recorder(self, position: int, wanted: list[int]) -> Callable[[Feature, Event], None]:
        destinations = [self._destinations[d] for d in wanted]
        current = self._current
        limit = self.batch_size
        flush = self._flush
        if self.row_parts is not None and DRIVER in wanted:
            return self._encoding_recorder(position, destinations)

        def record(_feature: Feature, event: Event) -> None:
            item = (current[0], position, event)
            for destination in destinations:
                buffer = destination.buffer
                buffer.append(item)
                if len(buffer) >= limit:
                    flush(destination)

        return record

    def _encoding_recorder(
        self, position: int, destinations: list[_Destination]
    ) -> Callable[[Feature, Event], None]:
        """The driver gets the event's part of the rows (:attr:`row_parts`), other workers the
        event."""
        driver = self._destinations[DRIVER]
        others = [d for d in destinations if d is not driver]
        encode = (JsonColumns if self.row_parts == "json" else RowColumns)(self._table[position])
        current = self._current
        limit = self.batch_size
        flush = self._flush

        def record(_feature: Feature, event: Event) -> None:
            key = current[0]
            buffer = driver.buffer
            buffer.append((key, position, encode(event)))
            if len(buffer) >= limit:
                flush(driver)
            if others:
                item = (key, position, event)
                for destination in others:
                    buffer = destination.buffer
                    buffer.append(item)
                    if len(buffer) >= limit:
                        flush(destination)

        return record

    def _feature_error(self, error: Any) -> None:
        self.errors += 1
        self.plugins.on_feature_error(error)

    @property
    def address(self) -> str | None:
        """The inbox address (``None`` when the worker receives nothing)."""
        return self.inbox.address if self.inbox is not None else None

    def connect(self, addresses: Mapping[int, str], driver: str) -> None:
        """Connect outboxes: ``addresses`` of the workers' inboxes, and the driver's."""
        for target, destination in self._destinations.items():
            address = driver if target == DRIVER else addresses.get(target)
            if address is None:
                raise TransportError(
                    f"worker {self.index}: no inbox address for worker {target}, which it ships to"
                )
            where = "driver" if target == DRIVER else f"worker-{target}"
            destination.outbox = self.transport.connect(address, f"worker-{self.index} -> {where}")

    def build_emitters(self) -> None:
        """Build this worker's emitters (before :meth:`start`, so errors come early)."""
        sources = list(self.worker.sources)
        if not sources or self.restored_finished:
            return
        if self._make_emitters is not None:
            built = dict(self._make_emitters(self.plan, self.index))
            for name, (emitter, served) in built.items():
                self._emitters[name] = emitter
                self._emitter_sources[name] = list(served)
        else:
            assignment = assign_emitters(sources, self.plugins.emitters(), self.options.emitter)
            specs = self.plugins.emitters()
            for name, served in assignment.items():
                option_dict = self.options.emitter_option_dict()
                if self.config is not None:
                    option_dict["config"] = self.config
                emitter = self.plugins.make_emitter(name, option_dict)
                if emitter is None:
                    emitter = specs[name].emitter_class.from_options(option_dict)
                self._emitters[name] = emitter
                self._emitter_sources[name] = served
        if self.checkpoint is not None:
            self._open_log(self.checkpoint)
        for name, served in self._emitter_sources.items():
            for source in served:
                self._emitters[name].register_callback(source, self._resumed(source))
                self._emitters[name].register_warmup_callback(
                    source, refuse_warmup(source, "a scaled-out run", "run it without --scaler")
                )

    def _open_log(self, checkpoint: WorkerCheckpointing) -> None:
        """Open this worker's input log when one of its emitters does not replay its input
        (or the run logs in any case); otherwise discard a log an earlier incarnation left
        (see :mod:`featurizer.scaling._worker_log`)."""
        emitters = self._emitters.values()
        logs = checkpoint.log_input is True or not all(e.replays_input for e in emitters)
        self._log = WorkerLog.open(
            checkpoint,
            self.index,
            list(self.worker.sources),
            {key: int(p[0]) for key, p in self._positions.items()},
            logs=logs,
        )

    def _resumed(self, source: Feature) -> Callable[[Event], None]:
        """The ingest callback; a restored worker's first skips what its emitter sends again:
        the ``consumed`` events up to the largest receipt time consumed at the cut, or, for a
        worker that logs its input, where the replay of its log ended (a live source's first
        new event ends the skipping: the time it was down is a gap)."""
        ingest = self._ingests[source.key] = self._ingest(source)
        if source.definition_name == GAPS_DEFINITION:
            return ingest  # gap events are never sent again
        position = self._positions[source.key]

        def lost(event: Event) -> None:
            self._gap(source, float(position[1]), event)

        if self._log is not None:
            return skip_resent_from(ingest, position, lost)
        if source.key not in self._skip:
            return ingest
        consumed, max_receipt = self._skip[source.key]
        return skip_resent(ingest, consumed, max_receipt, lost)

    def _gap(self, source: Feature, last: float, event: Event) -> None:
        """A live source lost what it sent while the run was down: count it, log it, and send
        a gap event to the ``feed_gaps`` source of the same instrument if this worker ingests
        one (as a single-process run does)."""
        self.gaps += 1
        logger.warning(
            "worker %d: data source %r lost data while the run was down: nothing between "
            "receipt time %.6f (last consumed) and %.6f (first received after the restart)",
            self.index,
            source.name,
            last,
            event["receipt_timestamp"],
        )
        send_gap_events(source, self.worker.sources, self._ingests)

    def _ingest(self, source: Feature, *, record: bool = True) -> Callable[[Event], None]:
        group = self.plan.group_of(source)
        state = self._groups[group]
        dispatch = self.graph.input_callback(source)
        lock = self.lock
        limit = self.options.max_events
        source_key = source.key
        hold = self.watermark_delay is not None
        stopping, draining = self._stopping, self._draining
        run = self._run_event
        self._dispatch_keys[id(dispatch)] = source_key
        position = self._positions[source_key]
        track = self.checkpoint is not None
        fault_at = (
            None if not track else fault_count("worker-event", self.index)
        )  # the fault hook, tests only
        # a worker that logs counts and logs only the events it takes: its log is its input
        logged = self._log is not None
        recorder = self._log.recorder(source) if self._log is not None and record else None

        def ingest(event: Event) -> None:
            with lock:
                try:
                    if track:
                        if logged and (
                            stopping.is_set()
                            or draining.is_set()
                            or (limit is not None and self.events_in >= limit)
                        ):
                            return
                        position[0] += 1
                        receipt = event["receipt_timestamp"]
                        if receipt > position[1]:  # noqa: PLR1730 (a call to max() costs more)
                            position[1] = receipt
                        if recorder is not None:
                            recorder[0](event)
                        if fault_at is not None and self.events_in + 1 >= fault_at:
                            self._fault("worker-event")
                    if stopping.is_set() or draining.is_set():
                        return
                    if limit is not None and self.events_in >= limit:
                        return
                    ts = event["timestamp"]
                    now = time.time()
                    state.last_wall = now
                    state.idle = False
                    # the clock learns from late events too: one that ran ahead of a source's
                    # time (the wall clock, before a feed stamped further behind it than the
                    # delay connected) would otherwise keep that source late for good
                    self._clock_offset = ts - now
                    if ts < state.announced:
                        self.late_count += 1
                        self.late.append((group, source_key, event))
                        return
                    self.events_in += 1
                    if hold:
                        self._arrivals += 1
                        heapq.heappush(state.held, (ts, self._arrivals, dispatch, event))
                        return
                    run(state, group, ts, dispatch, event)
                except BaseException:
                    # the event may be counted in its source's position, logged and half
                    # computed: no cut may be taken of this worker any more (it is failing)
                    self._torn = True
                    raise

        return ingest

    def _run_event(
        self,
        state: _GroupState,
        group: int,
        ts: float,
        dispatch: Callable[[Event], None],
        event: Event,
    ) -> None:
        """Key one input event of ``group`` and push it through the graph (under the lock)."""
        state.max_time = max(state.max_time, ts)
        state.sequence += 1
        self._current[0] = (state.max_time, group, state.sequence)
        dispatch(event)
        state.done_time = state.max_time
        state.done_sequence = state.sequence

    def _advance_watermarks(self, now: float) -> None:
        """Live watermarks (under the lock): move each group's watermark with the worker's
        event clock (``watermark_delay``, idleness) and dispatch the held events it passed,
        in event-time order."""
        delay, idle_timeout = self.watermark_delay, self.idle_timeout
        if delay is None and idle_timeout is None:
            return
        offset = self._clock_offset
        if offset is None:
            # no event yet: the event clock is unknown. A replay's first events come at once;
            # a worker whose sources stay silent falls back to the wall clock after a while.
            if now - self._started_wall < min(t for t in (delay, idle_timeout) if t is not None):
                return
            offset = 0.0
        clock = now + offset
        for group, state in self._groups.items():
            if state.done_sequence == END_WATERMARK[1]:
                continue
            mark = state.announced
            if delay is not None:
                mark = max(mark, clock - delay)
            if idle_timeout is not None and now - state.last_wall >= idle_timeout:
                state.idle = True
                mark = max(mark, clock - idle_timeout)
            # announced once the events it passed are dispatched: a batch flushed meanwhile
            # must not promise the keys of the events still being released
            self._release_held(state, group, mark)
            state.announced = mark

    def _release_held(self, state: _GroupState, group: int, bound: float) -> None:
        held = state.held
        while held and held[0][0] <= bound and not self._stopping.is_set():
            ts, _, dispatch, event = heapq.heappop(held)
            self._run_event(state, group, ts, dispatch, event)

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the inbox and supervisor threads, then the emitters."""
        self._started_wall = time.time()
        self._started_cpu = time.process_time()
        if self.inbox is not None:
            self._spawn(self._receive_loop, "inbox")
        self._spawn(self._supervise, "supervisor")
        if self._log is not None:
            self._spawn(self._replay_then_start, "replay")
        else:
            self._start_emitters()

    def _replay_then_start(self) -> None:
        """Replay the input log's tail after the restored cut (the events this worker
        consumed before it died that its checkpoint does not hold), then start the
        emitters: they resume where the replay ended."""
        assert self._log is not None
        consumed = {key: int(p[0]) for key, p in self._positions.items()}
        replay = {s.key: self._ingest(s, record=False) for s in self.worker.sources}
        started = time.perf_counter()
        for source, event in self._log.tail(consumed):
            if self._stopping.is_set():
                return
            replay[source.key](event)
            self.replayed += 1
        self._log.replayed(sum(int(p[0]) for p in self._positions.values()))
        if self.replayed:
            logger.warning(
                "worker %d: replayed %d logged events in %.3f s",
                self.index,
                self.replayed,
                time.perf_counter() - started,
            )
        self._start_emitters()

    def _start_emitters(self) -> None:
        with self._start_lock:
            if self._emitters_closed:
                return
            for emitter in self._emitters.values():
                emitter.start()
            self._emitters_started.set()

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(
            target=self._guard(target), name=f"featurizer-worker-{self.index}-{name}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:
                self._fail(error)

        return run

    def _fail(self, error: BaseException) -> None:
        if self._stop_requested:
            logger.debug("worker %d: %r while stopping", self.index, error)
            return
        with self.lock:
            if self._failure is not None:
                return
            self._failure = format_error(self.index, error)
            logger.error("%s", self._failure)
        self._stopping.set()
        destination = self._destinations[DRIVER]
        if destination.outbox is not None:
            try:
                destination.outbox.send(
                    Batch(sender=self.index, number=destination.number, error=self._failure),
                    timeout=2.0,
                )
            except Exception:
                logger.exception("worker %d could not report its failure", self.index)
        self._finished.set()

    def _receive_loop(self) -> None:
        assert self.inbox is not None
        while not self._stopping.is_set():
            batch = self.inbox.recv(0.05)
            if batch is None:
                continue
            self._handle(batch)
            if all(c.ended for c in self._channels.values()):
                return

    def _handle(self, batch: Batch) -> None:
        channel = self._channels.get(batch.sender)
        if channel is None:
            raise TransportError(
                f"worker {self.index}: batch from unexpected worker {batch.sender}"
            )
        if not self._acquire():
            return
        try:
            if self._barrier_in.get(batch.sender, 0) > self._barrier_done:
                # aligned: the sender passed a barrier this worker has not taken yet
                self._deferred.setdefault(batch.sender, collections.deque()).append(batch)
                return
            self._process(batch, channel)
            if batch.barrier:
                self._maybe_barrier()
        except BaseException:
            self._torn = True  # the batch may be half merged and dispatched
            raise
        finally:
            self.lock.release()

    def _process(self, batch: Batch, channel: _Channel) -> None:
        """Take one batch of an upstream worker (under the lock)."""
        channel.accept(batch, self._by_key, f"worker {self.index}")
        features = channel.features
        touched = set()
        for record in batch.records:
            group = record[0][1]
            self._merges[group].push(batch.sender, (record[0], features[record[1]], record[2]))
            touched.add(group)
        for group, mark in batch.watermarks.items():
            merge = self._merges.get(group)
            if merge is not None and batch.sender in merge.marks:
                merge.advance(batch.sender, tuple(mark))  # type: ignore[arg-type]
                touched.add(group)
        if batch.end:
            for group, merge in self._merges.items():
                if batch.sender in merge.marks:
                    merge.advance(batch.sender, END_WATERMARK)
                    touched.add(group)
        current = self._current
        dispatch = self._dispatch
        frontiers = self._frontiers
        for group in sorted(touched):
            merge = self._merges[group]
            for key, feature, event in merge.release():
                if self._stopping.is_set():
                    return
                current[0] = key
                dispatch[feature](event)
                frontiers[group] = (key[0], key[2])
            frontiers[group] = merge.frontier()
        if batch.barrier:
            self._barrier_in[batch.sender] = batch.barrier

    # -- checkpoint barriers (see featurizer.scaling._barriers) -------------------------------

    def request_barrier(self, checkpoint_id: int) -> None:
        """The driver asks for barrier ``checkpoint_id``; returns at once (the worker takes it
        between two events, once it arrived from every upstream worker)."""
        self._barrier_requested = max(self._barrier_requested, checkpoint_id)

    def commit(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` committed: publish this worker's output segment of it
        (worker-output mode; nothing otherwise)."""
        output_bytes = self._cuts.pop(checkpoint_id, None)
        sink: Any = self._sink
        if output_bytes is not None and sink is not None:
            sink.publish(checkpoint_id, output_bytes)
        # the worker's own thread prunes its log (the caller must not wait for the worker's
        # lock: the worker may hold it while it waits for the caller to read its batches)
        self._log_committed = max(self._log_committed, checkpoint_id)

    def _fault(self, point: str) -> None:
        assert self.checkpoint is not None
        worker_fault(point, self.index, self.checkpoint.directory, own_process=self.own_process)

    def _maybe_barrier(self) -> None:
        """Take every barrier that was asked for and arrived on every channel (under the
        lock), then go on with the batches that waited for it.

        A worker whose event or batch raised under the lock (:attr:`_torn`) takes none (nor
        does it end its channels): the exception releases the lock before the worker is known
        to have failed (an emitter records its failure after its callback raised, the failure
        is reported after its thread died), and a barrier taken meanwhile would acknowledge a
        cut that counts an event in its source's position (and in the input log) that the
        graph never computed, or computed in part. A restart from that checkpoint would skip
        the event for good: the run would end without error, its output short of that event's
        rows (all of them, when the event was one every output needs).
        """
        if self._torn:
            logger.debug("worker %d: an event or a batch failed: no barrier is taken", self.index)
            return
        while self.checkpoint is not None:
            number = self._barrier_done + 1
            if self._barrier_requested < number:
                return
            for sender, channel in self._channels.items():
                if self._barrier_in[sender] < number and not channel.ended:
                    return
            self._take_barrier(number)
            self._barrier_done = number
            for sender, waiting in self._deferred.items():
                channel = self._channels[sender]
                while waiting and self._barrier_in[sender] <= self._barrier_done:
                    self._process(waiting.popleft(), channel)

    def _take_barrier(self, number: int) -> None:
        from featurizer.scaling._worker_state import snapshot_worker

        if fault_count("worker-barrier", self.index) is not None:
            self._fault("worker-barrier")
        driver = self._destinations[DRIVER]
        output = None
        if self._local is not None:
            self._flush(driver)  # the local collector takes what precedes the cut
            output = self._cut_output(number)
        if self._log is not None:
            self._log.sync()  # the cut refers only to logged input
        ack = pickle.dumps(
            {
                "finished": False,
                "state": snapshot_worker(self),
                "sources": self._source_positions(),
                "metrics": self.metrics(),
                "output": output,
                "input_logged": self._log is not None,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        for destination in self._destinations.values():
            self._flush(destination, barrier=number, snapshot=ack if destination is driver else b"")
        if self._log is not None:
            self._log.barrier(number, {key: int(p[0]) for key, p in self._positions.items()})

    def _cut_output(self, number: int) -> dict[str, Any]:
        """Close this worker's pending output rows as the segment of checkpoint ``number``."""
        sink: Any = self._sink
        before = self._output_state or {"output_bytes": 0}
        segment_bytes = sink.cut(number)
        output_bytes = int(before["output_bytes"]) + segment_bytes
        self._cuts[number] = output_bytes
        self._output_state = {
            "id": number,
            "path": self._output_path,
            "output_bytes": output_bytes,
            "segment_bytes": segment_bytes,
            "rows": sink.rows,
        }
        return dict(self._output_state)

    def _source_positions(self) -> dict[str, list[Any]]:
        names = {s.key: s.name for s in self.worker.sources}
        return {
            key: [names[key], int(p[0]), None if p[1] == -math.inf else float(p[1])]
            for key, p in self._positions.items()
        }

    def finished_ack(self) -> bytes:
        """The acknowledgement of a worker that ended (sent with its last batch to the
        driver): every later checkpoint restores it as ended."""
        return self._final_ack

    def _supervise(self) -> None:
        interval = self.flush_interval
        while not self._stopping.wait(interval):
            self._check_emitters()
            if not self._acquire():
                return
            try:
                now = time.time()
                self._advance_watermarks(now)
                if not self._inputs_done and (
                    self._draining.is_set() or self._local_inputs_finished()
                ):
                    self._inputs_done = True
                    for group, state in self._groups.items():
                        self._release_held(state, group, float("inf"))
                        state.done_time, state.done_sequence = END_WATERMARK
                self._maybe_barrier()
                if self._log is not None and self._log_committed > self._log_pruned:
                    self._log_pruned = self._log_committed
                    self._log.committed(self._log_pruned)
                for destination in self._destinations.values():
                    self._flush(destination, heartbeat=True)
                if (
                    self._inputs_done
                    and not self._torn
                    and all(c.ended for c in self._channels.values())
                ):
                    self._finish()
                    return
            except BaseException:
                self._torn = True  # held events may be half dispatched
                raise
            finally:
                self.lock.release()

    def _check_emitters(self) -> None:
        for name, emitter in self._emitters.items():
            failure = emitter.failure()
            if failure is not None:
                raise (
                    failure
                    if isinstance(failure, FeaturizerError)
                    else ScalingError(
                        f"emitter {name!r} failed: {type(failure).__name__}: {failure}"
                    )
                ) from failure

    def _acquire(self) -> bool:
        """Take the lock, unless the worker stops first (a feature stuck under the lock must
        not keep the worker's other threads from ending)."""
        while not self.lock.acquire(timeout=0.1):
            if self._stopping.is_set():
                return False
        return True

    def drain(self) -> None:
        """Stop taking input and finish cleanly (a stop by duration, Ctrl-C or SIGTERM): events
        the emitters deliver from now on are ignored, the events held for the watermark are
        dispatched in event-time order, and the worker ends its channels as at the end of its
        data once its upstream workers ended theirs. Returns at once; the emitters are asked
        to stop on a helper thread (a ``stop()`` that blocks cannot hold the drain back)."""
        self._draining.set()
        if self._emitters:
            threading.Thread(
                target=self._stop_emitters,
                name=f"featurizer-worker-{self.index}-drain",
                daemon=True,
            ).start()

    def _stop_emitters(self) -> None:
        with self._start_lock:
            self._emitters_closed = True  # a replay still running starts none of them
        for name, emitter in self._emitters.items():
            try:
                emitter.stop()
            except Exception:
                logger.exception("worker %d: emitter %r failed to stop cleanly", self.index, name)

    def _local_inputs_finished(self) -> bool:
        if self.options.max_events is not None and self.events_in >= self.options.max_events:
            return True
        if not self._emitters_started.is_set():
            return False  # still replaying the input log
        finished = all(emitter.wait(0) for emitter in self._emitters.values())
        if finished:
            self._check_emitters()  # an emitter that ended by failing is not the end of data
        return finished

    def _watermark(self, group: int) -> Watermark:
        state = self._groups.get(group)
        if state is not None:
            return (max(state.done_time, state.announced), state.done_sequence)
        return self._frontiers.get(group, (float("-inf"), -1))

    def _flush(
        self,
        destination: _Destination,
        *,
        heartbeat: bool = False,
        end: bool = False,
        barrier: int = 0,
        snapshot: bytes = b"",
    ) -> None:
        marks = {g: self._watermark(g) for g in destination.groups}
        idle = not destination.buffer and marks == destination.sent_marks
        if (
            heartbeat
            and idle
            and not (destination.index == DRIVER and self.late)
            and not (
                destination.index == DRIVER
                and time.monotonic() - destination.last_sent >= self.heartbeat_interval
            )
        ):
            return
        if destination.outbox is None:
            return
        destination.last_sent = time.monotonic()
        if destination.index == DRIVER and self._local is not None:
            self._flush_local(destination, marks, end, barrier, snapshot)
            return
        records = destination.buffer
        destination.buffer = []
        destination.total += len(records)
        late: list[tuple[Any, ...]] = []
        if destination.index == DRIVER and self.late:
            late, self.late = self.late, []
        batch = Batch(
            sender=self.index,
            number=destination.number,
            keys=self._keys,
            records=records,
            watermarks=marks,
            end=end,
            total=destination.total,
            late=late,
            metrics=self.metrics() if end else {},
            barrier=barrier,
            snapshot=snapshot or (self._final_ack if end and destination.index == DRIVER else b""),
            events_in=self.events_in if destination.index == DRIVER else 0,
        )
        destination.number += 1
        destination.sent_marks = marks
        outbox = destination.outbox
        while True:
            try:
                outbox.send(batch, timeout=_SEND_TIMEOUT)
                return
            except TransportError:
                if self._stopping.is_set():
                    raise
                # the receiver is slow: keep waiting (backpressure), unless stopping; the
                # driver still hears from this worker meanwhile
                if destination.index != DRIVER:
                    self._flush(self._destinations[DRIVER], heartbeat=True)

    def _flush_local(
        self,
        destination: _Destination,
        marks: dict[int, Watermark],
        end: bool,
        barrier: int = 0,
        snapshot: bytes = b"",
    ) -> None:
        """Worker-output mode: hand the batch to this worker's own collector, which writes the
        rows; the driver gets only control batches without records: a heartbeat every
        ``heartbeat_interval`` and the last one, carrying the metrics."""
        assert self._local is not None and destination.outbox is not None
        records = destination.buffer
        destination.buffer = []
        destination.total += len(records)
        late, self.late = self.late, []
        self._local.handle(
            Batch(
                sender=self.index,
                number=destination.number,
                keys=self._keys,
                records=records,
                watermarks=marks,
                end=end,
                total=destination.total,
                late=late,
            )
        )
        destination.number += 1
        destination.sent_marks = marks
        if end:
            self._ended_ack()
        now = time.monotonic()
        if not end and not barrier and now - self._control_last < self.heartbeat_interval:
            return
        batch = Batch(
            sender=self.index,
            number=self._control_sent,
            keys=(),
            records=[],
            watermarks={},
            end=end,
            total=0,
            metrics=self.metrics() if end else {},
            barrier=barrier,
            snapshot=snapshot or (self._final_ack if end else b""),
            events_in=self.events_in,
        )
        while True:
            try:
                destination.outbox.send(batch, timeout=_SEND_TIMEOUT)
                self._control_sent += 1
                self._control_last = now
                return
            except TransportError:
                if self._stopping.is_set():
                    raise
                if not end and not barrier:
                    return  # a heartbeat: the next one will do

    def _ended_ack(self) -> None:
        """The acknowledgement this worker sends with its last batch, once its last rows are
        written: every later checkpoint restores it as ended. What it wrote after its last
        barrier (worker-output mode) is closed as the next checkpoint's segment."""
        if self.checkpoint is None or self.restored_finished:
            return
        output = self._cut_output(self._barrier_done + 1) if self._local is not None else None
        if self._log is not None:
            self._log.sync()
        self._final_ack = pickle.dumps(
            {
                "finished": True,
                "state": b"",
                "sources": self._source_positions(),
                "metrics": self.metrics(),
                "output": output,
                "input_logged": self._log is not None,
            },
            protocol=pickle.HIGHEST_PROTOCOL,
        )

    def _finish(self) -> None:
        if self._local is None:
            self._ended_ack()  # else once the local collector released its last rows
        for state in self._groups.values():
            state.done_time, state.done_sequence = END_WATERMARK
        for group in self._frontiers:
            self._frontiers[group] = END_WATERMARK
        for destination in self._destinations.values():
            self._flush(destination, end=True)
        self._finished.set()

    def _close_log(self) -> None:
        """Close the input log (every logged event written) once no event is being taken."""
        log = self._log
        if log is None:
            return
        if not self.lock.acquire(timeout=_STOP_WAIT):
            logger.error("worker %d is stuck in a feature: its input log stays open", self.index)
            return
        try:
            self._log = None
            log.close()
        finally:
            self.lock.release()

    def metrics(self) -> dict[str, Any]:
        """Counters: events in, records and batches sent, late events, feature errors, and
        ``process_cpu_seconds``: CPU time of this worker's process since :meth:`start` (the
        worker's own where it has a process of its own, e.g. a Ray actor; shared by every
        worker of the local scaler)."""
        started = self._started_cpu
        return {
            "process_cpu_seconds": 0.0 if started is None else time.process_time() - started,
            "worker": self.index,
            "events_in": self.events_in,
            "records_out": sum(d.total for d in self._destinations.values()),
            "batches_out": sum(d.number for d in self._destinations.values()),
            "late_events": self.late_count,
            "errors": self.errors,
            "gaps": self.gaps,
            "replayed": self.replayed,
            **(
                {"rows_out": self.rows_out, "output": self._output_path}
                if self._local is not None
                else {}
            ),
        }

    def sent_stats(self) -> dict[int, dict[str, int | None]]:
        """What this worker sent on each of its channels, by destination (:data:`DRIVER` for
        the driver): ``batches``, ``records`` and ``bytes`` (``None`` when the transport does
        not serialise). Counted per batch, read from any thread, valid after :meth:`stop`.
        """
        stats: dict[int, dict[str, int | None]] = {
            target: {
                "batches": destination.number,
                "records": destination.total,
                "bytes": destination.bytes_sent(),
            }
            for target, destination in self._destinations.items()
        }
        if self._local is not None:  # only control batches, without records, go to the driver
            stats[DRIVER].update(batches=self._control_sent, records=0)
        return stats

    def received_stats(self) -> dict[int, dict[str, int | None]]:
        """What this worker received and accepted, by sending worker: ``batches``, ``records``
        and ``bytes`` (``None`` when the transport does not serialise)."""
        received = self.inbox.bytes_received() if self.inbox is not None else None
        return {
            sender: {
                "batches": channel.expected,
                "records": channel.received,
                "bytes": None if received is None else received.get(sender, 0),
            }
            for sender, channel in self._channels.items()
        }

    def live_stats(
        self, received: dict[int, dict[str, int | None]] | None = None
    ) -> dict[str, Any]:
        """:meth:`metrics` plus ``finished``, ``received`` (:meth:`received_stats`, read first,
        so that nothing counted as received is missing from the senders' counts read after it)
        and ``sent`` (:meth:`sent_stats`): plain data, for the driver's live metrics.

        :param received: this worker's :meth:`received_stats` read earlier (a caller reading
            every worker reads all of them before any sender's counts).
        """
        if received is None:
            received = self.received_stats()
        return {
            **self.metrics(),
            "finished": self.finished(),
            "received": received,
            "sent": self.sent_stats(),
        }

    def finished(self) -> bool:
        """Whether the worker sent its last batches (or failed)."""
        return self._finished.is_set()

    def failure(self) -> str | None:
        """The worker's formatted error, if it failed."""
        return self._failure

    def stop(self, timeout: float = 5.0, *, ok: bool = True) -> dict[str, Any]:
        """Stop emitters and threads, close sockets; safe to call twice.

        In worker-output mode, publish this worker's file when ``ok`` (the run ended
        cleanly, was interrupted or reached its duration) and the worker did not fail;
        otherwise delete it.

        :param timeout: seconds to wait for the worker's threads, in all.
        :param ok: whether the run as a whole succeeded.
        :returns: the worker's metrics.
        """
        self._stop_requested = True
        self._stopping.set()
        stopper = threading.Thread(
            target=self._stop_emitters, name=f"featurizer-worker-{self.index}-stop", daemon=True
        )
        stopper.start()
        stopper.join(_STOP_WAIT)
        if stopper.is_alive():
            logger.warning(
                "worker %d: an emitter did not stop within %.0f s; going on without it",
                self.index,
                _STOP_WAIT,
            )
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        for destination in self._destinations.values():
            if destination.outbox is not None:
                destination.closed_bytes = destination.outbox.bytes_sent()
                destination.outbox.close(linger=1.0)
                destination.outbox = None
        if self.inbox is not None:
            self.inbox.close()
        self._close_log()
        sink, self._sink = self._sink, None
        if sink is not None:
            if self.lock.acquire(timeout=_STOP_WAIT):
                try:
                    sink.close(ok=ok and self._failure is None)
                finally:
                    self.lock.release()
            else:  # a feature never returned: what the file holds is not the run's output
                logger.error("worker %d is stuck in a feature: its output is discarded", self.index)
                sink.close(ok=False)
        return self.metrics()
