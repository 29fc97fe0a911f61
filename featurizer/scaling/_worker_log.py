"""A worker's input log: the events a worker of a checkpointed scaled run consumes.

A worker whose sources come from an emitter that does not replay its input
(:attr:`~featurizer.DataSourceEventEmitter.replays_input` false: a live feed), or every
worker that ingests when ``log_input: true``, logs the events it consumes, as a
single-process run does (:class:`featurizer.checkpoint._log.InputLog`), into a log of its
own: ``<checkpoint dir>/workers/<index>/log``, a Featurizer Storage root per incarnation of
the worker (one writer per root). A worker with several emitters, one of them live, logs
all of its sources, so that the log keeps their interleaving.

* Every event is appended under the worker's lock, in the order the worker consumed it,
  before the graph computes it; events the worker drops (it is stopping, draining, or at
  ``max_events``) are neither counted nor logged, so the log is exactly its input.
* Before a worker acknowledges a barrier its log is synced: a committed checkpoint never
  refers to input the log does not hold.
* A restored worker replays the log's tail after its acknowledged position, then starts its
  emitters (:meth:`WorkerRuntime.start`).
* Every ``log_rotate_events`` input events the log moves to a new root (at a barrier); once
  a worker rotated, each commit deletes the roots every kept checkpoint consumed (as a
  single-process run does: a short run keeps its whole recording).

A worker that does not log discards a log an earlier incarnation left (its emitters replay
what it held). The checkpoint directory must be one every worker can reach: a shared
filesystem path when workers run on other machines (Ray).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from featurizer._events import Event
from featurizer._feature import Feature
from featurizer.checkpoint._log import InputLog, discard_log, start_log_at
from featurizer.scaling._barriers import WorkerCheckpointing
from featurizer.storage import StorageLockedError

__all__ = ["WorkerLog", "worker_log_directory"]

_LOCK_WAIT = 10.0
"""Seconds a new incarnation waits for the process of the previous one to let go of its log
(a Ray actor that is being killed may still hold it)."""


def worker_log_directory(directory: str | Path, index: int) -> Path:
    """Where worker ``index`` logs its input, under the checkpoint directory."""
    return Path(directory) / "workers" / str(index) / "log"


class WorkerLog:
    """One worker's input log (see the module docstring); used under the worker's lock.

    :param log: the open input log.
    :param checkpoint: the run's checkpoint settings, as the worker got them.
    :param restored: per data-source key, the events consumed at the checkpoint resumed.
    """

    def __init__(
        self, log: InputLog, checkpoint: WorkerCheckpointing, restored: Mapping[str, int]
    ) -> None:
        self._log = log
        self._rotate_every = checkpoint.log_rotate_events
        self._keep = checkpoint.keep
        self._cuts: dict[int, dict[str, int]] = {checkpoint.last_id: dict(restored)}
        self._root_base = sum(restored.values())
        self._rotated = False
        self._recorders: dict[str, list[Callable[[Event], None]]] = {}
        self._sources: dict[str, Feature] = {}

    @classmethod
    def open(
        cls,
        checkpoint: WorkerCheckpointing,
        index: int,
        sources: Sequence[Feature],
        consumed: Mapping[str, int],
        *,
        logs: bool,
    ) -> WorkerLog | None:
        """Open worker ``index``'s log (``logs``), or discard what an earlier incarnation
        logged (its emitters replay it) and return ``None``.

        :param consumed: per data-source key, the events consumed at the resumed checkpoint.
        """
        directory = worker_log_directory(checkpoint.directory, index)
        if not logs:
            discard_log(directory)
            return None
        if not directory.is_dir() and any(consumed.values()):
            start_log_at(directory, consumed)  # an earlier incarnation did not log
        log = InputLog(directory, sources, checkpoint.sync_interval)
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                log.open_writer()
                break
            except StorageLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)  # the previous incarnation's process is going away
        opened = cls(log, checkpoint, consumed)
        opened._sources = {source.key: source for source in sources}
        return opened

    def recorder(self, source: Feature) -> list[Callable[[Event], None]]:
        """A cell holding the callback that appends events of ``source`` (the log replaces
        it when it rotates)."""
        cell = self._recorders[source.key] = [self._log.recorder(source)]
        return cell

    def tail(self, consumed: Mapping[str, int]) -> Iterator[tuple[Feature, Event]]:
        """The logged events after ``consumed`` (per data-source key), in consumption order."""
        return self._log.tail(consumed)

    def replayed(self, events: int) -> None:
        """The worker replayed the tail: it had consumed ``events`` in all when its current
        root started."""
        self._root_base = events

    def sync(self) -> None:
        """Acknowledge every event appended so far (before the worker acknowledges a cut)."""
        self._log.sync()

    def barrier(self, number: int, consumed: Mapping[str, int]) -> None:
        """The worker took barrier ``number`` at ``consumed``: remember the cut, and move to a
        new root when ``log_rotate_events`` events went to the current one."""
        self._cuts[number] = dict(consumed)
        if sum(consumed.values()) - self._root_base >= self._rotate_every:
            self._log.rotate()
            for key, cell in self._recorders.items():
                cell[0] = self._log.recorder(self._sources[key])
            self._root_base = sum(consumed.values())
            self._rotated = True

    def committed(self, number: int) -> None:
        """Checkpoint ``number`` committed: once this worker rotated, delete the roots the
        oldest kept checkpoint consumed."""
        oldest = number - self._keep + 1
        for old in [n for n in self._cuts if n < oldest]:
            del self._cuts[old]
        covered = self._cuts.get(oldest)
        if self._rotated and covered is not None:
            self._log.prune(covered)

    def close(self) -> None:
        """Write every logged event and close the log."""
        self._log.close()
