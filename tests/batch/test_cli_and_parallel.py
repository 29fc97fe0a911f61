"""``featurizer backfill`` and parallel backfills: the replay's rows, whatever the workers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurizer import FeaturizerConfig
from featurizer.batch import backfill
from featurizer.cli import main
from featurizer.storage import Storage
from tests.batch.batch_support import SYMBOL, WINDOWED_DICT, assert_rows_equal, replay_rows


def _config_file(tmp_path: Path, cfg: FeaturizerConfig, source: Path) -> Path:
    path = tmp_path / "features.yaml"
    path.write_text(source.read_text())
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_command_writes_the_replays_rows(
    quickstart: tuple[Path, FeaturizerConfig],
    tmp_path: Path,
    workers: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, cfg = quickstart
    config = _config_file(tmp_path, cfg, Path(str(cfg.path)))
    out = tmp_path / "features.parquet"
    code = main(
        [
            "backfill",
            str(config),
            "--storage",
            str(root),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--no-progress",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert f"wrote {pq.read_metadata(out).num_rows:,} rows to {out}" in err
    assert_rows_equal(pq.read_table(out).to_pylist(), replay_rows(cfg, root))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.parquet", "features.yaml"]


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_local_equals_one_process(
    windowed: tuple[Path, FeaturizerConfig], workers: int
) -> None:
    root, cfg = windowed
    one = backfill(cfg, root)
    parts = backfill(cfg, root, workers=workers)
    assert one.num_rows > 10_000
    assert parts.equals(one)


def test_parallel_on_ray_equals_one_process(windowed: tuple[Path, FeaturizerConfig]) -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before Ray is first imported
    ray = pytest.importorskip("ray")
    root, cfg = windowed

    assert not ray.is_initialized()
    parts = backfill(cfg, root, workers=2, scaler="ray")
    assert not ray.is_initialized()  # the Ray it started is shut down
    assert parts.equals(backfill(cfg, root))


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("features.csv", "backfill writes Parquet; name a .parquet file"),
        ("missing/f.parquet", "does not exist"),
    ],
)
def test_bad_out_is_one_line(
    quickstart: tuple[Path, FeaturizerConfig],
    tmp_path: Path,
    out: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, cfg = quickstart
    config = _config_file(tmp_path, cfg, Path(str(cfg.path)))
    code = main(["backfill", str(config), "--storage", str(root), "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_unrecorded_source_is_one_line(
    quickstart: tuple[Path, FeaturizerConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, cfg = quickstart
    config = _config_file(tmp_path, cfg, Path(str(cfg.path)))
    empty = tmp_path / "empty"
    Storage(empty).close()
    code = main(
        ["backfill", str(config), "--storage", str(empty), "--out", str(tmp_path / "f.parquet")]
    )
    err = capsys.readouterr().err
    assert code == 1 and "is not stored in this root" in err and err.count("\n") == 1
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_damaged_block_is_one_line_and_no_file(
    windowed: tuple[Path, FeaturizerConfig],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    workers: str,
) -> None:
    import shutil

    import yaml

    root, _ = windowed
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    block = sorted(copy.glob("blocks/**/*.parquet"))[-1]
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0xFF
    block.write_bytes(bytes(data))
    config = tmp_path / "features.yaml"
    config.write_text(yaml.safe_dump(WINDOWED_DICT))
    out = tmp_path / "f.parquet"
    code = main(
        ["backfill", str(config), "--storage", str(copy), "--out", str(out), "--workers", workers]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("featurizer: error: ") and err.count("\n") == 1
    assert block.name in err and "Traceback" not in err
    if workers == "2":  # the last block is in the second part
        assert err.startswith("featurizer: error: part 2 of 2 (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.yaml", "root"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_a_caller_killed_by_sigkill_takes_its_workers_along_and_publishes_nothing(
    windowed: tuple[Path, FeaturizerConfig], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import time

    import yaml

    from tests.batch.parallel_support import CALLER_ENV, _dead

    root, _ = windowed
    with Storage.open(root, readonly=True) as storage:
        last = max(s[4] for s in storage.catalog.series_stats().values() if s[4] is not None)
    marker = tmp_path / "worker.pid"
    config = tmp_path / "hang.yaml"
    params = {"at": last - 5.0, "action": "hang", "marker": str(marker)}
    config.write_text(
        yaml.safe_dump(
            {
                "feature_configs": [
                    {
                        "name": "trip",
                        "feature_definition": "tripwire",
                        "params": {**params, "data_source": SYMBOL},
                    }
                ]
            }
        )
    )
    out = tmp_path / "features.parquet"
    env = {k: v for k, v in os.environ.items() if k != CALLER_ENV}
    env["FEATURIZER_PLUGINS"] = "tests.batch.parallel_support"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    script = "import sys; from featurizer.cli import main; sys.exit(main(sys.argv[1:]))"
    command = ["backfill", str(config), "--storage", str(root), "--out", str(out)]
    caller = subprocess.Popen(
        [sys.executable, "-c", script, *command, "--workers", "2", "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    worker = None
    try:
        deadline = time.monotonic() + 60.0
        for _ in range(60_000):  # bounded in count and time: until the worker hangs
            if marker.exists() and marker.read_text():
                break
            assert caller.poll() is None, caller.stderr.read() if caller.stderr else ""
            assert time.monotonic() < deadline, "the worker never reached its last events"
            time.sleep(0.001)
        worker = int(marker.read_text())
        os.kill(caller.pid, signal.SIGKILL)
        caller.wait(timeout=30)
        deadline = time.monotonic() + 30.0
        for _ in range(30_000):  # the worker dies with its caller
            if _dead(worker):
                break
            assert time.monotonic() < deadline, "the worker outlived its caller by 30 s"
            time.sleep(0.001)
        assert not out.exists()
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(timeout=30)
        if worker is not None and not _dead(worker):
            os.kill(worker, signal.SIGKILL)
        if caller.stderr is not None:
            caller.stderr.close()
