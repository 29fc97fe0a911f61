"""A watchdog that ends the processes a ``featurizer run`` started when the run is killed.

A run that starts its own Ray (``--scaler ray`` without ``--address``) starts Ray's head
processes, and Ray starts agents and worker processes. When the run ends, ``ray.shutdown()``
stops them. When the run is killed (``kill -9``, the OOM killer), nothing of it runs: Ray's
GCS, raylet and workers notice and exit, but its dashboard and runtime-env agents, orphaned,
stay (measured on this project's machine: still running 45 s after the kill, when they were
killed by hand), and every restart of the run would leave two more.

:func:`fate_shared` starts this module as a separate process, in a session of its own (a
Ctrl-C in the run's terminal does not reach it), that holds the read end of a pipe whose only
write end is the run's. Every 0.5 s it records the run's descendants (PID and start time, read
from ``/proc``). When the pipe ends without the run saying goodbye, the run is dead: it
SIGKILLs every recorded process that still runs (same PID *and* start time, so a reused PID is
never hit) and exits. A run that ends normally says goodbye, and the watchdog exits without
touching anything. Only Linux has ``/proc``: elsewhere no watchdog is started.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fate_shared"]

_GOODBYE = b"done\n"
_POLL_SECONDS = 0.5


def _stat(pid: int) -> tuple[int, str, str] | None:
    """``(parent pid, state, start time)`` of a process, ``None`` if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), fields[0], fields[19]


def _descendants(root: int) -> dict[int, str]:
    """``{pid: start time}`` of every running descendant of ``root``."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] != "Z":
                children.setdefault(stat[0], []).append((int(entry.name), stat[2]))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found and pid != os.getpid():
                found[pid] = started
                todo.append(pid)
    return found


def _watch(run: int) -> None:
    """The watchdog's loop (this module as a process): record, and reap when ``run`` dies."""
    seen: dict[int, str] = {}
    stdin = sys.stdin.buffer.fileno()
    while True:
        readable, _, _ = select.select([stdin], [], [], _POLL_SECONDS)
        if readable:
            if os.read(stdin, len(_GOODBYE)) == _GOODBYE:
                return  # the run ended normally and stopped what it started
            break  # the pipe ended: the run is dead
        seen.update(_descendants(run))
    for pid, started in seen.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] != "Z":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def fate_shared() -> Iterator[None]:
    """Run the body with a watchdog that kills the processes this process started (and their
    descendants) if this process is killed (see the module docstring)."""
    if not Path("/proc/self/stat").exists():
        yield
        return
    watchdog = subprocess.Popen(  # this file as a script: it imports nothing but the stdlib
        [sys.executable, str(Path(__file__).resolve()), str(os.getpid())],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    assert watchdog.stdin is not None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            watchdog.stdin.write(_GOODBYE)
            watchdog.stdin.close()
        try:
            watchdog.wait(10.0)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
