"""Running a config with checkpoints from Python: :func:`run_checkpointed`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurizer.checkpoint._session import Checkpointer
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.checkpoint._sink import SegmentedJsonLinesSink

if TYPE_CHECKING:  # the runner imports the config, which imports checkpoint settings
    from featurizer._config import FeaturizerConfig
    from featurizer._runner import RunOptions, RunSummary

__all__ = ["make_checkpointer", "run_checkpointed"]


def make_checkpointer(
    settings: CheckpointSettings, out: str | Path, options: RunOptions
) -> Checkpointer:
    """The checkpointer of a run writing JSON Lines to ``out`` (its sink is
    ``checkpointer.sink``). The run options that change the output are part of what a
    checkpoint may be resumed into."""
    sink = SegmentedJsonLinesSink(out, settings.directory)
    identity = {
        "emitter": options.emitter,
        "seed": options.seed,
        "combine_outputs": options.combine_outputs,
        "error_policy": options.error_policy,
        "emitter_options": {k: str(v) for k, v in sorted(options.emitter_options.items())},
    }
    return Checkpointer(settings, sink, identity)


def run_checkpointed(
    config: FeaturizerConfig,
    options: RunOptions,
    out: str | Path,
    settings: CheckpointSettings,
    **run_options: Any,
) -> tuple[RunSummary, Checkpointer]:
    """:func:`featurizer.run` with checkpoints: resume from ``settings.directory`` if it holds
    a checkpoint of this run, log the input, publish rows to ``out`` at each checkpoint.

    :param run_options: passed to :func:`featurizer.run` (``plugins``, ``metrics``, ...).
    :returns: the summary of this process's part of the run, and the checkpointer (its
        :attr:`~Checkpointer.metrics`).
    :raises SnapshotError: naming a feature whose state cannot be snapshotted.
    :raises CheckpointMismatchError: if the directory holds a checkpoint of another run.
    """
    from featurizer._runner import run

    checkpointer = make_checkpointer(settings, out, options)
    summary = run(config, options, checkpointer.sink, checkpoint=checkpointer, **run_options)
    return summary, checkpointer
