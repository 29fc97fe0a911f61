"""A test-only fault hook: SIGKILL this process at a named point of a checkpointed run.

Set ``FEATURIZER_CHECKPOINT_FAULT=POINT[:N]`` (N defaults to 1) and the process kills itself
with ``SIGKILL`` the N-th time it reaches ``POINT``: no ``finally`` block, no flush, no atexit
runs, exactly as if the machine had lost the process. Points (see :data:`FAULT_POINTS`):

* ``event`` — between two input events (after the N-th event of this process was dispatched);
* ``dispatch`` — in the middle of dispatching the N-th event (after the log recorded it and
  before the graph computed it);
* ``snapshot`` — after the state was snapshotted and the output segment written, before the
  checkpoint file is written;
* ``checkpoint-commit`` — with the checkpoint file written and fsynced under its temporary
  name, before the rename that commits it;
* ``publish`` — after the commit, in the middle of appending the segment to the output file;
* ``recovery`` — while resuming, after the N-th event replayed from the log;
* ``assemble`` — a Parquet output ending: ``assemble:1`` with the file assembled from its
  parts under a temporary name; ``assemble:2`` with the parts moved aside, before the file's
  rename; ``assemble:3`` with the file in place, before the parts are deleted.

Scaled runs also have worker points, ``worker-event:N@W`` and ``worker-barrier:N@W`` (worker
``W`` dies after its N-th input event, or while taking its N-th barrier; see
``featurizer.scaling._barriers``), which fire once per checkpoint directory, and their
``-always`` variants, which fire in every incarnation of the worker.

Without the variable every point is a dictionary lookup that finds nothing; the per-event
points are not even installed.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_ENV", "FAULT_POINTS", "fault_armed", "fault_point"]

FAULT_ENV = "FEATURIZER_CHECKPOINT_FAULT"
FAULT_POINTS = (
    "event",
    "dispatch",
    "snapshot",
    "checkpoint-commit",
    "publish",
    "recovery",
    "assemble",
    "worker-event",
    "worker-barrier",
)

_counts: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    point, _, count = value.partition(":")
    if point.removesuffix("-always") not in FAULT_POINTS:
        raise ValueError(f"{FAULT_ENV}={value!r}: unknown point; points: {', '.join(FAULT_POINTS)}")
    return point, int(count.partition("@")[0] or 1)


def fault_armed(point: str) -> bool:
    """Whether the hook is set to kill at ``point`` (so per-event hooks are installed)."""
    armed = _armed()
    return armed is not None and armed[0] == point


def fault_point(point: str) -> None:
    """SIGKILL this process if the hook is armed for ``point`` and this is its N-th visit."""
    armed = _armed()
    if armed is None or armed[0] != point:
        return
    _counts[point] = _counts.get(point, 0) + 1
    if _counts[point] >= armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
