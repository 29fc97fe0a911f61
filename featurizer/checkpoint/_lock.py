"""One run per checkpoint directory: an exclusive ``flock`` held for the run's lifetime."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from featurizer._pid_lock import take_pid_lock
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, holder = take_pid_lock(self.path)
        if handle is None:
            raise CheckpointError(
                f"checkpoint directory {str(self.path.parent)!r} is in use by another run "
                f"(pid {holder}); one run per directory: wait for it, or use another "
                f"--checkpoint directory"
            )
        self._handle = handle

    def release(self) -> None:
        """Release the lock (safe to call twice)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
