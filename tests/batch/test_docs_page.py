"""docs/backfill.md: every example runs, and every option of the command is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from featurizer.cli._main import build_parser
from tests.docs.docs_support import DOCS, PageRunner


def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(DOCS / "backfill.md", tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks >= 4
    assert ["featurizer", "backfill", "btc.yaml", "--out", "again.parquet"] in runner.commands_run


def test_every_option_is_documented() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    text = (DOCS / "backfill.md").read_text()
    for action in sub.choices["backfill"]._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert f"`{option}" in text or f"{option}`" in text, option
