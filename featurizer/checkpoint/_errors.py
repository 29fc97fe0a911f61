"""The errors of checkpointing: one base, each naming what failed and how to fix it."""

from __future__ import annotations

from featurizer._errors import FeaturizerError

__all__ = ["CheckpointError", "CheckpointMismatchError", "CorruptCheckpointError", "SnapshotError"]


class CheckpointError(FeaturizerError):
    """Something about a checkpoint directory or a checkpointed run is wrong."""


class SnapshotError(CheckpointError):
    """A feature's state cannot be snapshotted (raised at start-up, naming the feature)."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was taken for another config or other run options: resuming is refused."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint file is truncated, modified or of an unknown format version."""
