"""``featurizer new-plugin NAME``: scaffold a plugin distribution that passes its own tests."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from featurizer._errors import FeaturizerError
from featurizer.cli._common import write
from featurizer.cli._new_plugin_files import plugin_files

__all__ = ["register"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register(commands: Any) -> None:
    """Add the ``new-plugin`` subcommand."""
    parser = commands.add_parser(
        "new-plugin",
        help="create a plugin project (a feature, an emitter, tests) to start from",
        description="Write featurizer-NAME/: pyproject.toml with the entry point, a feature, "
        "a CSV emitter, hypothesis tests, an example config and data. Its tests pass as "
        "generated.",
    )
    parser.add_argument("name", metavar="NAME", help="the plugin's name: lower case, a-z0-9_")
    parser.add_argument(
        "--directory",
        type=Path,
        help="where to create the project (default: ./featurizer-NAME); must not exist",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Write the project; refuse a bad name or an existing directory before writing."""
    name = args.name.replace("-", "_")
    if not _NAME.match(name):
        raise FeaturizerError(
            f"plugin name {args.name!r} is not valid: use lower-case letters, digits and "
            f"underscores, starting with a letter (e.g. 'my_csv')"
        )
    target: Path = args.directory or Path(f"featurizer-{name.replace('_', '-')}")
    if target.exists():
        raise FeaturizerError(f"cannot create {str(target)!r}: it already exists")
    if not target.parent.is_dir() and str(target.parent):
        raise FeaturizerError(
            f"cannot create {str(target)!r}: directory {str(target.parent)!r} does not exist"
        )
    for relative, content in plugin_files(name).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    write(f"created {target}/ (plugin {name!r}); try it without installing:", stream=sys.stderr)
    write(f"  cd {target}", stream=sys.stderr)
    write(
        f"  PYTHONPATH=. FEATURIZER_PLUGINS=featurizer_{name} featurizer run example.yaml "
        f"--emitter-option directory=data",
        stream=sys.stderr,
    )
    write("  PYTHONPATH=. python -m pytest", stream=sys.stderr)
    return 0
