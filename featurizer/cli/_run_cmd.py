"""``featurizer run CONFIG``: compute features from live, synthetic or replayed data."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from featurizer._errors import FeaturizerError
from featurizer._graph import ERROR_POLICIES
from featurizer._plugins import get_plugins
from featurizer._runner import RunOptions, run
from featurizer.checkpoint import Checkpointer
from featurizer.cli._checkpoint_cmd import (
    add_checkpoint_arguments,
    checkpointed_from_args,
    describe_metrics,
)
from featurizer.cli._common import (
    ProgressLine,
    add_config_argument,
    add_emitter_option_argument,
    load,
    make_sink,
    positive_float,
    positive_int,
    write,
)
from featurizer.cli._plan_cmd import (
    add_scaling_arguments,
    run_scaled_from_args,
    worker_outputs_from_args,
)
from featurizer.metrics._cli import add_metrics_arguments, observing


def _pace(value: str) -> str | float:
    if value == "max":
        return value
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'max' or a speed factor such as 1.0, got {value!r}"
        ) from None
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"the speed factor must be positive, got {value!r}")
    return speed


def register(commands: Any) -> None:
    """Add the ``run`` subcommand."""
    parser = commands.add_parser(
        "run",
        help="run a config until its data ends, a bound, or Ctrl-C",
        description="Build the feature graph of CONFIG, connect each data source to its emitter "
        "and write the combined feature vectors (JSON Lines to stdout by default).",
    )
    add_config_argument(parser)
    parser.add_argument("--emitter", help="use this emitter for every data source (e.g. synthetic)")
    parser.add_argument("--max-events", type=positive_int, help="stop after N input events")
    parser.add_argument("--duration", type=positive_float, help="stop after S wall-clock seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed for generating emitters")
    parser.add_argument("--pace", type=_pace, default="max", help="'max' or a replay speed factor")
    parser.add_argument(
        "--storage", metavar="ROOT", help="storage root replayed by --emitter offline"
    )
    parser.add_argument("--out", help="output file (.jsonl or .parquet); stdout when omitted")
    parser.add_argument("--format", dest="format_name", help="output format (jsonl, parquet)")
    parser.add_argument(
        "--no-combine",
        action="store_true",
        help="write one row per output event instead of one combined row per input",
    )
    parser.add_argument(
        "--on-error",
        choices=ERROR_POLICIES,
        default="raise",
        help="when a feature raises: stop (raise) or count and continue (skip)",
    )
    add_emitter_option_argument(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="check every output event against its feature's declared schema (slower)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress line and no summary (errors only)",
    )
    add_scaling_arguments(parser)
    add_metrics_arguments(parser)
    add_checkpoint_arguments(parser)
    parser.set_defaults(handler=handle)


_SCALED_ONLY = (("workers", 1), ("strategy", None), ("address", None), ("transport", None))


def _check_scaling_arguments(args: argparse.Namespace) -> None:
    """Scale-out options without ``--scaler`` are an error, never silently ignored."""
    if args.scaler:
        return
    for name, default in _SCALED_ONLY:
        value = getattr(args, name, default)
        if value != default:
            raise FeaturizerError(
                f"--{name} {value} needs a scaled run: add --scaler local (or --scaler ray); "
                f"without --scaler the run is one process"
            )


def handle(args: argparse.Namespace) -> int:
    """Run the config and print a summary to stderr."""
    _check_scaling_arguments(args)
    config = load(args)
    plugins = get_plugins()
    options = RunOptions(
        emitter=args.emitter,
        max_events=args.max_events,
        duration=args.duration,
        seed=args.seed,
        pace=args.pace,
        combine_outputs=not args.no_combine,
        error_policy=args.on_error,
        emitter_options={"storage": args.storage} if args.storage else {},
        emitter_settings=dict(args.emitter_settings),
        check=args.check,
    )
    outputs = worker_outputs_from_args(args, plugins)  # --outputs workers: checked here
    checkpointed = checkpointed_from_args(args, config, options)
    with observing(args) as metrics:  # a metrics port in use fails before anything starts
        if metrics is not None and checkpointed is not None:
            metrics.add_checkpoint(lambda: checkpointed.metrics)
        sink: Any = checkpointed.sink if checkpointed is not None else None
        if sink is None and outputs is None:
            sink = make_sink(plugins, args.out, args.format_name)
        progress = ProgressLine(
            sys.stderr,
            total=None if args.scaler else args.max_events,  # a scaler bounds each worker
            enabled=not args.quiet and not getattr(args, "dashboard", False),
        )
        try:
            if args.scaler:
                from featurizer.scaling import reporting_metrics

                try:
                    with reporting_metrics(metrics):
                        summary = run_scaled_from_args(
                            args,
                            config,
                            options,
                            sink,
                            plugins,
                            outputs=outputs,
                            progress=progress.update,
                            checkpoint=checkpointed,
                        )
                finally:
                    progress.close()
            else:
                assert sink is not None  # --outputs workers needs --scaler
                assert checkpointed is None or isinstance(checkpointed, Checkpointer)
                try:
                    summary = run(
                        config,
                        options,
                        sink,
                        plugins=plugins,
                        metrics=metrics,
                        progress=progress.update,
                        checkpoint=checkpointed,
                    )
                finally:
                    progress.close()
        except BaseException:
            if sink is not None:
                sink.close(ok=False)
            raise
    if not args.quiet:
        _report(args, summary, outputs is not None)
        if checkpointed is not None:
            write(describe_metrics(checkpointed), stream=sys.stderr)
    if summary.stopped_by == "interrupted":
        write("featurizer: interrupted", stream=sys.stderr)
        return 130
    return 0


def _report(args: argparse.Namespace, summary: Any, worker_outputs: bool) -> None:
    write(summary.describe(), stream=sys.stderr)
    if worker_outputs:
        files = ", ".join(summary.output_files)
        write(f"wrote {summary.outputs_out:,} rows to {files}", stream=sys.stderr)
    elif args.out:
        write(f"wrote {summary.outputs_out:,} rows to {args.out}", stream=sys.stderr)
    silent = getattr(summary, "silent_outputs", ())
    if summary.outputs_out == 0 and summary.events_in > 0 and silent:
        write(
            f"hint: no rows because {len(silent)} output(s) never produced a value: "
            f"{', '.join(silent)}; a combined row needs a value from every output, so run "
            f"longer (a larger --duration or --max-events, a faster --pace) or pass --no-combine",
            stream=sys.stderr,
        )
