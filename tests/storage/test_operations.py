"""Operating a storage root: overlapping recordings refused, drop-session / drop-block /
repair with dry runs, clean stops on SIGTERM and SIGHUP, read-only commands that write
nothing, and the record command's checks before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from featurizer import Feature
from featurizer.cli import main
from featurizer.storage import NoDataError, Storage

pytest.importorskip("featurizer_synthetic")
TradesSource = pytest.importorskip("featurizer_features").TradesSource

CONFIG = {
    "feature_configs": [
        {
            "name": "tvi",
            "feature_definition": "trade_volume_imbalance",
            "params": {
                "window": "5s",
                "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"},
            },
        },
        {
            "name": "book",
            "feature_definition": "l2_snapshot",
            "params": {"depth": 3, "data_source": {"exchange": "synthetic", "symbol": "BTC-USDT"}},
        },
    ],
    "storage": {"block_size": "32KiB", "sync_interval": "20ms"},
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def _record(config_path: Path, root: Path, *extra: str) -> int:
    return main(
        ["record", str(config_path), "--storage", str(root), "--max-events", "4000", *extra]
    )


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_recording_the_same_times_twice_is_refused(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert _record(config_path, root) == 0
    with Storage.open(root) as storage:
        before = storage.catalog.series_stats()
        (first,) = storage.catalog.sessions()
    capsys.readouterr()
    assert _record(config_path, root) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "OverlapError" in err[0] and f"drop-session {first.id}" in err[0]
    with Storage.open(root) as storage:
        assert storage.catalog.series_stats() == before
        assert storage.verify().ok
    # the explicit way out: drop the old session (dry run first), then record again
    assert main(["storage", "drop-session", first.id, "--storage", str(root), "--dry-run"]) == 0
    assert "would drop session" in capsys.readouterr().out
    with Storage.open(root) as storage:
        assert storage.catalog.series_stats() == before
    assert main(["storage", "drop-session", first.id, "--storage", str(root)]) == 0
    assert list((root / "quarantine" / "dropped").rglob("*.parquet"))
    assert _record(config_path, root) == 0
    with Storage.open(root) as storage:
        again = storage.catalog.series_stats()
        assert {k: (v[1], v[3], v[4]) for k, v in again.items()} == {
            k: (v[1], v[3], v[4]) for k, v in before.items()
        }
        assert storage.verify().ok


def test_a_missing_block_is_repaired_into_a_reported_hole(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert _record(config_path, root, "--block-size", "8KiB") == 0
    with Storage.open(root) as storage:
        trades = storage.find_series("trades.synthetic.BTC-USDT")
        blocks = storage.catalog.blocks(trades.key)
        assert len(blocks) >= 3
        victim = blocks[1]
    (root / victim.path).unlink()
    assert main(["storage", "verify", "--storage", str(root)]) == 1
    assert main(["storage", "repair", "--storage", str(root), "--dry-run"]) == 0
    assert f"would drop block {victim.id}" in capsys.readouterr().out
    assert main(["storage", "verify", "--storage", str(root)]) == 1  # a dry run changes nothing
    assert main(["storage", "repair", "--storage", str(root)]) == 0
    assert main(["storage", "verify", "--storage", str(root)]) == 0
    with Storage.open(root) as storage:
        (hole,) = storage.holes(trades)
        assert (hole.start, hole.end) == (victim.start_ts, victim.end_ts)
        assert "dropped" in hole.reason
        source = Feature.create(TradesSource, {"exchange": "synthetic", "symbol": "BTC-USDT"})
        with pytest.raises(NoDataError, match="hole"):
            storage.replay([source], holes="error")


def test_read_only_commands_write_nothing(config_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert _record(config_path, root) == 0
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    before = _tree(root)
    out = tmp_path / "out.jsonl"
    assert main(["storage", "ls", "--storage", str(root)]) == 0
    assert main(["storage", "info", "tvi", "--blocks", "--storage", str(root)]) == 0
    assert main(["storage", "verify", "--storage", str(root)]) == 0
    assert main(["storage", "rebuild-catalog", "--dry-run", "--storage", str(root)]) == 0
    assert main(["replay", str(config_path), "--storage", str(root), "--out", str(out)]) == 0
    after = _tree(root)
    # SQLite's own coordination files of a read-only connection aside, nothing changed
    assert {k: v for k, v in after.items() if not k.startswith("catalog.sqlite-")} == before


def test_record_checks_its_output_and_config_before_any_work(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    existing = tmp_path / "a-directory"
    existing.mkdir()
    for out in (str(existing), str(tmp_path / "nodir") + "/"):
        assert _record(config_path, root, "--format", "parquet", "--out", out) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "nodir").exists() and not root.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CONFIG, "features_to_store": ["no_such_node"]}))
    assert _record(bad, root) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (root / "catalog.sqlite").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_a_recording_cleanly(
    config_path: Path, tmp_path: Path, signum: int
) -> None:
    root, out = tmp_path / "root", tmp_path / "live.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "featurizer",
            "record",
            str(config_path),
            "--storage",
            str(root),
            "--pace",
            "5",
            "--duration",
            "60",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # a committed block: events went through the graph, so outputs exist
        while time.monotonic() < deadline and not list(root.glob("blocks/**/*.parquet")):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.02)
        os.kill(process.pid, signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert out.is_file() and out.stat().st_size > 0
    with Storage.open(root) as storage:
        (session,) = storage.catalog.sessions()
        assert session.status == "closed"
        assert storage.verify().ok
    assert not list((root / "wal").glob("*.wal"))


def _mount_read_only(source: Path, target: Path) -> str:
    """The shell commands mounting ``source`` read-only at ``target`` in a private namespace."""
    return f"mount --bind {source} {target} && mount -o remount,ro,bind {target}"


def test_a_read_only_mount_can_be_listed_verified_and_replayed(
    config_path: Path, tmp_path: Path
) -> None:
    import shutil

    root, mount, out = tmp_path / "root", tmp_path / "mnt", tmp_path / "out.jsonl"
    mount.mkdir()
    root.mkdir()
    probe = (
        subprocess.run(
            ["unshare", "-rm", "sh", "-c", _mount_read_only(root, mount)],
            check=False,
            capture_output=True,
            timeout=30,
        )
        if shutil.which("unshare")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("needs `unshare -rm` to mount a directory read-only")
    root.rmdir()
    live = tmp_path / "live.jsonl"
    assert _record(config_path, root, "--out", str(live)) == 0
    for side in root.glob("catalog.sqlite-*"):
        side.unlink()
    cli = f"{sys.executable} -m featurizer"
    script = (
        f"{_mount_read_only(root, mount)} && "
        f"{cli} storage ls --storage {mount} && {cli} storage verify --storage {mount} && "
        f"{cli} storage info tvi --storage {mount} && "
        f"{cli} replay {config_path} --storage {mount} --out {out}"
    )
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == live.read_bytes()


def test_record_quiet_prints_nothing_and_a_pipe_gets_no_progress_line(
    config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _record(config_path, tmp_path / "a", "--quiet") == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert _record(config_path, tmp_path / "b") == 0
    err = capsys.readouterr().err
    # not a terminal: the summary lines only, no progress redraws
    assert "\r" not in err and "\x1b" not in err
    assert err.count("\n") == 2 and "recorded 8,000 events" in err
