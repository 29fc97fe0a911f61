"""``featurizer run --scaler ray --checkpoint`` killed with SIGKILL mid-run (after a checkpoint
committed): no process of that run outlives it (its Ray head, raylet, agents and workers,
found as the killed process's descendants before the kill), and the same command started
again writes the output of an uninterrupted run, byte for byte. Ray stays on loopback, with
the small resources the CLI gives a Ray it starts itself (no dashboard, a 150 MB object
store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featurizer.checkpoint import FAULT_ENV, inspect_directory
from tests.checkpoint.checkpoint_support import assert_ok, featurizer, write_config

pytest.importorskip("ray")
pytest.importorskip("featurizer_synthetic")

EVENTS = "20000"
TIMEOUT = 240.0
RUN = ("--workers", "2", "--max-events", EVENTS, "--seed", "3", "-q")


def _stat(pid: int) -> tuple[int, str, str] | None:
    """``(parent, state, start time)`` of a process, ``None`` once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), fields[0], fields[19]


def _descendants(root: int) -> dict[int, str]:
    """``{pid: start time}`` of the running descendants of ``root``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat is not None and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            stat = _stat(pid)
            if stat is not None:
                found[pid] = stat[2]
                todo.append(pid)
    return found


def _running(processes: dict[int, str]) -> list[int]:
    """Which of ``processes`` (PID and start time) still run (not a zombie, not a reused PID)."""
    left = []
    for pid, started in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started and stat[1] != "Z":
            left.append(pid)
    return left


def test_the_ray_driver_killed_then_restarted_leaves_nothing_and_writes_the_same_output(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    plain = tmp_path / "plain.jsonl"
    assert_ok(featurizer("run", str(config), "--scaler", "local", *RUN, "--out", str(plain)))
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    command = [
        sys.executable,
        "-m",
        "featurizer",
        "run",
        str(config),
        "--scaler",
        "ray",
        *RUN,
        "--pace",
        "80",  # about 2.5 s of input: the kill comes mid-run however fast the machine is
        "--out",
        str(out),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        "0.5s",
    ]
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, "RAY_ADDRESS")}
    driver = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL, cwd=tmp_path)
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + TIMEOUT
        while not list(directory.glob("checkpoints/*.ckpt")):
            assert driver.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint committed"
            started.update(_descendants(driver.pid))
            time.sleep(0.1)
        started.update(_descendants(driver.pid))
        assert any(b"raylet" in Path(f"/proc/{p}/cmdline").read_bytes() for p in started)
        os.kill(driver.pid, signal.SIGKILL)
        assert driver.wait(30.0) == -signal.SIGKILL
        deadline = time.monotonic() + 30.0
        while _running(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _running(started)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10.0)
        for pid in _running(started):  # ours: started by the run this test started
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the killed run still run: {left}"
    assert plain.read_bytes().startswith(out.read_bytes())
    resumed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert out.read_bytes() == plain.read_bytes()
    latest = inspect_directory(directory).latest
    assert latest is not None and latest.final and latest.restarts == 1
