"""Files of a storage root: layout, atomic publication, checksums and the writer lock."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import IO

from featurizer._pid_lock import take_pid_lock
from featurizer.storage._errors import StorageError, StorageLockedError

__all__ = [
    "CATALOG_NAME",
    "IDENTITY_NAME",
    "QUARANTINE_DIR",
    "WriterLock",
    "block_files",
    "block_relative_path",
    "checksum",
    "fsync_dir",
    "make_dirs",
    "new_storage_id",
    "publish",
    "quarantine",
    "read_identity",
    "write_identity",
]

CATALOG_NAME = "catalog.sqlite"
IDENTITY_NAME = "storage.json"
BLOCKS_DIR = "blocks"
TMP_DIR = "tmp"
WAL_DIR = "wal"
QUARANTINE_DIR = "quarantine"
LOCK_NAME = "writer.lock"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def checksum(data: bytes | memoryview) -> str:
    """The checksum stored for a block: ``sha256:`` and the hex digest of its bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def block_relative_path(
    definition: str, key: str, first_ts: float, first_seq: int, session: str = "", tag: str = ""
) -> str:
    """Where a block lives under the root: partitioned by series and by UTC day.

    ``blocks/<definition>/<key[:16]>/date=YYYY-MM-DD/<first_seq>-<session>-<tag>.parquet``:
    the session id (unique per recording) and a random tag make block names unique across
    catalogs and attempts, so a block can never be overwritten by another (of a rebuilt,
    restored or re-created catalog, or one recovery writes where a crashed writer had left an
    uncommitted file).

    >>> block_relative_path("ticker", "ab" * 32, 1704067200.0, 7, "s1", "x")
    'blocks/ticker/abababababababab/date=2024-01-01/00000000000000000007-s1-x.parquet'
    """
    try:
        day = dt.datetime.fromtimestamp(first_ts, tz=dt.UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        day = "unknown"
    safe = _UNSAFE.sub("_", definition).strip("_") or "series"
    suffix = "".join(f"-{_UNSAFE.sub('_', part)}" for part in (session, tag) if part)
    return f"{BLOCKS_DIR}/{safe}/{key[:16]}/date={day}/{first_seq:020d}{suffix}.parquet"


def block_files(root: Path) -> list[Path]:
    """Every block file under the root's ``blocks/`` directory, sorted."""
    blocks = root / BLOCKS_DIR
    return sorted(blocks.rglob("*.parquet")) if blocks.is_dir() else []


def new_storage_id() -> str:
    """A new storage identity (random, 32 hex digits)."""
    return uuid.uuid4().hex


def read_identity(root: Path) -> str | None:
    """The storage identity recorded in ``root/storage.json``, if the file exists.

    :raises StorageError: if the file exists but is unreadable.
    """
    path = root / IDENTITY_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StorageError(f"cannot read the storage identity: {error}", path=str(path)) from error
    try:
        value = json.loads(text)["storage_id"]
    except (ValueError, KeyError, TypeError):
        raise StorageError(
            "the storage identity file is damaged (expected JSON with 'storage_id'); restore "
            "it from a backup or from the 'featurizer.block' metadata of any block",
            path=str(path),
        ) from None
    return str(value)


def write_identity(root: Path, storage_id: str) -> None:
    """Write ``root/storage.json`` atomically (never replacing an existing one)."""
    data = json.dumps({"storage_id": storage_id, "created": time.time()}).encode()
    target = root / IDENTITY_NAME
    if target.exists():
        return
    tmp = root / f".{IDENTITY_NAME}.{os.getpid()}.partial"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(root)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a power loss (each parent fsynced)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def quarantine(root: Path, path: Path, kind: str) -> Path:
    """Move a file aside to ``root/quarantine/<kind>/`` (never deleting it).

    :param root: the storage root.
    :param path: the file (under the root).
    :param kind: the subdirectory (``blocks``, ``wal``, ``foreign``, ``catalog``).
    :returns: where it now is.
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    target = root / QUARANTINE_DIR / kind / relative
    while target.exists():
        target = target.with_name(f"{target.name}.{uuid.uuid4().hex[:6]}")
    make_dirs(target.parent)
    os.replace(path, target)
    fsync_dir(path.parent)
    fsync_dir(target.parent)
    return target


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

    The bytes go to a temporary file under ``root/tmp``, which is fsynced and linked into
    place (never replacing an existing file), and the directory is fsynced: the file appears
    complete or not at all. New directories are fsynced into their parents.

    :param root: the storage root.
    :param relative: the target path under the root.
    :param data: the file's bytes.
    """
    target = root / relative
    tmp_dir = root / TMP_DIR
    try:
        make_dirs(target.parent)
        make_dirs(tmp_dir)
    except OSError as error:
        raise StorageError(
            f"cannot create the block's directory ({error.strerror or error})", path=str(target)
        ) from error
    tmp = tmp_dir / f"{target.name}.{os.getpid()}.partial"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _link_no_clobber(tmp, target)
        fsync_dir(target.parent)
    except OSError as error:
        raise StorageError(
            f"cannot write the block file ({error.strerror or error}); nothing was published "
            f"(free some space and run `featurizer storage recover`)",
            path=str(target),
        ) from error
    finally:
        tmp.unlink(missing_ok=True)


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target``, refusing to replace an existing file."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise StorageError(
            "refusing to overwrite an existing block file (block names are unique: another "
            "catalog's block is there; run `featurizer storage verify`)",
            path=str(target),
        ) from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            raise StorageError(
                "refusing to overwrite an existing block file", path=str(target)
            ) from None
        os.replace(tmp, target)


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
        handle, holder = take_pid_lock(self.path)
        if handle is None:
            raise StorageLockedError(
                f"another process (pid {holder}) is writing to this storage root; only one "
                f"recorder may write at a time",
                path=str(self.path),
            )
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
