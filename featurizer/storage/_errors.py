"""Storage errors and warnings: each names the series, the block and the path it is about."""

from __future__ import annotations

from featurizer._errors import FeaturizerError, FeaturizerWarning

__all__ = [
    "CorruptBlockError",
    "DataHoleWarning",
    "MissingBlockError",
    "NoDataError",
    "OverlapError",
    "SchemaMismatchError",
    "StorageError",
    "StorageLockedError",
]


class StorageError(FeaturizerError):
    """Something is wrong with a storage root, a series or one of its blocks.

    :param message: what is wrong and how to fix it.
    :param series: the series' readable name (or key), when the error is about one.
    :param block: the block's catalog id, when the error is about one.
    :param path: the file concerned (block file, catalog, WAL segment).
    """

    def __init__(
        self,
        message: str,
        *,
        series: str | None = None,
        block: int | None = None,
        path: str | None = None,
    ) -> None:
        self.series = series
        self.block = block
        self.path = path
        self.reason = message
        where = []
        if series is not None:
            where.append(f"series {series!r}")
        if block is not None:
            where.append(f"block {block}")
        if path is not None:
            where.append(f"path {path!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class CorruptBlockError(StorageError):
    """A block file does not match its checksum, is truncated or is not valid Parquet."""


class MissingBlockError(StorageError):
    """A catalog row points at a block file that does not exist."""


class SchemaMismatchError(StorageError):
    """Stored data does not have the schema its series (or its definition) declares."""


class NoDataError(StorageError):
    """A series has no stored data in the requested time range (or is not stored at all)."""


class OverlapError(StorageError):
    """Two recordings of one series cover the same time: replaying both would duplicate data."""


class StorageLockedError(StorageError):
    """Another process holds the writer lock of a storage root."""


class DataHoleWarning(FeaturizerWarning):
    """A replayed range contains holes: times for which a series was not recorded."""
