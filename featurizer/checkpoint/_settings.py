"""Checkpoint settings: where, and how often (``--checkpoint``, ``--checkpoint-every``, the
``checkpoint:`` config section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from featurizer._errors import ConfigError
from featurizer._params import parse_duration

__all__ = ["DEFAULT_EVERY", "CheckpointSettings", "parse_every"]

DEFAULT_EVERY = 10.0
"""Seconds between checkpoints when no interval is given."""

DEFAULT_MAX_RESTARTS = 3
"""Times in a row (no checkpoint committed in between) a scaled run restarts its workers
after a worker died, before it fails."""


def parse_every(value: Any) -> tuple[float | None, int | None]:
    """``"10s"``/``"500ms"``/``2.5`` (seconds) or ``"100000"``/``100000`` (input events).

    A bare integer is a number of events; anything with a unit, or a float, is a duration.

    :returns: ``(seconds, None)`` or ``(None, events)``.
    :raises ValueError: for anything else, or a value that is not positive.

    >>> parse_every("10s"), parse_every("100000"), parse_every(0.5)
    ((10.0, None), (None, 100000), (0.5, None))
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10s' or a number of events, got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        events = int(value)
        if events < 1:
            raise ValueError(f"expected a positive number of events, got {value!r}")
        return None, events
    try:
        return parse_duration(value), None
    except ValueError:
        raise ValueError(
            f"expected a duration such as '10s' or a number of input events such as 100000, "
            f"got {value!r}"
        ) from None


@attrs.frozen(kw_only=True)
class CheckpointSettings:
    """Where a run checkpoints and how often.

    :param directory: the checkpoint directory (created if missing).
    :param every_seconds: wall-clock seconds between checkpoints.
    :param every_events: input events between checkpoints (instead of seconds).
    :param fresh: start over: erase the directory's checkpoints, log and segments instead of
        resuming.
    :param keep: committed checkpoints kept (older ones are deleted after a commit).
    :param sync_interval: acknowledgement latency of the input log, in seconds.
    :param log_rotate_events: input events after which the log moves to a new storage root
        (at a checkpoint), so that roots every kept checkpoint has consumed can be deleted.
    :param max_restarts: scaled runs: times the workers are restarted from the last
        checkpoint after a worker died without a checkpoint committed in between, counted
        across driver processes (see ``featurizer.checkpoint._restarts``), before the run
        fails.
    :param log_input: ``None`` (automatic) logs the input unless every emitter of the run
        (of a scaled run: of the worker) replays its input itself
        (:attr:`~featurizer.DataSourceEventEmitter.replays_input`), ``True`` always logs it.
        Not logging is never forced: a live emitter's events exist nowhere else.
    """

    directory: Path = attrs.field(converter=Path)
    every_seconds: float | None = DEFAULT_EVERY
    every_events: int | None = None
    fresh: bool = False
    keep: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    sync_interval: float = 0.1
    log_rotate_events: int = attrs.field(default=5_000_000, validator=attrs.validators.ge(1))
    max_restarts: int = attrs.field(default=DEFAULT_MAX_RESTARTS, validator=attrs.validators.ge(0))
    log_input: bool | None = attrs.field(default=None, validator=attrs.validators.in_((None, True)))

    @classmethod
    def from_every(
        cls, directory: str | Path, every: Any = None, **options: Any
    ) -> CheckpointSettings:
        """Settings from an interval as :func:`parse_every` reads it (``None``: the default)."""
        if every is None:
            return cls(directory=Path(directory), **options)
        seconds, events = parse_every(every)
        return cls(directory=Path(directory), every_seconds=seconds, every_events=events, **options)

    @classmethod
    def from_config_value(cls, value: Any, *, path: str | None = None) -> CheckpointSettings:
        """The ``checkpoint:`` section: a directory, or ``{dir: ..., every: ...}`` (also
        ``log_rotate``, ``max_restarts``, ``log_input: true``).

        A relative directory is relative to the config file's directory.

        :raises ConfigError: naming the field.
        """
        if isinstance(value, str | Path):
            value = {"dir": value}
        if not isinstance(value, dict):
            raise ConfigError(
                f"expected a directory or a mapping with 'dir' and 'every', got {value!r}",
                path=path,
                field="checkpoint",
            )
        unknown = sorted(set(value) - {"dir", "every", "log_rotate", "max_restarts", "log_input"})
        if unknown:
            raise ConfigError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; fields: 'dir', 'every', "
                f"'log_rotate', 'max_restarts', 'log_input'",
                path=path,
                field="checkpoint",
            )
        if not isinstance(value.get("dir"), str | Path) or not str(value["dir"]):
            raise ConfigError(
                "needs 'dir': the checkpoint directory", path=path, field="checkpoint.dir"
            )
        directory = Path(value["dir"]).expanduser()
        if path is not None and not directory.is_absolute():
            directory = Path(path).resolve().parent / directory
        rotate = value.get("log_rotate", 5_000_000)
        if isinstance(rotate, bool) or not isinstance(rotate, int) or rotate < 1:
            raise ConfigError(
                f"expected a positive number of input events, got {rotate!r}",
                path=path,
                field="checkpoint.log_rotate",
            )
        restarts = value.get("max_restarts", DEFAULT_MAX_RESTARTS)
        if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
            raise ConfigError(
                f"expected a number of restarts (0 or more), got {restarts!r}",
                path=path,
                field="checkpoint.max_restarts",
            )
        log_input = value.get("log_input")
        if log_input is not None and log_input is not True:
            raise ConfigError(
                f"expected true (always log the input) or null (log it unless every emitter "
                f"replays its input), got {log_input!r}",
                path=path,
                field="checkpoint.log_input",
            )
        try:
            return cls.from_every(
                directory,
                value.get("every"),
                log_rotate_events=rotate,
                max_restarts=restarts,
                log_input=log_input,
            )
        except ValueError as error:
            raise ConfigError(str(error), path=path, field="checkpoint.every") from None
