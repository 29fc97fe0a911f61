"""``featurizer run --scaler local --worker-processes``: each worker in a process of its own,
whose PID the run logs (``-v``); one killed with ``kill -9`` mid-run is replaced from the last
checkpoint and the output is the uninterrupted one. What the flag cannot do is one error line."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from featurizer.checkpoint import FAULT_ENV
from tests.checkpoint.checkpoint_support import assert_ok, featurizer, write_config

pytest.importorskip("featurizer_synthetic")
pytest.importorskip("zmq")

EVENTS = "40000"
TIMEOUT = 180.0
_PIDS = re.compile(r"worker processes: (.*)")


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _logged_pids(line: str) -> dict[int, int]:
    """``{worker: pid}`` from the run's ``worker processes: worker 0 pid 1234, ...`` line."""
    match = _PIDS.search(line)
    assert match is not None
    return {int(w): int(p) for w, p in re.findall(r"worker (\d+) pid (\d+)", match.group(1))}


def test_a_worker_process_killed_by_its_logged_pid_is_replaced(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    scaled = ("--scaler", "local", "--workers", "2", "--max-events", EVENTS, "-q")
    plain = tmp_path / "plain.jsonl"
    assert_ok(featurizer("run", str(config), *scaled, "--out", str(plain)))
    out, directory = tmp_path / "out.jsonl", tmp_path / "ck"
    command = [
        sys.executable,
        "-m",
        "featurizer",
        "-v",
        "run",
        str(config),
        *scaled,
        "--worker-processes",
        "--out",
        str(out),
        "--checkpoint",
        str(directory),
        "--checkpoint-every",
        "0.2s",
    ]
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    logged: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        pids: dict[int, int] = {}
        while not pids or not list(directory.glob("checkpoints/*.ckpt")):
            assert process.poll() is None, "the run ended before a checkpoint and its PIDs"
            assert time.monotonic() < deadline, "no PIDs logged or no checkpoint committed"
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            logged.append(line)
            if _PIDS.search(line):
                pids = _logged_pids(line)
        assert sorted(pids) == [0, 1]
        assert all(_parent(pid) == process.pid for pid in pids.values())  # this run's own
        os.kill(pids[1], signal.SIGKILL)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10.0)
    reader.join(10.0)
    while not lines.empty():
        logged.append(lines.get())
    stderr = "".join(logged)
    assert "killed by SIGKILL" in stderr and "restart 1 of at most 3" in stderr, stderr[-3000:]
    replaced = [_logged_pids(line) for line in logged if _PIDS.search(line)]
    assert len(replaced) == 2 and set(replaced[1].values()).isdisjoint(pids.values())
    assert out.read_bytes() == plain.read_bytes()
    assert not any(_alive(pid) for pid in [*pids.values(), *replaced[1].values()])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ("--scaler", "local", "--worker-processes", "--transport", "inproc"),
            "--worker-processes needs a transport between processes: --transport zmq",
        ),
        (
            ("--scaler", "ray", "--worker-processes"),
            "--worker-processes runs the local scaler's workers as processes: use --scaler local",
        ),
        (("--worker-processes",), "--worker-processes only apply to a scaled-out run"),
    ],
)
def test_what_worker_processes_cannot_do_is_one_error_line(
    tmp_path: Path, arguments: tuple[str, ...], message: str
) -> None:
    config = write_config(tmp_path)
    result = featurizer("run", str(config), "--max-events", "10", *arguments)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert message in line, line
