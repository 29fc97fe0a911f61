"""``featurizer plot FEATURES.parquet|FEATURES.jsonl|CONFIG -o plot.png``: features over time."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from featurizer._errors import FeaturizerError
from featurizer.cli._common import add_emitter_option_argument, write

__all__ = ["register"]

DEFAULT_MAX_EVENTS = 20_000


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def register(commands: Any) -> None:
    """Add the ``plot`` subcommand."""
    parser = commands.add_parser(
        "plot",
        help="plot features over time from a run's output file or by running a config",
        description="Draw features over time, one panel per feature on a shared time axis. "
        "INPUT is an output file of `featurizer run` (.parquet or .jsonl) or a config (.yaml), "
        "which is run in memory with its data sources' emitters, like `featurizer run` "
        "(or --emitter NAME), bounded by --max-events.",
    )
    parser.add_argument(
        "input", type=Path, metavar="INPUT", help="FEATURES.parquet, FEATURES.jsonl or CONFIG.yaml"
    )
    parser.add_argument(
        "-o", "--out", required=True, help="the image to write (.png, .svg or .pdf)"
    )
    parser.add_argument(
        "--feature",
        dest="features",
        action="append",
        metavar="NAME",
        help="a feature to plot (repeat for several; default: every feature with numbers)",
    )
    parser.add_argument("--start", help="first time shown: ISO date/time (UTC) or epoch seconds")
    parser.add_argument("--end", help="last time shown: ISO date/time (UTC) or epoch seconds")
    parser.add_argument("--title", help="a caption above the panels")
    config_group = parser.add_argument_group("when INPUT is a config")
    config_group.add_argument(
        "--emitter",
        help="emitter for every data source (default: each source's own, as `featurizer run`)",
    )
    config_group.add_argument(
        "--storage", metavar="ROOT", help="storage root replayed by --emitter offline"
    )
    add_emitter_option_argument(config_group)
    config_group.add_argument(
        "--max-events",
        type=_positive_int,
        default=DEFAULT_MAX_EVENTS,
        help=f"input events to run (default: {DEFAULT_MAX_EVENTS:,})",
    )
    config_group.add_argument("--seed", type=int, default=0, help="seed for generating emitters")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Read or compute the rows, draw them, write the image all at once."""
    from featurizer.viz import (
        check_writable,
        load_rows,
        parse_time,
        plot_features,
        save_figure,
        series_from_rows,
    )
    from featurizer.viz._plot import CONFIG_SUFFIXES

    check_writable(args.out)
    if Path(args.out).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise FeaturizerError(
            f"cannot tell the image format of {args.out!r}: use a .png, .svg or .pdf file name"
        )
    start = parse_time(args.start) if args.start is not None else None
    end = parse_time(args.end) if args.end is not None else None
    if start is not None and end is not None and not start < end:
        raise FeaturizerError(f"--start {args.start!r} must be before --end {args.end!r}")
    if args.input.suffix.lower() in CONFIG_SUFFIXES:
        rows, emitters, outputs = _run_config(args)
        origin = f"{args.input} ({args.max_events:,} events from {', '.join(emitters)})"
    else:
        rows, outputs = load_rows(args.input), []
        origin = str(args.input)
    if not rows:
        raise FeaturizerError(f"{origin}: there are no feature rows to plot")
    rank = {name: index for index, name in enumerate(outputs)}
    # Panels in config order (rows of a config run come in the order features first produced).
    series = sorted(series_from_rows(rows), key=lambda one: rank.get(one.feature, len(rank)))
    figure = plot_features(
        series, features=args.features, start=start, end=end, title=args.title or origin
    )
    save_figure(figure, args.out)
    panels = len(figure.axes)
    write(
        f"wrote {args.out}: {panels} panel{'s' if panels != 1 else ''} from {origin}",
        stream=sys.stderr,
    )
    return 0


def _run_config(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Run the config with its emitters; the rows, the emitters used and the outputs in order."""
    from featurizer._config import FeaturizerConfig, construct_features_from_configs
    from featurizer._graph import FeatureStreamGraph
    from featurizer._plugins import get_plugins
    from featurizer._runner import RunOptions, assign_emitters
    from featurizer.viz import rows_from_config

    config = FeaturizerConfig.from_yaml(args.input)
    plugins = get_plugins()
    options = RunOptions(
        emitter=args.emitter,
        max_events=args.max_events,
        seed=args.seed,
        emitter_options={"storage": args.storage} if args.storage else {},
        emitter_settings=dict(args.emitter_settings),
    )
    graph = FeatureStreamGraph(construct_features_from_configs(config, plugins))
    plan = assign_emitters(graph.get_ins(), plugins.emitters(), options.emitter)
    rows = rows_from_config(config, options, plugins=plugins)
    return rows, list(plan), [feature.name for feature in graph.get_outs()]
