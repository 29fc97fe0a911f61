"""Helpers shared by CLI commands."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from featurizer._config import FeaturizerConfig
from featurizer._errors import FeaturizerError
from featurizer._plugins import Plugins
from featurizer._sinks import Sink, check_output_file

__all__ = [
    "ProgressLine",
    "add_config_argument",
    "add_emitter_option_argument",
    "check_output",
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


def _key_value(value: str) -> tuple[str, str]:
    key, sep, text = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    return key.strip(), text


def add_emitter_option_argument(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--emitter-option KEY=VALUE`` (``args.emitter_settings``, a dict)."""
    parser.add_argument(
        "--emitter-option",
        dest="emitter_settings",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="an option for the emitters (e.g. directory=data/); repeat it; each must be "
        "declared by an emitter of the run (featurizer plugins --verbose lists them)",
    )


def load(args: argparse.Namespace) -> FeaturizerConfig:
    """Load the CONFIG argument."""
    return FeaturizerConfig.from_yaml(args.config)


def check_output(out: str | Path | None) -> None:
    """Check ``--out`` before any work: not a directory, in an existing writable directory.

    :param out: the ``--out`` value (``None``: standard output, always fine).
    :raises FeaturizerError: one line naming the path and how to fix it.
    """
    if out is not None:
        check_output_file(out)


def make_sink(plugins: Plugins, out: str | None, format_name: str | None) -> Sink:
    """The sink for ``--out``/``--format``: chosen by name, else by the file's suffix.

    The output path is checked first (see :func:`check_output`), whatever the sink.
    """
    check_output(out)
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


class ProgressLine:
    """A live progress line for long commands, on a terminal only (rich).

    Shows the input events (against ``total`` when known, as a bar), the rows written, the
    events per second and the elapsed time, refreshed at most every ``interval`` seconds and
    cleared when closed, so that the summary printed afterwards stands alone. It prints nothing
    when disabled (``--quiet``) or when ``stream`` is not a terminal (a pipe, a file, CI logs).

    :param stream: where to draw (standard error for the CLI).
    :param total: the input events expected (``--max-events``), or ``None``.
    :param enabled: ``False`` for ``--quiet``; a non-terminal stream disables it too.
    :param interval: seconds between refreshes.
    :param clock: a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int | None,
        enabled: bool = True,
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled and bool(getattr(stream, "isatty", lambda: False)())
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._next = self._started
        self._progress: Any = None
        self._task: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            columns: list[Any] = [TextColumn("[bold]{task.description}")]
            if total is not None:
                columns.append(BarColumn())
            columns += [TextColumn("{task.fields[counts]}"), TimeElapsedColumn()]
            self._progress = Progress(
                *columns,
                console=Console(file=stream, force_terminal=True),
                transient=True,
                auto_refresh=False,
            )
            self._task = self._progress.add_task("running", total=total, counts="starting")
            self._progress.start()

    def update(self, events: int | None, rows: int) -> None:
        """Report the counts so far (``events`` ``None`` when not known while running, as for
        workers in other processes); redraws when ``interval`` passed since the last draw."""
        if self._progress is None:
            return
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        if events is None:
            self._progress.update(self._task, counts=f"rows out: {rows:,}")
        else:
            elapsed = now - self._started
            rate = events / elapsed if elapsed > 0 else 0.0
            self._progress.update(
                self._task,
                completed=events,
                counts=f"events in: {events:,}  rows out: {rows:,}  events/s: {rate:,.0f}",
            )
        self._progress.refresh()

    def close(self) -> None:
        """Clear the line (safe to call twice)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
