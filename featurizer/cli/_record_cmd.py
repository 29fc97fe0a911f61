"""``featurizer record CONFIG``: run a config and store its data sources and features."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Any

from featurizer._graph import ERROR_POLICIES
from featurizer._params import parse_duration
from featurizer._plugins import get_plugins
from featurizer._runner import RunOptions
from featurizer.cli._common import (
    ProgressLine,
    add_config_argument,
    check_output,
    load,
    make_sink,
    write,
)
from featurizer.cli._run_cmd import _pace
from featurizer.storage import Storage, StorageSettings, parse_size, record, resolve_root
from featurizer.storage._settings import COMPACTORS, WRITERS


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _duration(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--storage ROOT`` option shared by the storage commands."""
    parser.add_argument(
        "--storage",
        metavar="ROOT",
        help="storage root (default: the config's storage.root, else $FEATURIZER_STORAGE, "
        "else ./featurizer-storage)",
    )


def register(commands: Any) -> None:
    """Add the ``record`` subcommand."""
    parser = commands.add_parser(
        "record",
        help="run a config (live or synthetic) and store its data sources and features",
        description="Run CONFIG like `featurizer run` and store the events of the nodes its "
        "features_to_store selects (default: every data source and every output) into "
        "Featurizer Storage, crash-safely. Replay them later with `featurizer replay` or "
        "`featurizer run CONFIG --emitter offline`.",
    )
    add_config_argument(parser)
    add_storage_argument(parser)
    parser.add_argument("--emitter", help="use this emitter for every data source (e.g. synthetic)")
    parser.add_argument("--max-events", type=int, help="stop after N input events")
    parser.add_argument("--duration", type=float, help="stop after S wall-clock seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed for generating emitters")
    parser.add_argument("--pace", type=_pace, default="max", help="'max' or a speed factor")
    parser.add_argument(
        "--store",
        action="append",
        metavar="SELECTOR",
        help="what to store instead of the config's features_to_store (repeatable): "
        "data_sources, outputs, an entry name, a node name or a key prefix",
    )
    parser.add_argument("--compactor", choices=COMPACTORS, help="how blocks are cut")
    parser.add_argument("--block-size", type=_size, help="in-memory size of a block (e.g. 16MiB)")
    parser.add_argument("--bucket", type=_duration, help="bucket of the time compactor (e.g. 1h)")
    parser.add_argument(
        "--sync-interval", type=_duration, help="seconds between WAL fsyncs (e.g. 100ms)"
    )
    parser.add_argument(
        "--writer",
        choices=WRITERS,
        help="run the recorder's background work in threads or in a child process",
    )
    parser.add_argument("--out", help="also write the combined outputs (.jsonl or .parquet)")
    parser.add_argument("--format", dest="format_name", help="output format (jsonl, parquet)")
    parser.add_argument(
        "--on-error",
        choices=ERROR_POLICIES,
        default="raise",
        help="when a feature raises: stop (raise) or count and continue (skip)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress line and no summary (errors only)"
    )
    parser.set_defaults(handler=handle)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[list[str]]:
    """SIGTERM and SIGHUP (``docker stop``, ``systemctl stop``, a closed terminal) stop the
    recording cleanly, like Ctrl-C: everything acknowledged is written, the session closed,
    ``--out`` published. Yields the list of the signals received."""
    received: list[str] = []

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(received[-1])

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[signum] = signal.signal(signum, interrupt)
        except ValueError:  # not the main thread: leave the handlers alone
            break
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def handle(args: argparse.Namespace) -> int:
    """Record, then print the run's and the recording's summaries to stderr."""
    with stop_signals_interrupt() as received:
        return _handle(args, received)


def _handle(args: argparse.Namespace, received: list[str]) -> int:
    import attrs

    from featurizer._config import construct_features_from_configs
    from featurizer.storage import select_features

    check_output(args.out)
    config = load(args)
    plugins = get_plugins()
    # Everything that can be wrong with the config fails here, before the root is touched.
    select_features(config, construct_features_from_configs(config, plugins), args.store)
    settings = config.storage or StorageSettings()
    changes = {
        name: value
        for name, value in (
            ("compactor", args.compactor),
            ("block_size", args.block_size),
            ("bucket", args.bucket),
            ("sync_interval", args.sync_interval),
            ("writer", args.writer),
        )
        if value is not None
    }
    if changes:
        config = attrs.evolve(config, storage=attrs.evolve(settings, **changes))
    options = RunOptions(
        emitter=args.emitter,
        max_events=args.max_events,
        duration=args.duration,
        seed=args.seed,
        pace=args.pace,
        error_policy=args.on_error,
    )
    root = resolve_root(config.storage, config_path=config.path, override=args.storage)
    progress = ProgressLine(sys.stderr, total=args.max_events, enabled=not args.quiet)
    try:
        with Storage(root) as storage:
            summary = record(
                config,
                options,
                storage,
                plugins=plugins,
                features_to_store=args.store,
                sink_factory=(
                    (lambda: make_sink(plugins, args.out, args.format_name)) if args.out else None
                ),
                progress=progress.update,
            )
    finally:
        progress.close()
    if not args.quiet:
        write(summary.run.describe(), stream=sys.stderr)
        write(summary.describe(), stream=sys.stderr)
        if args.out:
            write(f"wrote {summary.run.outputs_out:,} rows to {args.out}", stream=sys.stderr)
    if summary.run.stopped_by == "interrupted":
        if received:  # a service manager asked to stop: a clean stop
            write(f"featurizer: stopped by {received[0]}; the session is closed", stream=sys.stderr)
            return 0
        write("featurizer: interrupted (everything recorded was written)", stream=sys.stderr)
        return 130
    return 0
