"""Running a config with checkpoints from Python: :func:`run_checkpointed`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurizer.checkpoint._errors import CheckpointError
from featurizer.checkpoint._scaled import ScaledCheckpointer
from featurizer.checkpoint._session import Checkpointer
from featurizer.checkpoint._settings import CheckpointSettings
from featurizer.checkpoint._sink import SegmentedJsonLinesSink

if TYPE_CHECKING:  # the runner imports the config, which imports checkpoint settings
    from featurizer._config import FeaturizerConfig
    from featurizer._runner import RunOptions, RunSummary

__all__ = ["make_checkpointer", "make_scaled_checkpointer", "run_checkpointed"]


def make_checkpointer(
    settings: CheckpointSettings, out: str | Path, options: RunOptions
) -> Checkpointer:
    """The checkpointer of a run writing JSON Lines to ``out`` (its sink is
    ``checkpointer.sink``). The run options that change the output are part of what a
    checkpoint may be resumed into."""
    sink = SegmentedJsonLinesSink(out, settings.directory)
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

    :param out: the JSON Lines output file (``--outputs driver``) or the worker-output target.
    :param worker_outputs: the workers write the outputs (``--outputs workers``).
    :param format_name: ``--format`` (JSON Lines only).
    :raises CheckpointError: one line, for what a checkpointed scaled run cannot do.
    """
    target = out
    if worker_outputs and out is not None:
        from featurizer.scaling import WorkerOutputs

        target = WorkerOutputs(target=str(out), format_name=format_name).path_for(0)
    name = format_name or (Path(str(target)).suffix.lstrip(".") if target else "")
    if worker_outputs and name not in ("jsonl", "json"):
        raise CheckpointError(
            f"--checkpoint publishes worker outputs as JSON Lines at each checkpoint: "
            f"--outputs workers --out {out} gives {target} ({name or 'no format'}); use "
            f"--format jsonl or .jsonl files"
        )
    if out is None or name not in ("jsonl", "json"):
        raise CheckpointError(
            "--checkpoint publishes its output to JSON Lines files at each checkpoint: pass "
            f"--out FILE.jsonl (received {'stdout' if out is None else repr(str(out))})"
        )
    if settings.every_events is not None:
        raise CheckpointError(
            f"--checkpoint-every {settings.every_events} counts input events, which a scaled "
            f"run's driver does not see (its workers read the sources): give a time, e.g. "
            f"--checkpoint-every 10s"
        )
    sink = None if worker_outputs else SegmentedJsonLinesSink(out, settings.directory)
    return ScaledCheckpointer(settings, sink, _identity(options), str(Path(out).resolve()))


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
