"""``featurizer graph CONFIG``: draw the feature graph (or its worker plan) as Mermaid, DOT,
SVG or PNG."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from featurizer._config import construct_features_from_configs
from featurizer._errors import FeaturizerError
from featurizer._graph import FeatureStreamGraph
from featurizer._plugins import get_plugins
from featurizer.cli._common import add_config_argument, load, write

__all__ = ["register"]


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def register(commands: Any) -> None:
    """Add the ``graph`` subcommand."""
    from featurizer.viz import FORMATS

    parser = commands.add_parser(
        "graph",
        help="draw the feature graph of a config (mermaid, dot, svg, png)",
        description="Draw the feature graph of CONFIG: data sources, features and outputs, "
        "each node once. With --workers, draw the scale-out plan instead: one cluster per "
        "worker, cross-worker edges marked with their transport. SVG and PNG need Graphviz's "
        "`dot` program.",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--format",
        dest="picture_format",
        choices=FORMATS,
        help="output format (default: from the -o suffix, else mermaid)",
    )
    parser.add_argument(
        "-o", "--out", help="write to this file (all at once); standard output when omitted"
    )
    parser.add_argument("--title", help="a caption for the picture")
    parser.add_argument(
        "--workers", type=_positive_int, help="draw the plan over N workers (see featurizer plan)"
    )
    parser.add_argument(
        "--strategy",
        help="scaling strategy of the plan (default: single for 1 worker, else by_source)",
    )
    parser.add_argument(
        "--scaler", help="scaler whose default transport labels cross-worker edges (default: local)"
    )
    parser.add_argument("--transport", help="transport named on cross-worker edges")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Build the graph or plan and write its picture."""
    from featurizer.viz import check_writable, format_from_suffix, picture_bytes, write_atomically

    if args.out is not None:
        check_writable(args.out)
    picture_format = args.picture_format or (
        format_from_suffix(args.out) if args.out is not None else "mermaid"
    )
    if args.out is None and picture_format == "png" and sys.stdout.isatty():
        raise FeaturizerError("PNG is binary: write it to a file with -o FILE.png")
    config = load(args)
    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    subject: Any
    if args.workers is not None or args.strategy is not None:
        from featurizer.viz import describe_plan

        workers = args.workers or 1
        strategy = args.strategy or ("single" if workers == 1 else "by_source")
        subject = describe_plan(
            _build_plan(features, strategy, workers, plugins),
            transport=_transport_name(args, plugins),
            title=args.title,
        )
    else:
        if args.transport is not None or args.scaler is not None:
            raise FeaturizerError("--scaler and --transport apply to a plan: add --workers N")
        subject = FeatureStreamGraph(features)
    data = picture_bytes(subject, picture_format, title=args.title)
    if args.out is not None:
        write_atomically(args.out, data)
        write(f"wrote {picture_format} picture to {args.out}", stream=sys.stderr)
    elif picture_format in ("svg", "png"):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


def _transport_name(args: argparse.Namespace, plugins: Any) -> str:
    """The transport the run would use: ``--transport``, else the scaler's default."""
    from featurizer.scaling import registered_scalers

    transports = plugins.transports()
    if args.transport is not None:
        if args.transport not in transports:
            raise FeaturizerError(
                f"unknown transport {args.transport!r}; registered: "
                f"{', '.join(sorted(transports)) or 'none'}"
            )
        return str(args.transport)
    scalers = registered_scalers(plugins)
    name = args.scaler or "local"
    if name not in scalers:
        raise FeaturizerError(
            f"unknown scaler {name!r}; registered: {', '.join(sorted(scalers)) or 'none'}"
        )
    return str(scalers[name].default_transport)


def _build_plan(features: Any, strategy: str, workers: int, plugins: Any) -> Any:
    try:
        from featurizer.scaling import build_plan
    except ImportError as error:  # pragma: no cover - the scaling package ships with the core
        raise FeaturizerError(f"drawing a worker plan needs featurizer.scaling: {error}") from error
    return build_plan(features, strategy, workers, plugins)
