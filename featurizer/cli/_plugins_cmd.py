"""``featurizer plugins``: what is installed and what each plugin provides."""

from __future__ import annotations

import argparse
from typing import Any

from featurizer._definitions import definition_name
from featurizer._plugins import get_plugins
from featurizer.cli._common import write


def register(commands: Any) -> None:
    """Add the ``plugins`` subcommand."""
    parser = commands.add_parser("plugins", help="list plugins, their distributions and hooks")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also list definitions, emitters and sinks"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print one block per plugin."""
    plugins = get_plugins()
    for info in plugins.describe():
        write(f"{info.name}  ({info.distribution} {info.version})")
        for hook in info.hooks:
            write(f"    {hook}")
    if args.verbose:
        write("data sources:")
        for name, source in sorted(plugins.data_source_definitions().items()):
            write(f"    {name:28} {source.description}")
        write("feature definitions:")
        for name, definition in sorted(plugins.feature_definitions().items()):
            params = ", ".join(f"{p}={spec.default!r}" for p, spec in definition.params.items())
            deps = ", ".join(
                f"{dep}:{definition_name(d)}" for dep, d in definition.dep_upstream_schema().items()
            )
            write(f"    {name:28} {definition.description} (deps: {deps}; params: {params or '-'})")
        write("emitters:")
        for name, spec in plugins.emitters().items():
            write(f"    {name:28} {spec.description} (serves {', '.join(spec.data_sources)})")
            for option in spec.emitter_class.declared_options:
                write(f"    {'':28}   --emitter-option {option.name}=...  {option.help}")
            # an emitter class may describe what it serves in detail, one line each
            describe = getattr(spec.emitter_class, "describe_support", None)
            for line in describe() if callable(describe) else ():
                write(f"        {line}")
        write("sinks:")
        for name, sink in sorted(plugins.sinks().items()):
            write(f"    {name:28} {sink.description}")
    return 0
