"""Periodic book snapshots are durable while recording: a recorder killed with SIGKILL keeps
those it stored, recovery continues them over the events it publishes, and a replay starting
after the crash starts from the last of them."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from featurizer import FeaturizerConfig
from featurizer.offline import OfflineFeatureStreamGenerator
from featurizer.storage import Storage, StorageError
from featurizer.storage._snapshots import companion_key
from tests.storage.storage_support import entry, wait_for_the_writer_process

pytest.importorskip("featurizer_features")
pytest.importorskip("featurizer_synthetic")

CONFIG = {
    "feature_configs": [entry("book", "l2_snapshot", "BTC-USDT", depth=3)],
    "storage": {"compactor": "memory", "block_size": "128KiB", "sync_interval": "20ms"},
}

RECORDER = textwrap.dedent(
    """
    import sys
    from featurizer import FeaturizerConfig
    from featurizer._runner import RunOptions
    from featurizer.storage import Storage, record

    config = FeaturizerConfig.from_yaml(sys.argv[1])

    def acknowledged(count):
        sys.stdout.write(f"ACK {count}\\n")
        sys.stdout.flush()

    with Storage(sys.argv[2]) as storage:
        record(config, RunOptions(emitter="synthetic", seed=5, duration=120.0, pace=50.0),
               storage, on_acknowledged=acknowledged, features_to_store=["data_sources"],
               writer_options={"snapshot_interval": 0.5, "max_block_lag": None})
    """
)


def _stored(root: Path) -> tuple[list[float], int]:
    """Timestamps of the snapshots committed so far, and the book events in committed blocks
    (read-only; none if nothing is yet)."""
    try:
        with Storage.open(root, readonly=True) as storage:
            book = [s for s in storage.series() if s.kind == "data_source"]
            if not book:
                return [], 0
            rows = storage.catalog.series_stats().get(book[0].key, (0, 0))[1]
            companion = storage.catalog.series(companion_key(book[0].key))
            if companion is None:
                return [], rows
            return [e["timestamp"] for e in storage.read_events(companion)], rows
    except StorageError:
        return [], 0


def _stored_snapshots(root: Path) -> list[float]:
    return _stored(root)[0]


def _kill_with_snapshots(root: Path, config_path: Path, wanted: int, tail: int) -> None:
    """Record until ``wanted`` snapshots are committed and the WAL holds at least ``tail``
    acknowledged events that are in no block, then SIGKILL."""
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(config_path), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 90.0
    ready = False
    try:
        assert process.stdout is not None
        while not ready and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("ACK "):
                snapshots, committed = _stored(root)
                ready = len(snapshots) >= wanted and int(line.split()[1]) - committed >= tail
        assert ready, process.stderr.read() if process.poll() is not None else "timeout"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    wait_for_the_writer_process(root)


def test_snapshots_survive_a_sigkill_and_recovery_continues_them(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(CONFIG))
    config = FeaturizerConfig.from_yaml(config_path)
    root = tmp_path / "root"
    _kill_with_snapshots(root, config_path, wanted=3, tail=600)
    during = _stored_snapshots(root)
    assert len(during) >= 3  # stored while recording, not only when a session closes
    with Storage(root) as storage:
        report = storage.recover()
        assert report.ok and report.events > 0 and report.snapshots > 0, report.describe()
        assert storage.verify().ok
    after = _stored_snapshots(root)
    assert after[: len(during)] == during and after[-1] > during[-1]
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(after))
    with Storage.open(root) as storage:
        whole = list(OfflineFeatureStreamGenerator(config, storage).rows())
        # the last snapshot recovery stored before the end, and a start just after it
        target = max(t for t in after if t < whole[-1]["timestamp"])
        assert target > during[-1]
        start = min(row["timestamp"] for row in whole if row["timestamp"] > target)
        assert start < target + 0.5  # no later snapshot before the start
        late = OfflineFeatureStreamGenerator(config, storage, start=start, warmup=0)
        rows = list(late.rows())
        resumed = late.replay.resume[0]
        assert resumed is not None and resumed[0] == target  # from the recovered snapshot
        assert rows and rows == [row for row in whole if row["timestamp"] >= start]
