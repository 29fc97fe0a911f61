"""The driver's side of a checkpointed scaled-out run: commit, restore, restart.

:func:`featurizer.scaling.run_scaled` given ``checkpoint=`` a :class:`ScaledCheckpointer`
asks the workers for barriers (see ``featurizer.scaling._barriers``) and, once every worker
acknowledged barrier ``N`` and the driver's collector aligned on it, calls :meth:`commit`:
the driver's output segment is closed (rows released before the cut), the checkpoint file is
written atomically (the cut: every source's position, every worker's acknowledgement, the
collector's state, the output's length), then the segment is published. Worker-output files
are published by their workers once the commit returned.

Resuming (a restarted driver, or a worker that died mid-run) restores the newest committed
checkpoint: the output is cut back to it, each worker restores from its acknowledgement, and
the sources are rewound to the cut (a worker with a live source replays its own input log's
tail first: see ``featurizer.scaling._worker_log``). A checkpoint records per worker whether
it logs its input (``input_logged``) and the keys of its sources (``sources``).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurizer._graph import FeatureStreamGraph
from featurizer.checkpoint._errors import CheckpointMismatchError
from featurizer.checkpoint._format import (
    CheckpointInfo,
    SourcePosition,
    checkpoint_paths,
    write_checkpoint,
)
from featurizer.checkpoint._lock import DirectoryLock
from featurizer.checkpoint._session import (
    CheckpointMetrics,
    _count_restart,
    _difference,
    _newest_readable,
    run_fingerprint,
)
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.checkpoint._sink import SegmentedSink
from featurizer.checkpoint._state import check_snapshotable

__all__ = ["ScaledCheckpointer"]

logger = logging.getLogger(__name__)


class ScaledCheckpointer:
    """Checkpoints one scaled-out run (the driver's side; see the module docstring).

    :param settings: directory, interval, restart limit.
    :param sink: the driver's segmented output (``--outputs driver``), or ``None`` when the
        workers write the outputs.
    :param options: the run options that change the output (part of the fingerprint).
    :param output: what the run writes (the output file, or the worker-output target).
    """

    def __init__(
        self,
        settings: CheckpointSettings,
        sink: SegmentedSink | None,
        options: Mapping[str, Any],
        output: str,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.metrics = CheckpointMetrics()
        self._options = dict(options)
        self._output = output
        self._directory = settings.directory
        self._lock = DirectoryLock(settings.directory)
        self._fingerprint: dict[str, Any] = {}
        self._next_id = 1
        self._output_bytes = 0
        self._locked = False
        self._attempt: dict[int, tuple[int, int]] = {}
        """Per worker of the running attempt: the gaps it found and the events it replayed."""
        self._before = (0, 0)
        """Gaps and replayed events of the attempts before it (a worker died since)."""

    @property
    def directory(self) -> Path:
        """The checkpoint directory."""
        return self._directory

    @property
    def next_id(self) -> int:
        """The id the next checkpoint gets."""
        return self._next_id

    def start(
        self, graph: FeatureStreamGraph, scaled: Mapping[str, Any]
    ) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """Check the features can be snapshotted, lock the directory, and load the newest
        checkpoint (the output is brought back to it).

        :param graph: the run's whole graph (for the fingerprint and the snapshot check).
        :param scaled: the plan's identity (workers, strategy, plan fingerprint, outputs).
        :returns: the checkpoint to resume, or ``None`` to start from the beginning.
        :raises SnapshotError: naming a feature that cannot be snapshotted.
        :raises CheckpointMismatchError: if the directory holds a checkpoint of another run.
        """
        check_snapshotable(graph)
        self._lock.acquire()
        self._locked = True
        self._fingerprint = {
            **run_fingerprint(graph, self._options, self._output),
            "scaled": dict(scaled),
        }
        if self.settings.fresh:
            for name in ("checkpoints", "log", "segments", "workers"):
                shutil.rmtree(self._directory / name, ignore_errors=True)
            (self._directory / "restarts").unlink(missing_ok=True)
        self._directory.mkdir(parents=True, exist_ok=True)
        if checkpoint_paths(self._directory):
            self.metrics.restarts = _count_restart(self._directory)
        return self._load()

    def reload(self) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        """A worker died: count a restart and load the newest checkpoint again."""
        self.metrics.restarts = _count_restart(self._directory)
        self._before = (self.metrics.gaps, self.metrics.replayed_events)
        self._attempt = {}
        if self.sink is not None:
            self.sink.close(ok=False)  # the rows after the last checkpoint are computed again
        return self._load()

    def _load(self) -> tuple[CheckpointInfo, dict[str, Any]] | None:
        paths = checkpoint_paths(self._directory)
        if self.sink is not None:
            self.sink.rows = self.sink.pending_rows = 0
        if not paths:
            if self.sink is not None:
                self.sink.start_fresh()
            self._next_id, self._output_bytes = 1, 0
            return None
        info, state = _newest_readable(paths)
        if info.fingerprint != self._fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint directory {str(self._directory)!r} holds a checkpoint of another "
                f"run ({_difference(info.fingerprint, self._fingerprint)}); resume it with the "
                f"config and options it was taken with, or start over with --fresh (or use "
                f"another --checkpoint directory)"
            )
        if self.sink is not None:
            self.sink.rows = info.rows
            self.sink.reconcile(info.id, info.output_bytes, info.segment_bytes)
        self._next_id = info.id + 1
        self._output_bytes = info.output_bytes
        logger.warning(
            "resuming from checkpoint %d of %s (%d events in, %d rows published)",
            info.id,
            self._directory,
            info.events_in,
            info.rows,
        )
        return info, state

    def commit(
        self,
        acks: Mapping[int, Mapping[str, Any]],
        raw_acks: Mapping[int, bytes],
        collector: bytes,
        *,
        started: float,
        final: bool = False,
    ) -> CheckpointInfo:
        """Commit the next checkpoint: every worker acknowledged it and the collector aligned.

        :param acks: each worker's acknowledgement, read.
        :param raw_acks: the same, as the workers sent them (restored from them).
        :param collector: the driver's collector's state, pickled.
        :param started: ``time.perf_counter()`` when the barrier was asked for.
        :param final: the run ended cleanly (every worker had ended).
        """
        from featurizer.checkpoint._faults import fault_point

        checkpoint_id = self._next_id
        segment_bytes = self.sink.cut(checkpoint_id) if self.sink is not None else 0
        fault_point("snapshot")
        sources: dict[str, SourcePosition] = {}
        workers: dict[str, dict[str, Any]] = {}
        for index, ack in sorted(acks.items()):
            for key, (name, consumed, receipt) in ack["sources"].items():
                sources[key] = SourcePosition(name=name, consumed=consumed, max_receipt=receipt)
            entry: dict[str, Any] = {
                "events_in": int(ack["metrics"].get("events_in", 0)),
                "finished": bool(ack["finished"]),
                "input_logged": bool(ack.get("input_logged", False)),
                "sources": sorted(ack["sources"]),
            }
            self._attempt[index] = (
                int(ack["metrics"].get("gaps", 0)),
                int(ack["metrics"].get("replayed", 0)),
            )
            output = ack.get("output")
            if output is not None:
                entry.update(
                    output=output["path"],
                    output_id=output["id"],
                    output_bytes=output["output_bytes"],
                    segment_bytes=output["segment_bytes"],
                    rows=output["rows"],
                )
            workers[str(index)] = entry
        output_bytes = self._output_bytes + segment_bytes
        rows = (
            self.sink.rows
            if self.sink is not None
            else sum(int(w.get("rows", 0)) for w in workers.values())
        )
        info = CheckpointInfo(
            id=checkpoint_id,
            created=time.time(),
            fingerprint=self._fingerprint,
            events_in=sum(w["events_in"] for w in workers.values()),
            sources=sources,
            rows=rows,
            output_bytes=output_bytes,
            segment_bytes=segment_bytes,
            duration_seconds=time.perf_counter() - started,
            restarts=self.metrics.restarts,
            final=final,
            input_logged=any(w["input_logged"] for w in workers.values()),
            workers=workers,
        )
        state = {"collector": collector, "workers": dict(raw_acks)}
        path = write_checkpoint(self._directory, info, state)
        self._next_id += 1
        self._output_bytes = output_bytes
        if self.sink is not None:
            self.sink.publish(checkpoint_id, output_bytes)
        for old in checkpoint_paths(self._directory)[: -self.settings.keep]:
            old.unlink(missing_ok=True)
        self.metrics.gaps = self._before[0] + sum(g for g, _ in self._attempt.values())
        self.metrics.replayed_events = self._before[1] + sum(r for _, r in self._attempt.values())
        self.metrics.committed(info, path, time.perf_counter() - started)
        return info

    def due_every(self) -> float:
        """Seconds between checkpoints (``inf`` for an interval in input events, which the
        driver counts from the workers' batches instead)."""
        seconds = self.settings.every_seconds
        return math.inf if seconds is None else seconds

    def close(self) -> None:
        """Release the directory."""
        if self._locked:
            self._locked = False
            self._lock.release()
