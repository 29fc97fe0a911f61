"""``featurizer validate CONFIG``: check a config without running it."""

from __future__ import annotations

import argparse
from typing import Any

from featurizer._config import construct_features_from_configs
from featurizer._graph import FeatureStreamGraph
from featurizer._plugins import get_plugins
from featurizer._runner import RunOptions, assign_emitters, check_sources
from featurizer.cli._common import add_config_argument, add_emitter_option_argument, load, write


def register(commands: Any) -> None:
    """Add the ``validate`` subcommand."""
    parser = commands.add_parser(
        "validate",
        help="check a config (definitions, params, dependencies, emitters) without running it",
    )
    add_config_argument(parser)
    parser.add_argument("--emitter", help="check that this emitter can serve every data source")
    add_emitter_option_argument(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Build the features and the graph, assign emitters, let them check their sources."""
    config = load(args)
    plugins = get_plugins()
    features = construct_features_from_configs(config, plugins)
    graph = FeatureStreamGraph(features)
    plan = assign_emitters(graph.get_ins(), plugins.emitters(), args.emitter)
    options = RunOptions(emitter=args.emitter, emitter_settings=dict(args.emitter_settings))
    check_sources(plan, plugins, options)
    write(f"{args.config}: ok: {len(graph.get_outs())} outputs, {len(graph.nodes())} nodes")
    for feature in graph.nodes():
        kind = "source" if feature.is_data_source else "feature"
        params = ", ".join(f"{k}={v!r}" for k, v in feature.params.items())
        write(
            f"  {kind:7} {feature.short_key}  {feature.name}  [{feature.definition_name}] {params}"
        )
    for emitter, sources in plan.items():
        write(f"  emitter {emitter}: {', '.join(source.name for source in sources)}")
    return 0
