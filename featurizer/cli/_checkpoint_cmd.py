"""``featurizer checkpoint ls|info|verify DIR`` and the ``--checkpoint`` options of ``run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import attrs

from featurizer._config import FeaturizerConfig
from featurizer._errors import FeaturizerError
from featurizer._runner import RunOptions
from featurizer.checkpoint import (
    Checkpointer,
    CheckpointSettings,
    ScaledCheckpointer,
    inspect_directory,
    make_checkpointer,
    make_scaled_checkpointer,
    parse_every,
    verify_directory,
)
from featurizer.checkpoint._restarts import RESTARTS_FILE, RestartHistory
from featurizer.cli._common import write

__all__ = ["add_checkpoint_arguments", "checkpointed_from_args", "describe_metrics", "register"]


def _every(value: str) -> str:
    try:
        parse_every(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value


def _restarts(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected a number of restarts (0 or more), got {value!r}"
        )
    return int(value)


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint DIR``, ``--checkpoint-every``, ``--fresh`` (on ``featurizer run``)."""
    parser.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="checkpoint into DIR and resume from it (exactly-once output; needs --out "
        "FILE.jsonl or FILE.parquet)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_every,
        metavar="INTERVAL",
        help="time ('10s', the default) or input events ('100000') between checkpoints",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="with --checkpoint: erase DIR's checkpoints and input log and start over",
    )
    parser.add_argument(
        "--max-restarts",
        type=_restarts,
        metavar="N",
        help="with --checkpoint and --scaler: restart the workers from the last checkpoint at "
        "most N times in a row (no checkpoint committed in between, across driver restarts) "
        "after a worker died, then fail (default 3)",
    )


def checkpointed_from_args(
    args: argparse.Namespace, config: FeaturizerConfig, options: RunOptions
) -> Checkpointer | ScaledCheckpointer | None:
    """The checkpointer of a ``run`` with ``--checkpoint`` (or the config's ``checkpoint:``
    section; its sink is ``checkpointer.sink``); ``None`` without either.

    :raises FeaturizerError: one line, for options that cannot be checkpointed.
    """
    settings = config.checkpoint
    if settings is None and args.checkpoint is None:
        for option, value in (
            ("--checkpoint-every", args.checkpoint_every),
            ("--fresh", args.fresh or None),
            ("--max-restarts", getattr(args, "max_restarts", None)),
        ):
            if value is not None:
                raise FeaturizerError(f"{option} needs --checkpoint DIR (or a checkpoint: section)")
        return None
    # The options win over the config's section; what they do not set is kept from it.
    base = settings or CheckpointSettings(directory=args.checkpoint)
    changes: dict[str, Any] = {"fresh": bool(args.fresh)}
    if args.checkpoint is not None:
        changes["directory"] = Path(args.checkpoint)
    if args.checkpoint_every is not None:
        changes["every_seconds"], changes["every_events"] = parse_every(args.checkpoint_every)
    if getattr(args, "max_restarts", None) is not None:
        changes["max_restarts"] = args.max_restarts
    settings = attrs.evolve(base, **changes)
    if getattr(args, "scaler", None):
        if getattr(args, "late_out", None):
            raise FeaturizerError(
                "--late-out is not published at checkpoints (a resumed run would write it "
                "anew): drop it with --checkpoint; the summary still counts late events, "
                "exactly once"
            )
        return make_scaled_checkpointer(
            settings,
            args.out,
            options,
            worker_outputs=getattr(args, "outputs", "driver") == "workers",
            format_name=args.format_name,
        )
    elif getattr(args, "max_restarts", None) is not None:
        raise FeaturizerError(
            "--max-restarts bounds the restarts of a scaled run's workers: add --scaler (a "
            "single-process run is restarted by whoever runs it)"
        )
    if args.out is None:
        raise FeaturizerError(
            "--checkpoint publishes its output to a file at each checkpoint: pass --out "
            "FILE.jsonl or FILE.parquet (standard output cannot take a row back)"
        )
    return make_checkpointer(settings, args.out, options, format_name=args.format_name)


def describe_metrics(checkpointer: Checkpointer | ScaledCheckpointer) -> str:
    """One line about checkpointing for the run summary."""
    m = checkpointer.metrics
    published = (
        f"published: {checkpointer.sink.rows:,} rows in total  "
        if checkpointer.sink is not None
        else ""
    )
    return (
        f"checkpoints: {m.checkpoints:,} committed in {checkpointer.settings.directory} (last "
        f"{m.last_duration_seconds * 1000:.1f} ms, {m.last_state_bytes:,} bytes)  "
        f"{published}restarts: "
        f"{m.restarts}  replayed: {m.replayed_events:,} events in {m.recovery_seconds:.2f} s  "
        f"gaps: {m.gaps}"
    )


def register(commands: Any) -> None:
    """Add the ``checkpoint`` command group."""
    parser = commands.add_parser(
        "checkpoint",
        help="list, show and verify the checkpoints of a checkpointed run",
        description="Look into a checkpoint directory written by `featurizer run --checkpoint`.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", help="list the committed checkpoints")
    ls.add_argument("directory", metavar="DIR", type=Path)
    ls.set_defaults(handler=_ls)
    info = actions.add_parser("info", help="show a checkpoint's sources, output and features")
    info.add_argument("directory", metavar="DIR", type=Path)
    info.add_argument("--id", type=int, help="the checkpoint (default: the newest)")
    info.set_defaults(handler=_info)
    verify = actions.add_parser("verify", help="check every checkpoint, the output and the log")
    verify.add_argument("directory", metavar="DIR", type=Path)
    verify.set_defaults(handler=_verify)


def _ls(args: argparse.Namespace) -> int:
    report = inspect_directory(args.directory)
    write(f"{report.directory}: {len(report.checkpoints)} checkpoint(s)")
    if report.checkpoints:
        write(f"{'ID':>6}  {'EVENTS IN':>19}  {'ROWS':>17}  {'STATE':>12}    DURATION")
    for info in report.checkpoints:
        write(info.describe())
    return 0


def _info(args: argparse.Namespace) -> int:
    report = inspect_directory(args.directory)
    chosen = [c for c in report.checkpoints if args.id is None or c.id == args.id]
    # a scaled run's worker restarts count across its driver processes, even before a commit
    restarts = args.directory / RESTARTS_FILE
    if not chosen and (args.id is not None or not restarts.exists()):
        known = ", ".join(str(c.id) for c in report.checkpoints) or "none"
        raise FeaturizerError(
            f"{str(args.directory)!r} has no checkpoint {args.id if args.id else ''}"
            f" (checkpoints: {known})".replace("  ", " ")
        )
    for line in chosen[-1].details() if chosen else [f"{args.directory}: no checkpoint yet"]:
        write(line)
    if restarts.exists():
        for line in RestartHistory(args.directory).describe():
            write(f"  {line}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    report = verify_directory(args.directory)
    for problem in report.problems:
        write(f"  {problem}", stream=sys.stdout)
    write(report.describe())
    return 0 if report.ok else 1
