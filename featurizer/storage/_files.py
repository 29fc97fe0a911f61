"""Files of a storage root: layout, atomic publication, checksums and the writer lock."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import re
from pathlib import Path
from typing import IO

from featurizer.storage._errors import StorageLockedError

__all__ = [
    "CATALOG_NAME",
    "WriterLock",
    "block_relative_path",
    "checksum",
    "fsync_dir",
    "publish",
]

CATALOG_NAME = "catalog.sqlite"
BLOCKS_DIR = "blocks"
TMP_DIR = "tmp"
WAL_DIR = "wal"
LOCK_NAME = "writer.lock"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def checksum(data: bytes | memoryview) -> str:
    """The checksum stored for a block: ``sha256:`` and the hex digest of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def block_relative_path(definition: str, key: str, first_ts: float, first_seq: int) -> str:
    """Where a block lives under the root: partitioned by series and by UTC day.

    ``blocks/<definition>/<key[:16]>/date=YYYY-MM-DD/<first_seq>.parquet``

    >>> block_relative_path("ticker", "ab" * 32, 1704067200.0, 7)
    'blocks/ticker/abababababababab/date=2024-01-01/00000000000000000007.parquet'
    """
    try:
        day = dt.datetime.fromtimestamp(first_ts, tz=dt.UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        day = "unknown"
    safe = _UNSAFE.sub("_", definition).strip("_") or "series"
    return f"{BLOCKS_DIR}/{safe}/{key[:16]}/date={day}/{first_seq:020d}.parquet"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError as error:  # pragma: no cover - filesystems that cannot sync directories
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def publish(root: Path, relative: str, data: bytes | memoryview) -> None:
    """Write ``data`` to ``root/relative`` atomically.

    The bytes go to a temporary file under ``root/tmp``, which is fsynced and renamed into
    place, and the directory is fsynced: the file appears complete or not at all.

    :param root: the storage root.
    :param relative: the target path under the root.
    :param data: the file's bytes.
    """
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = root / TMP_DIR
    tmp_dir.mkdir(exist_ok=True)
    tmp = tmp_dir / f"{target.name}.{os.getpid()}.partial"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


class WriterLock:
    """An exclusive, advisory lock on a storage root held by its one writer.

    The lock is an ``flock`` on ``root/writer.lock``, released by the kernel when the process
    dies (even by SIGKILL), so a crashed recorder never leaves a stale lock.

    :param root: the storage root.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        :raises StorageLockedError: naming the process that holds it.
        """
        import fcntl

        # Held open for the writer's lifetime: the lock lives as long as the descriptor.
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StorageLockedError(
                f"another process (pid {holder}) is writing to this storage root; only one "
                f"recorder may write at a time",
                path=str(self.path),
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Release the lock (safe to call twice)."""
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._handle is not None
