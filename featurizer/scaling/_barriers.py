"""Checkpoint barriers of a scaled-out run, on the workers' side.

The driver asks every worker for barrier ``N`` (:meth:`WorkerRuntime.request_barrier`). A
worker takes it, between two events and under its lock, once it was asked and barrier ``N``
arrived on every channel from its upstream workers (a channel that delivered it is *aligned*:
its later batches wait until the worker took the barrier). Taking it means: snapshot (the
graph's state, where each data source stands, the sequencing and merge state, in worker-output
mode the local collector and the cut of its output file) and send barrier ``N`` on every
channel after the records before it; the one to the driver carries the snapshot: that is the
worker's acknowledgement. The driver commits checkpoint ``N`` once every worker acknowledged
it (see :mod:`featurizer.scaling._recovery`).

An acknowledgement is plain data, pickled: ``finished`` (the worker had ended: nothing more to
restore), ``state`` (bytes only a worker reads back), ``sources`` (key to ``[name, consumed,
max receipt]``), ``metrics``, ``output`` (worker-output mode: where its file stands) and
``input_logged`` (the worker logs its input, synced up to the cut before it acknowledged:
see :mod:`featurizer.scaling._worker_log`).

The fault hook (``FEATURIZER_CHECKPOINT_FAULT``) has worker points, ``worker-event:N@W``
(worker ``W`` dies after its ``N``-th input event) and ``worker-barrier:N@W`` (while taking
its ``N``-th barrier, before acknowledging it). They fire once per checkpoint directory (a
marker file remembers it, so the restarted worker runs on); ``...-always`` variants fire in
every incarnation (to exhaust the restart limit). A worker in its own process (a Ray actor)
is killed with SIGKILL; a worker thread of the local scaler fails as a dead worker does.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from featurizer.checkpoint._faults import FAULT_ENV

__all__ = [
    "WORKER_FAULT_POINTS",
    "SimulatedWorkerDeath",
    "WorkerCheckpointing",
    "fault_count",
    "load_ack",
    "worker_fault",
]

WORKER_FAULT_POINTS = ("worker-event", "worker-barrier")
"""Fault points in workers (see the module docstring)."""


@attrs.frozen(kw_only=True)
class WorkerCheckpointing:
    """What a worker of a checkpointed run needs to know.

    :param directory: the checkpoint directory (worker-output segments live under it).
    :param last_id: the checkpoint the run resumes from (``0``: none); the next barrier is
        ``last_id + 1``.
    :param restore: each worker's acknowledgement of that checkpoint, by worker index.
    :param log_input: ``None`` (automatic): a worker logs the events it consumes when one of
        its emitters does not replay its input; ``True``: every worker that ingests logs.
    :param sync_interval: seconds between acknowledgements of a worker's input log.
    :param log_rotate_events: input events after which a worker's log moves to a new root.
    :param keep: committed checkpoints the driver keeps (a worker prunes the log roots the
        oldest of them no longer needs).
    """

    directory: str
    last_id: int = 0
    restore: Mapping[int, bytes] = attrs.field(factory=dict)
    log_input: bool | None = None
    sync_interval: float = 0.1
    log_rotate_events: int = 5_000_000
    keep: int = 2


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"an acknowledgement holds plain data only, not {name}")


def load_ack(data: bytes) -> dict[str, Any]:
    """Read an acknowledgement (plain data only: no class is ever looked up)."""
    value = _PlainUnpickler(io.BytesIO(data)).load()
    if not isinstance(value, dict) or "finished" not in value:
        raise pickle.UnpicklingError("not a checkpoint acknowledgement")
    return value


class SimulatedWorkerDeath(Exception):
    """A worker thread of the local scaler hit a fault point (the test hook)."""


def _armed(point: str, index: int) -> tuple[int, bool] | None:
    value = os.environ.get(FAULT_ENV, "")
    name, _, rest = value.partition(":")
    always = name.endswith("-always")
    if name.removesuffix("-always") != point:
        return None
    count, _, worker = rest.partition("@")
    if worker and int(worker) != index:
        return None
    return int(count or 1), always


def worker_fault(point: str, index: int, directory: str, *, own_process: bool) -> None:
    """The fault hook's worker point: called at each visit of ``point`` (counted by the caller
    as the N-th); kills the worker when armed for it.

    :raises SimulatedWorkerDeath: for a worker thread (``own_process`` false).
    """
    marker = Path(directory) / f".fault-{point}-{index}"
    armed = _armed(point, index)
    if armed is None:
        return
    if not armed[1]:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    if own_process:
        os.kill(os.getpid(), signal.SIGKILL)
    raise SimulatedWorkerDeath(f"fault hook: worker {index} died at {point}")


def fault_count(point: str, index: int) -> int | None:
    """The visit at which ``point`` kills worker ``index`` (``None``: not armed)."""
    armed = _armed(point, index)
    return None if armed is None else armed[0]
