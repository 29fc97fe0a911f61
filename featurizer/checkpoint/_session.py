"""A checkpointed run: consistent cuts, the input log, recovery and exactly-once publishing.

The runner (:func:`featurizer.run` with ``checkpoint=``) hands each input's compiled dispatch
to :meth:`Checkpointer.around`, and each emitter callback to :meth:`Checkpointer.resume_filter`.
Every input event is then, under the runner's dispatch lock: appended to the input log (if
the run keeps one, see below), computed by the graph (its output rows go to the pending
segment), and counted in its source's position. Between two events, when a checkpoint is due,
the graph state, every source's position, the combined output's held vector and the output
length are taken at once: that is the cut. Nothing else runs during it, so the cut is
consistent.

Resuming: the graph is restored from the newest checkpoint, the output is reconciled with it,
the log's events after the cut are replayed through the graph (their rows go to the pending
segment again), and the emitters start. A source whose emitter replays its data from the start
(synthetic, offline) has its already-consumed events skipped: the first ``consumed`` events
whose ``receipt_timestamp`` is at most the largest consumed one. A live source's first new
event ends the skipping at once; the time it was down is a gap (logged, counted in
:attr:`CheckpointMetrics.gaps`).

The input log is kept only when it is needed. When every emitter of the run replays its input
itself (:attr:`~featurizer.DataSourceEventEmitter.replays_input`: synthetic, offline), the
events after the cut are simply the emitters' events after that skip, so the run logs nothing
and its hot path calls no recorder (Kappa: the emitter's storage is the log). A run with one
live source logs every source, so that the log's tail keeps the original interleaving.
``CheckpointSettings.log_input=True`` logs in any case.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer._graph import FeatureStreamGraph
from featurizer.checkpoint._errors import CheckpointMismatchError, CorruptCheckpointError
from featurizer.checkpoint._faults import fault_armed, fault_point
from featurizer.checkpoint._format import (
    CheckpointInfo,
    SourcePosition,
    checkpoint_paths,
    read_checkpoint,
    read_info,
    write_checkpoint,
)
from featurizer.checkpoint._lock import DirectoryLock
from featurizer.checkpoint._log import InputLog, discard_log, start_log_at
from featurizer.checkpoint._resend import GAPS_DEFINITION, send_gap_events, skip_resent
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.checkpoint._sink import SegmentedSink
from featurizer.checkpoint._state import check_snapshotable, restore_graph, snapshot_graph

__all__ = ["GAPS_DEFINITION", "CheckpointMetrics", "Checkpointer", "run_fingerprint"]

logger = logging.getLogger(__name__)

_STARTED = "started"
"""A file in the checkpoint directory once a run started there: a process that finds it (or
a checkpoint, or a log) is a restart, even before the first checkpoint of a run with no log."""


@attrs.define(kw_only=True)
class CheckpointMetrics:
    """What checkpointing did in this process.

    :param checkpoints: checkpoints committed.
    :param last_duration_seconds: time from the cut to the commit of the last one.
    :param last_state_bytes: size of its state.
    :param last_committed_at: Unix time of its commit (``None`` before the first).
    :param restarts: times this run was restarted in its directory (every process that found
        an earlier process's run there, whether or not that one reached a checkpoint).
    :param replayed_events: events replayed from the log when this process resumed.
    :param recovery_seconds: time to restore and replay them; in a scaled run, from detecting
        the last worker failure to the replaced workers running.
    :param gaps: live sources that lost data while the run was down.
    :param last_failure_at: scaled runs: Unix time the driver detected the last worker
        failure that it restarted the workers for (``None``: none).
    :param last_failure: that failure's first line.
    """

    checkpoints: int = 0
    last_duration_seconds: float = 0.0
    last_state_bytes: int = 0
    last_committed_at: float | None = None
    restarts: int = 0
    replayed_events: int = 0
    recovery_seconds: float = 0.0
    gaps: int = 0
    last_failure_at: float | None = None
    last_failure: str = ""

    def committed(self, info: CheckpointInfo, path: Path, seconds: float) -> None:
        """Count a committed checkpoint (written to ``path``, ``seconds`` after its cut) and
        log it."""
        self.checkpoints += 1
        self.last_duration_seconds = seconds
        self.last_committed_at = time.time()
        self.last_state_bytes = path.stat().st_size
        logger.info(
            "checkpoint %d: %d events in, %d rows, %.1f ms",
            info.id,
            info.events_in,
            info.rows,
            seconds * 1000,
        )


def run_fingerprint(
    graph: FeatureStreamGraph, options: Mapping[str, Any], output: str
) -> dict[str, Any]:
    """What a checkpoint may be resumed into: the graph's nodes by key, and the run options
    that change the output (emitter, seed, output shape, error policy) and the output file."""
    return {
        "features": {f.key: f.name for f in graph.nodes() if not graph.is_input(f)},
        "sources": {f.key: f.name for f in graph.get_ins()},
        "outputs": [f.key for f in graph.get_outs()],
        "options": dict(options),
        "output": output,
    }


def _difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for field in ("features", "sources"):
        added = [f"{new[field][k]!r}" for k in new[field] if k not in old[field]]
        removed = [f"{old[field][k]!r}" for k in old[field] if k not in new[field]]
        if added:
            parts.append(f"{field} added: {', '.join(added)}")
        if removed:
            parts.append(f"{field} removed: {', '.join(removed)}")
    if not parts and old["outputs"] != new["outputs"]:
        parts.append("the outputs are in another order")
    for name in sorted(set(old["options"]) | set(new["options"])):
        if old["options"].get(name) != new["options"].get(name):
            parts.append(
                f"option {name} was {old['options'].get(name)!r}, now {new['options'].get(name)!r}"
            )
    if old["output"] != new["output"]:
        parts.append(f"output was {old['output']!r}, now {new['output']!r}")
    if old.get("scaled") != new.get("scaled"):
        parts.append(
            f"it was {_scaled(old.get('scaled'))}, this one is {_scaled(new.get('scaled'))}"
        )
    return "; ".join(parts)


def _scaled(scaled: Mapping[str, Any] | None) -> str:
    if not scaled:
        return "a single-process run"
    ordering = [
        f"{name.replace('_', ' ')} {scaled[name]:g} s"
        for name in ("watermark_delay", "idle_timeout")
        if scaled.get(name) is not None
    ]
    return (
        f"a scaled run ({scaled.get('workers')} workers, strategy {scaled.get('strategy')}, "
        f"outputs {scaled.get('outputs')}, plan {str(scaled.get('plan'))[:12]}, "
        f"{', '.join(ordering) or 'exact event-time order'})"
    )


def _count_restart(directory: Path) -> int:
    """Add one to the directory's restart counter (``restarts``, replaced atomically)."""
    path = directory / "restarts"
    try:
        count = int(path.read_text(encoding="ascii")) + 1
    except (OSError, ValueError):
        count = 1
    tmp = directory / ".restarts.tmp"
    tmp.write_text(str(count), encoding="ascii")
    os.replace(tmp, path)
    return count


def _newest_readable(paths: Sequence[Path]) -> tuple[CheckpointInfo, dict[str, Any]]:
    """The newest checkpoint that reads back intact; a damaged newer one is skipped with a
    warning (the older cut is consistent too: its output is a prefix, the log holds its tail).

    :raises CorruptCheckpointError: (the newest one's) if none is intact.
    """
    first_error: CorruptCheckpointError | None = None
    for path in reversed(paths):
        try:
            return read_checkpoint(path)
        except CorruptCheckpointError as error:
            logger.error("skipping a damaged checkpoint: %s", error)
            first_error = first_error or error
    assert first_error is not None
    raise first_error


class Checkpointer:
    """Checkpoints one single-process run (see the module docstring).

    :param settings: directory and interval.
    :param sink: the segmented output sink of the run.
    :param options: the run options that change the output (part of the fingerprint).
    """

    def __init__(
        self,
        settings: CheckpointSettings,
        sink: SegmentedSink,
        options: Mapping[str, Any],
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = CheckpointMetrics()
        self._options = dict(options)
        self._directory = settings.directory
        self._graph: FeatureStreamGraph | None = None
        self._set_count: Callable[[int], None] = lambda n: None
        self._log: InputLog | None = None
        self._fingerprint: dict[str, Any] = {}
        self._positions: dict[str, list[Any]] = {}
        self._names: dict[str, str] = {}
        self._resume: dict[str, SourcePosition] = {}
        self._next_id = 1
        self._output_bytes = 0
        self._due = [False]
        self._left = [math.inf]
        self._timer_stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._restored: CheckpointInfo | None = None
        self._callbacks: dict[str, Callable[[Event], None]] = {}
        self._lock = DirectoryLock(settings.directory)
        self._root_base = 0
        self._recorders: dict[str, list[Callable[[Event], None]]] = {}
        self._sources_by_key: dict[str, Feature] = {}
        self._rotated = False
        self.logs_input = True

    # set-up -------------------------------------------------------------------------------

    def start(
        self,
        graph: FeatureStreamGraph,
        set_count: Callable[[int], None],
        *,
        replayable: bool = False,
    ) -> None:
        """Check the graph can be snapshotted, restore the newest checkpoint, open the log
        (or discard it, for a run that keeps none).

        :param graph: the run's graph, built, callbacks set.
        :param set_count: sets the run's input counter (``max_events``) when resuming: to the
            events the graph had consumed (events held by the runner's tie order are not).
        :param replayable: every emitter of the run replays its input itself: the run keeps
            no input log (unless ``settings.log_input`` is ``True``); sets :attr:`logs_input`.
        :raises SnapshotError: naming a feature that cannot be snapshotted.
        :raises CheckpointMismatchError: if the directory's checkpoint is of another run.
        """
        self._graph = graph
        self._set_count = set_count
        self.logs_input = self.settings.log_input is True or not replayable
        check_snapshotable(graph)
        self._lock.acquire()
        self._fingerprint = run_fingerprint(graph, self._options, str(self.sink.path))
        sources = graph.get_ins()
        self._names = {s.key: s.name for s in sources}
        self._sources_by_key = {s.key: s for s in sources}
        self._positions = {s.key: [0, -math.inf] for s in sources}
        if self.settings.fresh:
            for name in ("checkpoints", "log", "segments"):
                shutil.rmtree(self._directory / name, ignore_errors=True)
            (self._directory / "restarts").unlink(missing_ok=True)
            (self._directory / _STARTED).unlink(missing_ok=True)
        self._directory.mkdir(parents=True, exist_ok=True)
        paths = checkpoint_paths(self._directory)
        log = self._directory / "log"
        started = self._directory / _STARTED
        if paths or log.is_dir() or started.exists():
            self.metrics.restarts = _count_restart(self._directory)
        started.touch()
        if paths:
            self._restore(graph, _newest_readable(paths))
        else:
            self.sink.start_fresh()
        if not self.logs_input:
            discard_log(log)  # what it holds, the emitters replay: it would only go stale
            return
        if not log.is_dir() and self._events_in():
            start_log_at(log, {key: int(p[0]) for key, p in self._positions.items()})
        self._log = InputLog(log, sources, self.settings.sync_interval)
        self._log.open_writer()

    def _restore(
        self, graph: FeatureStreamGraph, checkpoint: tuple[CheckpointInfo, dict[str, Any]]
    ) -> None:
        info, state = checkpoint
        if info.fingerprint != self._fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint directory {str(self._directory)!r} holds a checkpoint of another "
                f"run ({_difference(info.fingerprint, self._fingerprint)}); resume it with the "
                f"config and options it was taken with, or start over with --fresh (or use "
                f"another --checkpoint directory)"
            )
        restore_graph(graph, state["graph"])
        self.sink.rows = info.rows
        self.sink.reconcile(info.id, info.output_bytes, info.segment_bytes)
        self._set_count(info.events_in)
        for key, position in info.sources.items():
            self._positions[key] = [
                position.consumed,
                -math.inf if position.max_receipt is None else position.max_receipt,
            ]
        self._next_id = info.id + 1
        self._output_bytes = info.output_bytes
        self._restored = info
        logger.warning(
            "resuming from checkpoint %d of %s (%d events in, %d rows published)",
            info.id,
            self._directory,
            info.events_in,
            info.rows,
        )

    # the hot path ---------------------------------------------------------------------------

    def around(self, source: Feature, dispatch: Callable[[Event], None]) -> Callable[[Event], None]:
        """The dispatch of one input with logging, its position and checkpoint triggers.

        Checkpoints every N events count down ``left``; timed ones wait for ``due`` (set by
        the timer thread). The fault hook's per-event points get a variant of their own, so
        the hot path without them pays nothing for them; a run that keeps no input log gets
        variants that call no recorder.
        """
        if self._log is None:
            return self._around_unlogged(source, dispatch)
        recorder = self._recorders[source.key] = [self._log.recorder(source)]
        position = self._positions[source.key]
        due = self._due
        left = self._left
        checkpoint = self.checkpoint
        if fault_armed("dispatch") or fault_armed("event"):
            mid_dispatch = fault_armed("dispatch")

            def faulty(event: Event) -> None:
                recorder[0](event)
                if mid_dispatch:
                    fault_point("dispatch")
                dispatch(event)
                position[0] += 1
                receipt = event["receipt_timestamp"]
                if receipt > position[1]:  # noqa: PLR1730 (a call to max() costs more)
                    position[1] = receipt
                left[0] -= 1
                if due[0] or left[0] <= 0:
                    checkpoint()
                if not mid_dispatch:
                    fault_point("event")

            return faulty
        if self.settings.every_events is None:

            def timed(event: Event) -> None:
                recorder[0](event)
                dispatch(event)
                position[0] += 1
                receipt = event["receipt_timestamp"]
                if receipt > position[1]:  # noqa: PLR1730
                    position[1] = receipt
                if due[0]:
                    checkpoint()

            return timed

        def counted(event: Event) -> None:
            recorder[0](event)
            dispatch(event)
            position[0] += 1
            receipt = event["receipt_timestamp"]
            if receipt > position[1]:  # noqa: PLR1730
                position[1] = receipt
            left[0] -= 1
            if left[0] <= 0:
                checkpoint()

        return counted

    def _around_unlogged(
        self, source: Feature, dispatch: Callable[[Event], None]
    ) -> Callable[[Event], None]:
        """:meth:`around` for a run that keeps no input log: the same, without the recorder."""
        position = self._positions[source.key]
        due = self._due
        left = self._left
        checkpoint = self.checkpoint
        if fault_armed("dispatch") or fault_armed("event"):
            mid_dispatch = fault_armed("dispatch")

            def faulty(event: Event) -> None:
                if mid_dispatch:
                    fault_point("dispatch")
                dispatch(event)
                position[0] += 1
                receipt = event["receipt_timestamp"]
                if receipt > position[1]:  # noqa: PLR1730
                    position[1] = receipt
                left[0] -= 1
                if due[0] or left[0] <= 0:
                    checkpoint()
                if not mid_dispatch:
                    fault_point("event")

            return faulty
        if self.settings.every_events is None:

            def timed(event: Event) -> None:
                dispatch(event)
                position[0] += 1
                receipt = event["receipt_timestamp"]
                if receipt > position[1]:  # noqa: PLR1730
                    position[1] = receipt
                if due[0]:
                    checkpoint()

            return timed

        def counted(event: Event) -> None:
            dispatch(event)
            position[0] += 1
            receipt = event["receipt_timestamp"]
            if receipt > position[1]:  # noqa: PLR1730
                position[1] = receipt
            left[0] -= 1
            if left[0] <= 0:
                checkpoint()

        return counted

    def _events_in(self) -> int:
        """Input events the graph consumed (all sources)."""
        return sum(int(position[0]) for position in self._positions.values())

    def resume_filter(
        self, source: Feature, callback: Callable[[Event], None]
    ) -> Callable[[Event], None]:
        """Skip what a restarted emitter sends again; note a gap where a live one lost data."""
        self._callbacks[source.key] = callback
        consumed, max_receipt = self._positions[source.key]
        if consumed == 0 or source.definition_name == GAPS_DEFINITION:
            return callback
        return skip_resent(
            callback, consumed, max_receipt, lambda event: self._gap(source, max_receipt, event)
        )

    def _gap(self, source: Feature, last: float, event: Event) -> None:
        """A live source lost what it sent while the run was down: count it, log it, and
        send a gap event to the ``feed_gaps`` source of the same instrument if the graph
        reads one (as the cryptofeed emitter does for a dropped connection)."""
        self.metrics.gaps += 1
        logger.warning(
            "data source %r lost data while the run was down: nothing between receipt time "
            "%.6f (last consumed) and %.6f (first received after the restart)",
            source.name,
            last,
            event["receipt_timestamp"],
        )
        assert self._graph is not None
        send_gap_events(source, self._graph.get_ins(), self._callbacks)

    # recovery ------------------------------------------------------------------------------

    def recover(self, dispatches: Mapping[Feature, Callable[[Event], None]]) -> int:
        """Replay the log's events after the restored cut through the graph (not logging them
        again); returns how many. Call after :meth:`start`, before the emitters start. A run
        that keeps no log replays nothing here: its emitters send those events again."""
        started = time.perf_counter()
        consumed = {key: int(position[0]) for key, position in self._positions.items()}
        by_key = {source.key: fn for source, fn in dispatches.items()}
        targets: dict[int, tuple[Callable[[Event], None], list[Any]]] = {}
        replayed = 0
        armed = fault_armed("recovery")
        tail = () if self._log is None else self._log.tail(consumed)
        for source, event in tail:
            target = targets.get(id(source))
            if target is None:
                target = targets[id(source)] = (by_key[source.key], self._positions[source.key])
            dispatch, position = target
            dispatch(event)
            position[0] += 1
            receipt = event["receipt_timestamp"]
            if receipt > position[1]:  # noqa: PLR1730
                position[1] = receipt
            replayed += 1
            if armed:
                fault_point("recovery")
        self._set_count(self._events_in())
        self._root_base = self._events_in()
        self.metrics.replayed_events = replayed
        self.metrics.recovery_seconds = time.perf_counter() - started
        if self._restored is not None or replayed:
            logger.warning(
                "replayed %d logged events in %.3f s", replayed, self.metrics.recovery_seconds
            )
        self._schedule()
        return replayed

    # checkpoints ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self.settings.every_events is not None:
            self._left[0] = self.settings.every_events
            return
        interval = self.settings.every_seconds
        if interval is None or self._timer is not None:
            return

        def tick() -> None:
            while not self._timer_stop.wait(interval):
                self._due[0] = True

        self._timer = threading.Thread(target=tick, name="featurizer-checkpoint-timer", daemon=True)
        self._timer.start()

    def checkpoint(self, *, final: bool = False) -> CheckpointInfo:
        """Take a checkpoint now (between two events: call it from the dispatching thread).

        :param final: mark it as the checkpoint of a run that ended cleanly.
        """
        assert self._graph is not None
        started = time.perf_counter()
        self._due[0] = False
        if self.settings.every_events is not None:
            self._left[0] = self.settings.every_events
        state = {"graph": snapshot_graph(self._graph)}
        checkpoint_id = self._next_id
        segment_bytes = self.sink.cut(checkpoint_id)
        fault_point("snapshot")
        if self._log is not None:
            self._log.sync()
        output_bytes = self._output_bytes + segment_bytes
        info = CheckpointInfo(
            id=checkpoint_id,
            created=time.time(),
            fingerprint=self._fingerprint,
            events_in=self._events_in(),
            sources={
                key: SourcePosition(
                    name=self._names[key],
                    consumed=int(position[0]),
                    max_receipt=None if position[1] == -math.inf else float(position[1]),
                )
                for key, position in self._positions.items()
            },
            rows=self.sink.rows,
            output_bytes=output_bytes,
            segment_bytes=segment_bytes,
            duration_seconds=time.perf_counter() - started,
            restarts=self.metrics.restarts,
            final=final,
            input_logged=self.logs_input,
        )
        path = write_checkpoint(self._directory, info, state)
        self._next_id += 1
        self._output_bytes = output_bytes
        self.sink.publish(checkpoint_id, output_bytes)
        kept = checkpoint_paths(self._directory)
        for old in kept[: -self.settings.keep]:
            old.unlink(missing_ok=True)
        if self._log is not None:
            self._rotate_log(info.events_in, kept[-self.settings.keep :])
        self.metrics.committed(info, path, time.perf_counter() - started)
        return info

    def _rotate_log(self, events_in: int, kept: Sequence[Path]) -> None:
        """Move the log to a new root every ``log_rotate_events`` events; once this process
        has rotated, delete the roots every kept checkpoint has consumed (until then the log
        is complete: a short run keeps its whole recording)."""
        assert self._log is not None
        if events_in - self._root_base >= self.settings.log_rotate_events:
            self._log.rotate()
            for key, recorder in self._recorders.items():  # the hot path's cells
                recorder[0] = self._log.recorder(self._sources_by_key[key])
            self._root_base = events_in
            self._rotated = True
        if self._rotated and kept:
            oldest = read_info(kept[0])
            if self._log.prune({k: p.consumed for k, p in oldest.sources.items()}):
                logger.info("pruned input log roots consumed by checkpoint %d", oldest.id)

    def finish(self) -> None:
        """The run ended cleanly: take a final checkpoint (publishing every row) and close."""
        self.checkpoint(final=True)
        self.close()

    def close(self) -> None:
        """Stop the timer and the log (what was acknowledged stays in the log)."""
        self._timer_stop.set()
        try:
            if self._log is not None:
                log, self._log = self._log, None
                log.close()
        finally:
            self._lock.release()

    def sources(self) -> Sequence[str]:
        """The data-source names of the run (for messages)."""
        return list(self._names.values())
