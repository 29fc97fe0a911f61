"""The CLI: README's main-job command end to end, validate, plugins, and clear errors."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from featurizer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _readme_main_job() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.DOTALL)
    job = next(block for block in blocks if "featurizer run" in block)
    command = job.split("&&")[-1].strip()
    assert command.startswith(".venv/bin/featurizer run "), command
    return shlex.split(command)


def test_readme_main_job_command_runs_and_writes_combined_vectors(tmp_path: Path) -> None:
    argv = _readme_main_job()
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    executable = Path(sys.executable).parent / "featurizer"
    result = subprocess.run(
        [str(executable), *argv[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out_path = tmp_path / argv[argv.index("--out") + 1]
    rows = out_path.read_text(encoding="utf-8").splitlines()
    max_events = int(argv[argv.index("--max-events") + 1])
    assert 0 < len(rows) <= max_events
    first = json.loads(rows[0])
    assert {"timestamp", "mid_btc.mid_price", "vol_btc.volatility", "tvi_btc.tvi"} <= set(first)
    summary = re.search(
        r"events in: ([\d,]+)  outputs out: ([\d,]+)  errors: 0  elapsed: [\d.]+ s  events/s: [\d,]+",
        result.stderr,
    )
    assert summary is not None, result.stderr
    assert int(summary.group(1).replace(",", "")) == max_events
    assert int(summary.group(2).replace(",", "")) == len(rows)
    assert not list(tmp_path.glob(".*.partial"))


def test_run_is_deterministic_and_writes_parquet(tmp_path: Path) -> None:
    config = str(ROOT / "examples" / "quickstart.yaml")
    for name in ("a.jsonl", "b.jsonl"):
        assert main(["run", config, "--max-events", "20000", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert main(["run", config, "--max-events", "20000", "--out", str(tmp_path / "c.parquet")]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "c.parquet")
    jsonl_rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert table.num_rows == len(jsonl_rows) > 0
    assert table.column("vol_btc.volatility").to_pylist() == [
        r["vol_btc.volatility"] for r in jsonl_rows
    ]


def test_run_with_no_output_rows_still_publishes_an_empty_file(tmp_path: Path) -> None:
    config = str(ROOT / "examples" / "quickstart.yaml")
    for name in ("empty.parquet", "empty.jsonl"):
        assert main(["run", config, "--max-events", "5", "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).exists()
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0


def test_validate_and_plugins_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "examples" / "quickstart.yaml")]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "emitter synthetic:" in out and "vol_btc" in out
    assert main(["plugins", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "features  (featurizer-features 0.1.0)" in out
    assert "synthetic  (featurizer-synthetic 0.1.0)" in out
    assert "featurizer_register_emitters" in out and "volatility" in out


def test_errors_are_reported_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "feature_configs:\n  - feature_definition: volatilty\n    params: {data_source: {exchange: synthetic, symbol: BTC-USDT}}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"featurizer: error: {bad}: feature_configs[0]: feature_definition: unknown definition 'volatilty'"
    )
    config = str(ROOT / "examples" / "quickstart.yaml")
    assert main(["run", config, "--emitter", "nope", "--max-events", "10"]) == 1
    assert "unknown emitter 'nope'; registered emitters:" in capsys.readouterr().err
    assert (
        main(["run", config, "--max-events", "10", "--out", str(tmp_path / "missing" / "x.jsonl")])
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot write" in err and "does not exist" in err
    assert main(["run", config, "--max-events", "10", "--out", str(tmp_path / "x.csv")]) == 1
    assert "cannot tell the output format" in capsys.readouterr().err


def test_unserved_exchange_is_an_error_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "feature_configs:\n  - feature_definition: mid_price\n    params: {data_source: {exchange: NOWHERE, symbol: BTC-USDT}}\n"
    )
    assert main(["run", str(config), "--max-events", "10"]) == 1
    err = capsys.readouterr().err
    assert "no emitter serves data source 'ticker.NOWHERE.BTC-USDT'" in err and "--emitter" in err
    assert (
        main(
            [
                "run",
                str(config),
                "--emitter",
                "synthetic",
                "--max-events",
                "10",
                "--out",
                str(tmp_path / "o.jsonl"),
            ]
        )
        == 0
    )
