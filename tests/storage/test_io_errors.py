"""A full disk and a damaged catalog give one clear line, never a traceback, and leave no
partial file behind; nothing acknowledged is lost."""

from __future__ import annotations

import random
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from featurizer import Feature
from featurizer.cli import main
from featurizer.storage import Storage, StorageError
from featurizer.testing import ExampleTicker
from tests.storage.test_integrity import CRASHING_RECORDER, _expected

A = Feature.create(ExampleTicker, {"exchange": "x", "symbol": "A"})


def _small_disk(limit: int) -> None:
    """In the child: files cannot grow beyond ``limit`` bytes (writes fail with EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _crashed(root: Path, cycles: int) -> None:
    subprocess.run(
        [sys.executable, "-c", CRASHING_RECORDER, str(root), str(cycles), "1000.0"],
        check=True,
        timeout=120,
    )


def test_recover_on_a_full_disk_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _crashed(root, cycles=60)
    result = subprocess.run(
        [sys.executable, "-m", "featurizer", "storage", "recover", "--storage", str(root)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _small_disk(16 * 1024),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featurizer: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert not list(root.glob("tmp/*"))  # no partial (or 0-byte) temporary file
    assert list((root / "wal").glob("*.wal"))  # the acknowledged events are still there
    with Storage(root) as storage:  # with room again, everything comes back
        storage.recover()
        assert [e["timestamp"] for e in storage.read_events(A)] == _expected(cycles=60)


def test_record_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "feature_configs:\n"
        "  - name: tvi\n"
        "    feature_definition: trade_volume_imbalance\n"
        "    params: {window: 5s, data_source: {exchange: synthetic, symbol: BTC-USDT}}\n"
        "storage: {block_size: 64KiB}\n"
    )
    pytest.importorskip("featurizer_synthetic")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "featurizer",
            "record",
            str(config),
            "--storage",
            str(tmp_path / "root"),
            "--max-events",
            "200000",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _small_disk(48 * 1024),
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("featurizer: error:"), result.stderr
    assert not list((tmp_path / "root" / "tmp").glob("*"))


def test_a_damaged_arrow_schema_in_the_catalog_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    _crashed(root, cycles=2)
    with Storage(root) as storage:
        storage.recover()
    catalog = root / "catalog.sqlite"
    pristine = catalog.read_bytes()
    rng = random.Random(7)
    failures = 0
    for _ in range(40):
        catalog.write_bytes(pristine)
        for side in root.glob("catalog.sqlite-*"):
            side.unlink()
        with sqlite3.connect(catalog) as db:
            key, blob = db.execute("SELECT key, arrow_schema FROM series LIMIT 1").fetchone()
            data = bytearray(blob)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            db.execute("UPDATE series SET arrow_schema = ? WHERE key = ?", (bytes(data), key))
        db.close()
        capsys.readouterr()
        code = main(["storage", "verify", "--storage", str(root)])  # never raises
        err = capsys.readouterr().err
        if code:
            failures += 1
            assert "featurizer: error" in err or "error: catalog" in err or "error:" in err
        assert main(["storage", "ls", "--storage", str(root)]) == 0
        with Storage.open(root, readonly=True) as storage:
            try:  # reading either works or fails with a storage error, never anything else
                storage.read_events(A)
            except StorageError as error:
                assert "\n" not in str(error)
    assert failures  # some flips are caught (others land in bytes Arrow ignores)
