"""``--emitter offline`` under a scaler replays the config's storage root and date range, as a
single process does (not the whole recording)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from featurizer.cli import main


def _config(root: Path, start: float | None = None, end: float | None = None) -> dict[str, Any]:
    def source(symbol: str) -> dict[str, str]:
        return {"exchange": "synthetic", "symbol": symbol}

    config: dict[str, Any] = {
        "feature_configs": [
            {
                "name": "mid_btc",
                "feature_definition": "mid_price",
                "params": {"data_source": source("BTC-USDT")},
            },
            {
                "name": "mid_eth",
                "feature_definition": "mid_price",
                "params": {"data_source": source("ETH-USDT")},
            },
        ],
        "features_to_store": ["data_sources"],
        "storage": {"root": str(root)},
    }
    for name, value in (("start_date", start), ("end_date", end)):
        if value is not None:
            config[name] = dt.datetime.fromtimestamp(value, dt.UTC).isoformat()
    return config


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_scaled_offline_replay_reads_the_configs_root_and_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "store"
    recording = tmp_path / "record.yaml"
    recording.write_text(yaml.safe_dump(_config(root)), encoding="utf-8")
    assert main(["record", str(recording), "--max-events", "6000", "--out", "live.jsonl"]) == 0
    everything = _rows(tmp_path / "live.jsonl")
    times = sorted(row["timestamp"] for row in everything)
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    ranged = tmp_path / "ranged.yaml"
    ranged.write_text(yaml.safe_dump(_config(root, start, end)), encoding="utf-8")
    capsys.readouterr()

    common = ["run", str(ranged), "--emitter", "offline", "--no-combine"]
    assert main([*common, "--out", "single.jsonl"]) == 0
    single = _rows(tmp_path / "single.jsonl")
    assert 0 < len(single) < len(everything) // 2, "the single process replays the range"
    assert all(start <= row["timestamp"] < end + 1.0 for row in single)
    scaled_args = ["--scaler", "local", "--workers", "2", "--strategy", "by_source"]
    assert main([*common, *scaled_args, "--out", "scaled.jsonl"]) == 0, capsys.readouterr().err
    assert _rows(tmp_path / "scaled.jsonl") == single
