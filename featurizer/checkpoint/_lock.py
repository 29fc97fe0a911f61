"""One run per checkpoint directory: an exclusive ``flock`` held for the run's lifetime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from featurizer.checkpoint._errors import CheckpointError

__all__ = ["DirectoryLock"]

LOCK_NAME = "run.lock"


class DirectoryLock:
    """An exclusive, advisory lock on a checkpoint directory (``DIR/run.lock``).

    Two runs on one directory would publish into the same output and resume from each
    other's checkpoints. The kernel releases the lock when the process dies, even by SIGKILL,
    so a crashed run never leaves a stale lock.

    :param directory: the checkpoint directory (created if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock without waiting.

        :raises CheckpointError: naming the directory and the process holding it.
        """
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 (held for the run)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise CheckpointError(
                f"checkpoint directory {str(self.path.parent)!r} is in use by another run "
                f"(pid {holder}); one run per directory: wait for it, or use another "
                f"--checkpoint directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Release the lock (safe to call twice)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
