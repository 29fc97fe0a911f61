"""A recorder killed with SIGKILL loses nothing it acknowledged and never shows a partial block."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from featurizer import FeatureStreamGraph, FeaturizerConfig, construct_features_from_configs
from featurizer.offline import OfflineFeatureStreamGenerator
from featurizer.storage import Storage
from tests.storage.storage_support import assert_bit_identical, entry, wait_for_the_writer_process

featurizer_synthetic = pytest.importorskip("featurizer_synthetic")

CONFIG = {
    "feature_configs": [
        entry("mid", "mid_price", "BTC-USDT"),
        entry("vol", "volatility", "BTC-USDT", window="5s"),
        entry("tvi", "trade_volume_imbalance", "ETH-USDT", window="5s"),
        entry("book", "l2_snapshot", "ETH-USDT", depth=3),
    ],
    "storage": {"compactor": "memory", "block_size": "24KiB", "sync_interval": "20ms"},
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
        record(config, RunOptions(emitter="synthetic", seed=9, duration=60.0, pace=20.0), storage,
               on_acknowledged=acknowledged)
    """
)


def _regenerate(config: FeaturizerConfig, count_by_key: dict[str, int]) -> dict[str, list]:
    """The first events of every source, regenerated from the deterministic market."""
    graph = FeatureStreamGraph(construct_features_from_configs(config))
    emitter = featurizer_synthetic.SyntheticEventEmitter.from_options({"seed": 9})
    got: dict[str, list] = {}
    for source in graph.get_ins():
        emitter.register_callback(source, got.setdefault(source.key, []).append)
    emitter.options = type(emitter.options)(seed=9, max_events=sum(count_by_key.values()) + 1)
    emitter.run()
    return got


def _kill_after(root: Path, config_path: Path, acks: int) -> int:
    """Start a recorder, SIGKILL it after ``acks`` acknowledgements; the last count seen."""
    process = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(config_path), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    last = 0
    seen = 0
    deadline = time.monotonic() + 60.0
    try:
        assert process.stdout is not None
        while seen < acks and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("ACK "):
                last = int(line.split()[1])
                seen += 1
            if seen == acks // 2:
                with Storage.open(root) as reader:
                    report = reader.verify()
                    assert report.ok, report.problems
                    assert {p.kind for p in report.problems} <= {"wal", "temporary", "orphan"}
        assert seen == acks, process.stderr.read() if process.poll() is not None else "timeout"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    wait_for_the_writer_process(root)
    return last


@pytest.mark.parametrize("acks", [2, 9, 25, 60])
def test_sigkill_loses_nothing_acknowledged(tmp_path: Path, acks: int) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(CONFIG))
    config = FeaturizerConfig.from_yaml(config_path)
    root = tmp_path / "root"
    acknowledged = _kill_after(root, config_path, acks)
    assert acknowledged > 0
    with Storage.open(root) as storage:
        before = storage.verify()
        assert {p.kind for p in before.problems if p.severe} == {"wal"}, before.problems
        assert {p.kind for p in before.problems} <= {"wal", "orphan", "temporary"}
        report = storage.recover()
        assert report.segments >= 1
        after = storage.verify()
        assert after.ok and after.problems == (), after.problems
        assert not list((root / "tmp").glob("*")) if (root / "tmp").exists() else True
        stats = storage.catalog.series_stats()
        stored = sum(entry[1] for entry in stats.values())
        assert stored >= acknowledged, (stored, acknowledged)
        (session,) = storage.catalog.sessions()
        assert session.status == "recovered"
        graph = FeatureStreamGraph(construct_features_from_configs(config))
        counts = {s.key: stats[s.key][1] for s in graph.get_ins()}
        regenerated = _regenerate(config, counts)
        for source in graph.get_ins():
            got = storage.read_events(source)
            assert_bit_identical(got, regenerated[source.key][: len(got)], source.name)
        replayed: dict[str, list] = {}
        generator = OfflineFeatureStreamGenerator(config, storage, holes="ignore")
        for output in graph.get_outs():
            generator.set_callback(output, lambda f, e: replayed.setdefault(f.key, []).append(e))
        for _ in generator:
            pass
        for output in graph.get_outs():
            got = storage.read_events(output)
            assert got, output.name
            assert_bit_identical(got, replayed[output.key][: len(got)], output.name)
        assert storage.recover().segments == 0


def test_a_new_writer_recovers_first(tmp_path: Path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(json.dumps(CONFIG))
    config = FeaturizerConfig.from_yaml(config_path)
    root = tmp_path / "root"
    acknowledged = _kill_after(root, config_path, 4)
    graph = FeatureStreamGraph(construct_features_from_configs(config))
    with Storage.open(root) as storage:
        with storage.writer(graph.get_ins()[:1]):
            pass
        stored = sum(entry[1] for entry in storage.catalog.series_stats().values())
        assert stored >= acknowledged
        assert [s.status for s in storage.catalog.sessions()] == ["recovered", "closed"]
        assert storage.verify().problems == ()
