"""An exclusive ``flock`` on a file that names its holder's PID.

The kernel releases the lock when the process dies, even by SIGKILL, so a crashed holder never
leaves a stale lock; the PID in the file lets the one who is refused name the holder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

__all__ = ["take_pid_lock"]


def take_pid_lock(path: Path) -> tuple[IO[str] | None, str]:
    """Take the lock on ``path`` without waiting.

    :returns: the open handle holding the lock (keep it open as long as the lock is needed;
        closing it releases the lock) and ``""``; or ``None`` and the holder's PID as written
        in the file (``"unknown"`` if it wrote none) when another process holds it.
    """
    import fcntl

    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        return None, holder
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle, ""
