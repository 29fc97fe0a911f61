"""Fault tolerance: consistent checkpoints, recovery from the input log, exactly-once outputs.

* :class:`ScaledCheckpointer` — the driver's side of a checkpointed scaled-out run
  (:func:`featurizer.scaling.run_scaled` with ``checkpoint=``; ``featurizer run CONFIG
  --scaler ... --checkpoint DIR``).
* :class:`Checkpointer` — checkpoints a single-process run (:func:`featurizer.run` with
  ``checkpoint=``; ``featurizer run CONFIG --checkpoint DIR``).
* :class:`CheckpointSettings` — directory, interval (``--checkpoint-every``), ``--fresh``.
* :class:`SegmentedJsonLinesSink` — the output sink whose rows are published at checkpoints.
* The state protocol (:class:`Snapshotable`, :func:`snapshot_graph`, :func:`restore_graph`,
  :func:`snapshot_object`, :func:`restore_object`) — how feature state is snapshotted.
* :func:`inspect_directory`, :func:`verify_directory` — what ``featurizer checkpoint ls|info|
  verify`` shows.

See ``docs/fault-tolerance.md`` for the guarantees.
"""

from __future__ import annotations

from featurizer.checkpoint._errors import (
    CheckpointError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    SnapshotError,
)
from featurizer.checkpoint._faults import FAULT_ENV, FAULT_POINTS
from featurizer.checkpoint._format import (
    FORMAT_VERSION,
    CheckpointInfo,
    SourcePosition,
    read_checkpoint,
    read_info,
)
from featurizer.checkpoint._inspect import DirectoryReport, inspect_directory, verify_directory
from featurizer.checkpoint._run import make_checkpointer, make_scaled_checkpointer, run_checkpointed
from featurizer.checkpoint._scaled import ScaledCheckpointer
from featurizer.checkpoint._session import Checkpointer, CheckpointMetrics, run_fingerprint
from featurizer.checkpoint._settings import (
    DEFAULT_EVERY,
    DEFAULT_MAX_RESTARTS,
    CheckpointSettings,
    parse_every,
)
from featurizer.checkpoint._sink import SegmentedJsonLinesSink
from featurizer.checkpoint._state import (
    STATEFUL_OPERATORS,
    STATELESS_OPERATORS,
    Snapshotable,
    check_snapshotable,
    restore_graph,
    restore_object,
    snapshot_graph,
    snapshot_object,
)

__all__ = [
    "DEFAULT_EVERY",
    "DEFAULT_MAX_RESTARTS",
    "FAULT_ENV",
    "FAULT_POINTS",
    "FORMAT_VERSION",
    "STATEFUL_OPERATORS",
    "STATELESS_OPERATORS",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointMetrics",
    "CheckpointMismatchError",
    "CheckpointSettings",
    "Checkpointer",
    "CorruptCheckpointError",
    "DirectoryReport",
    "ScaledCheckpointer",
    "SegmentedJsonLinesSink",
    "SnapshotError",
    "Snapshotable",
    "SourcePosition",
    "check_snapshotable",
    "inspect_directory",
    "make_checkpointer",
    "make_scaled_checkpointer",
    "parse_every",
    "read_checkpoint",
    "read_info",
    "restore_graph",
    "restore_object",
    "run_checkpointed",
    "run_fingerprint",
    "snapshot_graph",
    "snapshot_object",
    "verify_directory",
]
