"""``featurizer run --scaler local`` in its own process, stopped by SIGTERM or Ctrl-C (SIGINT):
it drains, publishes every row, exits 130 and leaves no partial file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_and_publishes_a_live_scaled_run(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "featurizer", "run", str(REPO / "examples/quickstart.yaml")]
    command += ["--pace", "1", "--no-combine", "--scaler", "local", "--workers", "2"]
    command += ["--duration", "120", "--out", str(out)]
    process = subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        deadline = time.monotonic() + 60
        partial = None
        while time.monotonic() < deadline and partial is None:
            found = [p for p in tmp_path.glob(".out.jsonl.*.partial") if p.stat().st_size > 0]
            partial = found[0] if found else None
            time.sleep(0.05)  # polling for the first rows, bounded by the deadline
        assert partial is not None, "no row was written within 60 s"
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, err
    assert "stopped by: interrupted" in err
    rows = out.read_text(encoding="utf-8").splitlines()
    assert f"wrote {len(rows):,} rows" in err
    assert rows
    assert not list(tmp_path.glob(".out.jsonl.*.partial"))
    assert "Traceback" not in err
