"""``featurizer backfill CONFIG``: a training set from stored data at columnar speed."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from featurizer._errors import FeaturizerError
from featurizer._plugins import get_plugins
from featurizer.cli._common import add_config_argument, load, positive_int, write
from featurizer.cli._record_cmd import add_storage_argument
from featurizer.cli._replay_cmd import Progress, add_range_arguments
from featurizer.storage import DataHoleWarning, resolve_root

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``backfill`` subcommand."""
    parser = commands.add_parser(
        "backfill",
        help="compute a training set from stored data sources (columnar, same rows as replay)",
        description="Compute the combined feature vectors of CONFIG over the data sources "
        "stored by `featurizer record`, over --start..--end (default: the config's dates, "
        "else everything stored), with the features' columnar kernels, and write them to a "
        "Parquet file: the same rows as `featurizer replay`, bit for bit.",
    )
    add_config_argument(parser)
    add_storage_argument(parser)
    parser.add_argument("--out", required=True, help="the output .parquet file")
    add_range_arguments(parser)
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="split the range into N parts computed in parallel (same rows)",
    )
    parser.add_argument(
        "--scaler",
        choices=("local", "ray"),
        default="local",
        help="where parallel parts run: local processes or Ray tasks",
    )
    parser.add_argument(
        "--chunk-rows",
        type=positive_int,
        default=65_536,
        help="rows per data source computed at once (memory is bounded by a chunk)",
    )
    parser.add_argument(
        "--no-kernels",
        dest="kernels",
        action="store_false",
        help="compute every feature per event (slower; for comparisons)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show progress on stderr",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    parser.set_defaults(handler=handle)


def _check_out(out: str) -> Path:
    path = Path(out)
    if path.suffix != ".parquet":
        raise FeaturizerError(f"--out {out!r}: backfill writes Parquet; name a .parquet file")
    if path.is_dir():
        raise FeaturizerError(f"--out {out!r} is a directory; name a .parquet file in it")
    if not path.parent.resolve().is_dir():
        raise FeaturizerError(f"--out {out!r}: directory {str(path.parent)!r} does not exist")
    return path


def _show_warnings(caught: list[warnings.WarningMessage], shown: int) -> int:
    """Print the warnings caught since the first ``shown``; returns how many were caught."""
    for warning in caught[shown:]:
        write(f"featurizer: warning: {warning.message}", stream=sys.stderr)
    return len(caught)


def handle(args: argparse.Namespace) -> int:
    """Compute and write the rows; progress and a summary go to stderr."""
    from featurizer.batch import Backfill, ParallelBackfill
    from featurizer.batch._write import write_tables

    out = _check_out(args.out)
    config = load(args)
    plugins = get_plugins()
    root = Path(resolve_root(config.storage, config_path=config.path, override=args.storage))
    options = {
        "warmup": args.warmup,
        "per": args.per,
        "holes": args.holes,
        "chunk_rows": args.chunk_rows,
    }
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataHoleWarning)
        range_ = {"start": args.start, "end": args.end, "plugins": plugins, "kernels": args.kernels}
        job: Backfill | ParallelBackfill
        if args.workers == 1:
            job = Backfill(config, root, **range_, **options)
        else:
            job = ParallelBackfill(
                config,
                root,
                workers=args.workers,
                scaler=args.scaler,
                directory=out.parent,
                **range_,
                **options,
            )
        shown = _show_warnings(caught, 0)
        bar = Progress(job.total_events, sys.stderr, enabled=args.progress)
        with job:
            rows = write_tables(job, out, on_table=lambda _t: bar.update(job.events_in))
        bar.finish(job.events_in)
        _show_warnings(caught, shown)
        events, restarts = job.events_in, job.restarts
    elapsed = time.perf_counter() - started
    rate = events / elapsed if elapsed > 0 else 0.0
    write(
        f"events in: {events:,}  rows out: {rows:,}  elapsed: {elapsed:.2f} s  "
        f"events/s: {rate:,.0f}  workers: {args.workers}  warm-up restarts: {restarts}",
        stream=sys.stderr,
    )
    write(f"wrote {rows:,} rows to {args.out}", stream=sys.stderr)
    return 0
