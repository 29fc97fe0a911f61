"""The ``storage`` section of a config, and where the storage root is."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from featurizer._errors import ConfigError
from featurizer._params import parse_duration
from featurizer.storage._compactors import Compactor, MemoryBasedCompactor, TimeBasedCompactor

__all__ = [
    "COMPACTORS",
    "DEFAULT_ROOT",
    "STORAGE_ENV",
    "StorageSettings",
    "parse_size",
    "resolve_root",
]

STORAGE_ENV = "FEATURIZER_STORAGE"
"""Environment variable naming the default storage root."""
DEFAULT_ROOT = "featurizer-storage"
"""The default root, relative to the current directory, when neither the config, the command
line nor :data:`STORAGE_ENV` names one."""
COMPACTORS = ("memory", "time")

_FIELDS = ("root", "compactor", "block_size", "bucket", "sync_interval", "writer")
WRITERS = ("thread", "process")
"""Where a recorder's background work runs (see ``StorageSettings.writer``)."""
DEFAULT_WRITER = "process" if sys.platform.startswith("linux") else "thread"
"""A child process where forking is safe and cheap (Linux), threads elsewhere."""
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}


def parse_size(value: Any) -> int:
    """Parse a size in bytes: a number, or a string such as ``"512KiB"``, ``"16MiB"``, ``"1GB"``.

    :raises ValueError: saying what was expected.

    >>> parse_size("16MiB"), parse_size(1000), parse_size("2 kB")
    (16777216, 1000, 2000)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 16MiB, received {value!r}")
    if isinstance(value, int | float):
        size = int(value)
    else:
        match = _SIZE.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a size such as 1048576, '512KiB' or '16MiB', received {value!r}"
            )
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"expected a positive size, received {value!r}")
    return size


@attrs.frozen(kw_only=True)
class StorageSettings:
    """Where and how ``featurizer record`` stores, and where replays read.

    :param root: the storage root; a relative path is relative to the config file's directory.
        ``None``: ``$FEATURIZER_STORAGE``, else ``./featurizer-storage``.
    :param compactor: ``memory`` (cut blocks by in-memory size) or ``time`` (one block per
        event-time bucket).
    :param block_size: the in-memory size of a block in bytes (a cap for ``time``).
    :param bucket: the bucket length in seconds for ``time``.
    :param sync_interval: seconds between WAL flushes (the acknowledgement latency).
    :param writer: where the recorder's background work (encoding, WAL, blocks, catalog)
        runs: ``thread`` (threads of the recording's process) or ``process`` (a child
        process forked when recording starts: the recording's thread then shares the GIL
        with almost nothing; POSIX only). See :class:`~featurizer.storage.BlockWriter`'s
        ``process``. Default: ``process`` on Linux, ``thread`` elsewhere.
    """

    root: str | None = None
    compactor: str = attrs.field(default="memory", validator=attrs.validators.in_(COMPACTORS))
    block_size: int = 16 * 1024 * 1024
    bucket: float = 3600.0
    sync_interval: float = 0.1
    writer: str = attrs.field(default=DEFAULT_WRITER, validator=attrs.validators.in_(WRITERS))

    @classmethod
    def from_config_value(cls, value: Any, *, path: str | None = None) -> StorageSettings:
        """Parse the ``storage`` value of a config: a path, or a mapping of the fields.

        :raises ConfigError: naming the file and the field, listing the valid fields.
        """
        if value is None:
            return cls()
        if isinstance(value, str):
            if not value:
                raise ConfigError("expected a directory path", path=path, field="storage")
            return cls(root=value)
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"expected a directory path or a mapping with fields {', '.join(_FIELDS)}; "
                f"received {value!r}",
                path=path,
                field="storage",
            )
        unknown = sorted(set(value) - set(_FIELDS))
        if unknown:
            raise ConfigError(
                f"unknown field (valid: {', '.join(_FIELDS)})",
                path=path,
                field=f"storage.{unknown[0]}",
            )
        values: dict[str, Any] = {}
        root = value.get("root")
        if root is not None:
            if not isinstance(root, str) or not root:
                raise ConfigError(
                    f"expected a directory path, received {root!r}", path=path, field="storage.root"
                )
            values["root"] = root
        for name, choices in (("compactor", COMPACTORS), ("writer", WRITERS)):
            choice = value.get(name)
            if choice is None:
                continue
            if choice not in choices:
                raise ConfigError(
                    f"expected one of {', '.join(map(repr, choices))}, received {choice!r}",
                    path=path,
                    field=f"storage.{name}",
                )
            values[name] = choice
        for name, parse in (
            ("block_size", parse_size),
            ("bucket", parse_duration),
            ("sync_interval", parse_duration),
        ):
            if value.get(name) is not None:
                try:
                    values[name] = parse(value[name])
                except ValueError as error:
                    raise ConfigError(str(error), path=path, field=f"storage.{name}") from None
        return cls(**values)

    def make_compactor(self) -> Compactor:
        """The configured compactor."""
        if self.compactor == "time":
            return TimeBasedCompactor(bucket=self.bucket, max_block_bytes=self.block_size)
        return MemoryBasedCompactor(max_block_bytes=self.block_size)


def resolve_root(
    settings: StorageSettings | None,
    *,
    config_path: str | None = None,
    override: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The storage root to use, by precedence: ``override`` (``--storage``), the config's
    ``storage.root`` (relative to the config file), ``$FEATURIZER_STORAGE``,
    ``./featurizer-storage``.

    >>> resolve_root(StorageSettings(root="data"), config_path="/cfg/a.yaml").as_posix()
    '/cfg/data'
    """
    if override is not None:
        return Path(override).expanduser()
    if settings is not None and settings.root is not None:
        root = Path(settings.root).expanduser()
        if not root.is_absolute() and config_path is not None:
            root = Path(config_path).parent / root
        return root
    env = os.environ if environ is None else environ
    if env.get(STORAGE_ENV):
        return Path(env[STORAGE_ENV]).expanduser()
    return Path(DEFAULT_ROOT)
