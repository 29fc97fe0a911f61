"""docs/scaling.md: its examples run (the API blocks and the local-scaler commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.docs_support import DOCS, PageRunner


def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(DOCS / "scaling.md", tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks >= 2
    assert any(command[:2] == ["featurizer", "run"] for command in runner.commands_run)
