"""``featurizer replay CONFIG``: offline features from stored data sources."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
import warnings
from typing import Any, TextIO

from featurizer._plugins import get_plugins
from featurizer._sinks import flatten_grouped
from featurizer.cli._common import add_config_argument, check_output, load, make_sink, write
from featurizer.cli._record_cmd import add_storage_argument
from featurizer.offline import PER_CHOICES, OfflineFeatureStreamGenerator
from featurizer.storage import HOLE_POLICIES, DataHoleWarning, Storage, format_ts, resolve_root

__all__ = ["Progress", "register"]


def _time(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"expected a finite time, got {value!r}")
        return number
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time such as 2024-01-01T00:00:00Z or epoch seconds, got "
            f"{value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _seconds(value: str) -> float:
    from featurizer._params import parse_duration

    if value.strip() in ("0", "0s"):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A progress line on long runs: events, events/s, percentage and ETA.

    Nothing is shown during the first ``delay`` seconds, so short runs stay quiet. On a
    terminal the line is redrawn in place every ``interval`` seconds; otherwise a full line is
    written every ``interval * 20`` seconds.

    :param total: the expected number of events (an upper bound), or 0 if unknown.
    :param stream: where to write (stderr).
    :param enabled: ``True``/``False`` force it on or off; ``None`` shows it on terminals only.
    :param delay: quiet seconds at the start.
    :param interval: seconds between redraws on a terminal.
    :param clock: the time source (tests pass a fake one).

    >>> import io
    >>> now = [0.0]
    >>> out = io.StringIO()
    >>> bar = Progress(1000, out, enabled=True, delay=1.0, clock=lambda: now[0])
    >>> now[0] = 2.0; bar.update(500)
    >>> out.getvalue().strip()
    'replayed 500 events (50.0%)  250 events/s  ETA 0:02'
    """

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        enabled: bool | None = None,
        delay: float = 2.0,
        interval: float = 0.5,
        clock: Any = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        tty = bool(getattr(stream, "isatty", lambda: False)())
        self.enabled = tty if enabled is None else enabled
        self.tty = tty
        self.delay = delay
        self.interval = interval if tty else interval * 20
        self.clock = clock
        self.started = clock()
        self._last = -math.inf
        self._shown = False

    def line(self, done: int) -> str:
        """The text for ``done`` events so far."""
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        text = f"replayed {done:,} events"
        if self.total:
            text += f" ({min(done / self.total, 1.0) * 100:.1f}%)"
        text += f"  {rate:,.0f} events/s"
        if self.total and rate > 0:
            text += f"  ETA {_format_duration(max(self.total - done, 0) / rate)}"
        return text

    def update(self, done: int) -> None:
        """Redraw if due."""
        if not self.enabled:
            return
        now = self.clock()
        if now - self.started < self.delay or now - self._last < self.interval:
            return
        self._last = now
        self._shown = True
        if self.tty:
            self.stream.write("\r" + self.line(done).ljust(72))
        else:
            self.stream.write(self.line(done) + "\n")
        self.stream.flush()

    def finish(self, done: int) -> None:
        """End the line (only if something was shown)."""
        if self.enabled and self._shown and self.tty:
            self.stream.write("\r" + self.line(done).ljust(72) + "\n")
            self.stream.flush()


def add_range_arguments(parser: argparse.ArgumentParser) -> None:
    """``--start``, ``--end``, ``--warmup``, ``--per`` and ``--holes`` of the commands that
    compute features over stored data (``replay``, ``backfill``)."""
    parser.add_argument("--start", type=_time, help="ISO-8601 time or epoch seconds")
    parser.add_argument("--end", type=_time, help="ISO-8601 time or epoch seconds (exclusive)")
    parser.add_argument(
        "--warmup",
        type=_seconds,
        help="seconds of data computed before --start to warm windowed features up "
        "(default: the config's warmup, else derived from the features' windows)",
    )
    parser.add_argument(
        "--per",
        choices=PER_CHOICES,
        default="event",
        help="one row per input event, or per input timestamp",
    )
    parser.add_argument(
        "--holes",
        choices=HOLE_POLICIES,
        default="warn",
        help="what to do about time the data sources were not recorded for",
    )


def register(commands: Any) -> None:
    """Add the ``replay`` subcommand."""
    parser = commands.add_parser(
        "replay",
        help="compute features offline from stored data sources",
        description="Replay the data sources of CONFIG stored by `featurizer record` over "
        "--start..--end (default: the config's start_date..end_date, else everything) through "
        "the same feature graph that runs live, and write the combined feature vectors "
        "(JSON Lines to stdout by default).",
    )
    add_config_argument(parser)
    add_storage_argument(parser)
    add_range_arguments(parser)
    parser.add_argument("--out", help="output file (.jsonl or .parquet); stdout when omitted")
    parser.add_argument("--format", dest="format_name", help="output format (jsonl, parquet)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show progress on stderr",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show progress"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Replay and write the rows; progress and a summary go to stderr."""
    check_output(args.out)
    config = load(args)
    plugins = get_plugins()
    root = resolve_root(config.storage, config_path=config.path, override=args.storage)
    started = time.perf_counter()
    with (
        Storage.open(root, readonly=True) as storage,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always", DataHoleWarning)
        generator = OfflineFeatureStreamGenerator(
            config,
            storage,
            start=args.start,
            end=args.end,
            warmup=args.warmup,
            per=args.per,
            holes=args.holes,
            plugins=plugins,
        )
        for warning in caught:
            write(f"featurizer: warning: {warning.message}", stream=sys.stderr)
        replay = generator.replay
        if replay.data_end is not None:
            write(
                f"featurizer: session {replay.recording} is still recording: the data ends at "
                f"{format_ts(replay.data_end)}, where every data source has committed its events",
                stream=sys.stderr,
            )
        try:
            sink = make_sink(plugins, args.out, args.format_name)
        except BaseException:
            generator.close()
            raise
        bar = Progress(generator.total_events, sys.stderr, enabled=args.progress)
        rows = 0
        ok = False
        try:
            while generator.has_next():
                sink.write_row(flatten_grouped(generator.next()))
                rows += 1
                if not rows & 0x3FF:
                    bar.update(generator.events_in)
            ok = True
        finally:
            generator.close()
            sink.close(ok=ok)
        bar.finish(generator.events_in)
    elapsed = time.perf_counter() - started
    rate = generator.events_in / elapsed if elapsed > 0 else 0.0
    write(
        f"events in: {generator.events_in:,}  outputs out: {rows:,}  elapsed: {elapsed:.2f} s  "
        f"events/s: {rate:,.0f}  holes: {len(generator.holes)}",
        stream=sys.stderr,
    )
    if args.out:
        write(f"wrote {rows:,} rows to {args.out}", stream=sys.stderr)
    return 0
