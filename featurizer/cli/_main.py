"""Entry point: parse arguments and dispatch to one command module."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from featurizer._errors import FeaturizerError

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from featurizer.cli import (
        _backfill_cmd,
        _checkpoint_cmd,
        _graph_cmd,
        _new_plugin_cmd,
        _plan_cmd,
        _plot_cmd,
        _plugins_cmd,
        _record_cmd,
        _replay_cmd,
        _run_cmd,
        _storage_cmd,
        _validate_cmd,
    )

    parser = argparse.ArgumentParser(
        prog="featurizer", description="Define market-data features once; run them anywhere."
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        _run_cmd,
        _validate_cmd,
        _plugins_cmd,
        _record_cmd,
        _replay_cmd,
        _backfill_cmd,
        _storage_cmd,
        _checkpoint_cmd,
        _plan_cmd,
        _graph_cmd,
        _plot_cmd,
        _new_plugin_cmd,
    ):
        module.register(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("featurizer")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _closed_pipe() -> int:
    """The reader of stdout went away (``featurizer run ... | head``): exit quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except FeaturizerError as error:
        if isinstance(error.__cause__, BrokenPipeError):
            return _closed_pipe()
        sys.stderr.write(f"featurizer: error: {error}\n")
        return 1
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt:
        sys.stderr.write("featurizer: interrupted\n")
        return 130
