"""Running a config with checkpoints from Python: :func:`run_checkpointed`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurizer.checkpoint._errors import CheckpointError
from featurizer.checkpoint._scaled import ScaledCheckpointer
from featurizer.checkpoint._session import Checkpointer
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.checkpoint._sink import SEGMENTED_FORMATS, make_segmented_sink

if TYPE_CHECKING:  # the runner imports the config, which imports checkpoint settings
    from featurizer._config import FeaturizerConfig
    from featurizer._runner import RunOptions, RunSummary

__all__ = ["make_checkpointer", "make_scaled_checkpointer", "run_checkpointed"]


def make_checkpointer(
    settings: CheckpointSettings,
    out: str | Path,
    options: RunOptions,
    *,
    format_name: str | None = None,
) -> Checkpointer:
    """The checkpointer of a run writing JSON Lines or Parquet to ``out`` (its sink is
    ``checkpointer.sink``). The run options that change the output are part of what a
    checkpoint may be resumed into.

    :param format_name: ``--format`` (``jsonl`` or ``parquet``); by default, ``out``'s suffix.
    :raises CheckpointError: for another format.
    """
    sink = make_segmented_sink(out, settings.directory, format_name)
    return Checkpointer(settings, sink, _identity(options))


def _identity(options: RunOptions) -> dict[str, Any]:
    return {
        "emitter": options.emitter,
        "seed": options.seed,
        "combine_outputs": options.combine_outputs,
        "error_policy": options.error_policy,
        "emitter_options": {k: str(v) for k, v in sorted(options.emitter_options.items())},
    }


def make_scaled_checkpointer(
    settings: CheckpointSettings,
    out: str | Path | None,
    options: RunOptions,
    *,
    worker_outputs: bool = False,
    format_name: str | None = None,
) -> ScaledCheckpointer:
    """The checkpointer of a scaled-out run (pass it to
    :func:`~featurizer.scaling.run_scaled` as ``checkpoint=``, with ``checkpointer.sink`` as
    the sink: ``None`` when the workers write the outputs).

    :param out: the output file (``--outputs driver``) or the worker-output target.
    :param worker_outputs: the workers write the outputs (``--outputs workers``).
    :param format_name: ``--format`` (``jsonl`` or ``parquet``); by default, the suffix.
    :raises CheckpointError: one line, for what a checkpointed scaled run cannot do.
    """
    target = out
    if worker_outputs and out is not None:
        from featurizer.scaling import WorkerOutputs

        target = WorkerOutputs(target=str(out), format_name=format_name).path_for(0)
    if out is None:
        raise CheckpointError(
            "--checkpoint publishes its output to files at each checkpoint: pass --out "
            "FILE.jsonl or FILE.parquet (received stdout, which cannot take a row back)"
        )
    name = format_name or Path(str(target)).suffix.lower().lstrip(".")
    if name not in SEGMENTED_FORMATS:
        where = f"--outputs workers --out {out} gives {target}" if worker_outputs else repr(out)
        raise CheckpointError(
            f"--checkpoint publishes its output exactly once to JSON Lines or Parquet files: "
            f"{where} ({name or 'no format'}); use .jsonl or .parquet files (or --format "
            f"jsonl|parquet)"
        )
    sink = None if worker_outputs else make_segmented_sink(out, settings.directory, format_name)
    return ScaledCheckpointer(settings, sink, _identity(options), str(Path(out).resolve()))


def run_checkpointed(
    config: FeaturizerConfig,
    options: RunOptions,
    out: str | Path,
    settings: CheckpointSettings,
    **run_options: Any,
) -> tuple[RunSummary, Checkpointer]:
    """:func:`featurizer.run` with checkpoints: resume from ``settings.directory`` if it holds
    a checkpoint of this run, log the input, publish rows to ``out`` (JSON Lines or Parquet,
    by its suffix) at each checkpoint.

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
