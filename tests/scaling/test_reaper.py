"""The watchdog of a run that starts its own Ray (:func:`featurizer.cli._reaper.fate_shared`):
when the run is SIGKILLed, the processes it started are killed too; when it ends normally,
nothing is touched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

_RUN = """
import subprocess, sys, time
from featurizer.cli._reaper import fate_shared

with fate_shared():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    print(child.pid, flush=True)
    time.sleep(1.5)  # the watchdog records the run's descendants every 0.5 s
    print("recorded", flush=True)
    if sys.argv[1] == "hang":
        time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _start(mode: str) -> tuple[subprocess.Popen[str], int]:
    run = subprocess.Popen([sys.executable, "-c", _RUN, mode], stdout=subprocess.PIPE, text=True)
    assert run.stdout is not None
    return run, int(run.stdout.readline())


def test_what_a_killed_run_started_is_killed() -> None:
    run, child = _start("hang")
    try:
        assert run.stdout is not None and run.stdout.readline() == "recorded\n"
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10.0)
        deadline = time.monotonic() + 10.0
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child)
    finally:
        if run.poll() is None:
            run.kill()
        if _running(child):
            os.kill(child, signal.SIGKILL)


def test_a_run_that_ends_normally_leaves_what_it_started_alone() -> None:
    run, child = _start("end")
    try:
        assert run.wait(30.0) == 0  # the run waited for its watchdog to exit
        assert _running(child)
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)
