"""`featurizer new-plugin NAME`: the generated project passes its own tests as generated, and
runs from its folder without being installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from featurizer._plugins import reset_plugins
from featurizer.cli import main


def test_the_generated_plugin_passes_its_tests_and_runs_uninstalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", "my_csv"]) == 0
    project = tmp_path / "featurizer-my-csv"
    assert "FEATURIZER_PLUGINS=featurizer_my_csv" in capsys.readouterr().err
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        "README.md",
        "data/BTC-USDT.csv",
        "example.yaml",
        "featurizer_my_csv/__init__.py",
        "featurizer_my_csv/emitter.py",
        "featurizer_my_csv/features.py",
        "featurizer_my_csv/py.typed",
        "pyproject.toml",
        "tests/test_my_csv.py",
    ]
    assert 'my_csv = "featurizer_my_csv"' in (project / "pyproject.toml").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    # The README's way of trying it: PYTHONPATH and FEATURIZER_PLUGINS, no install.
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.setenv("FEATURIZER_PLUGINS", "featurizer_my_csv")
    reset_plugins()
    assert main(["validate", "example.yaml"]) == 1
    assert "no file 'BTC-USDT.csv'" in capsys.readouterr().err
    argv = ["--emitter-option", "directory=data"]
    assert main(["validate", "example.yaml", *argv]) == 0
    assert main(["run", "example.yaml", *argv, "--out", "out.jsonl"]) == 0
    rows = [json.loads(line) for line in Path("out.jsonl").read_text().splitlines()]
    assert [row["spread.spread"] for row in rows] == [1.5, 0.5, 3.0]


def test_the_plugin_tests_fail_when_the_plugin_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["new-plugin", "wrong"]) == 0
    features = tmp_path / "featurizer-wrong" / "featurizer_wrong" / "features.py"
    features.write_text(
        features.read_text().replace('event["ask"] - event["bid"]', 'event["ask"] + event["bid"]')
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=tmp_path / "featurizer-wrong",
        env={**os.environ, "PYTHONPATH": str(tmp_path / "featurizer-wrong")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1 and "test_spread_is_ask_minus_bid" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["new-plugin", "My Plugin"], "plugin name 'My Plugin' is not valid"),
        (
            ["new-plugin", "ok", "--directory", "exists"],
            "cannot create 'exists': it already exists",
        ),
        (["new-plugin", "ok", "--directory", "no/such"], "directory 'no' does not exist"),
    ],
)
def test_bad_names_and_directories_are_refused(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists").mkdir()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["exists"]
