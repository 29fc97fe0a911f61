"""Helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from featurizer._config import FeaturizerConfig
from featurizer._errors import FeaturizerError
from featurizer._plugins import Plugins
from featurizer._sinks import Sink

__all__ = [
    "add_config_argument",
    "load",
    "make_sink",
    "positive_float",
    "positive_int",
    "write",
]


def positive_int(value: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The positional CONFIG argument."""
    parser.add_argument("config", type=Path, metavar="CONFIG", help="a featurizer YAML config")


def load(args: argparse.Namespace) -> FeaturizerConfig:
    """Load the CONFIG argument."""
    return FeaturizerConfig.from_yaml(args.config)


def make_sink(plugins: Plugins, out: str | None, format_name: str | None) -> Sink:
    """The sink for ``--out``/``--format``: chosen by name, else by the file's suffix."""
    sinks = plugins.sinks()
    if format_name is not None:
        if format_name not in sinks:
            raise FeaturizerError(
                f"unknown output format {format_name!r}; registered: {', '.join(sorted(sinks))}"
            )
        spec = sinks[format_name]
    elif out is None:
        spec = sinks["jsonl"]
    else:
        suffix = Path(out).suffix.lower()
        matches = [s for s in sinks.values() if suffix in s.suffixes]
        if not matches:
            known = ", ".join(sorted({x for s in sinks.values() for x in s.suffixes}))
            raise FeaturizerError(
                f"cannot tell the output format of {out!r} from its suffix (known: {known}); "
                f"pass --format"
            )
        spec = matches[0]
    sink: Sink = spec.factory(out)
    return sink


def write(text: str, *, stream: Any = None) -> None:
    """Write a line of user-facing output (stdout by default)."""
    (stream or sys.stdout).write(text + "\n")
