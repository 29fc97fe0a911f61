"""``--emitter-option`` under a scaler is checked against the emitters' declared options
before any worker starts, as in a single-process run."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurizer.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "examples" / "quickstart.yaml")


def test_an_undeclared_emitter_option_fails_a_scaled_run_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.jsonl"
    argv = ["run", QUICKSTART, "--scaler", "local", "--workers", "2", "--max-events", "100"]
    assert main([*argv, "--emitter-option", "nonsense=1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "emitter option 'nonsense' is not declared by the emitters of this run" in err
    assert "synthetic: book_depth" in err
    assert not out.exists()


def test_a_declared_emitter_option_reaches_a_scaled_run(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    argv = ["run", QUICKSTART, "--scaler", "local", "--workers", "2", "--max-events", "2000"]
    assert main([*argv, "--emitter-option", "book_depth=5", "--quiet", "--out", str(out)]) == 0
    assert out.exists()
