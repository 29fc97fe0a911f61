"""docs/storage.md: every example runs and every option of the storage commands is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from featurizer.cli._main import build_parser
from tests.docs.docs_support import DOCS, REPO, PageRunner


def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(DOCS / "storage.md", tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks >= 6
    assert [
        "featurizer",
        "record",
        "btc.yaml",
        "--max-events",
        "20000",
        "--out",
        "live.jsonl",
    ] in runner.commands_run


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found = dict(sub.choices)
    (actions,) = [a for a in found["storage"]._actions if isinstance(a, argparse._SubParsersAction)]
    for name, action_parser in actions.choices.items():
        found[f"storage {name}"] = action_parser
    return found


@pytest.mark.parametrize(
    "command",
    [
        "record",
        "replay",
        "storage ls",
        "storage info",
        "storage verify",
        "storage recover",
        "storage rebuild-catalog",
        "storage drop-session",
        "storage drop-block",
        "storage repair",
    ],
)
def test_every_option_is_documented(command: str) -> None:
    text = (DOCS / "storage.md").read_text(encoding="utf-8")
    assert f"featurizer {command}" in text
    for action in _parsers()[command]._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert option in text, f"{option} of `featurizer {command}` is not documented"
        for choice in action.choices or ():
            assert str(choice) in text, f"choice {choice!r} of `featurizer {command}`"


def test_readme_links_the_page() -> None:
    assert "docs/storage.md" in (REPO / "README.md").read_text(encoding="utf-8")
