"""docs/fault-tolerance.md: every example runs and every checkpoint option is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from featurizer.cli._main import build_parser
from tests.docs.docs_support import DOCS, REPO, PageRunner

PAGE = DOCS / "fault-tolerance.md"


def test_page_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(PAGE, tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks >= 5
    assert ["featurizer", "checkpoint", "verify", "state"] in runner.commands_run


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found = dict(sub.choices)
    (actions,) = [
        a for a in found["checkpoint"]._actions if isinstance(a, argparse._SubParsersAction)
    ]
    for name, action_parser in actions.choices.items():
        found[f"checkpoint {name}"] = action_parser
    return found


@pytest.mark.parametrize("command", ["checkpoint ls", "checkpoint info", "checkpoint verify"])
def test_every_option_is_documented(command: str) -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert f"featurizer {command}" in text
    for action in _parsers()[command]._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert option in text, f"{option} of `featurizer {command}` is not documented"


def test_the_run_options_and_fault_points_are_documented() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for option in ("--checkpoint DIR", "--checkpoint-every", "--fresh", "checkpoint:"):
        assert option in text
    from featurizer.checkpoint import FAULT_POINTS

    for point in FAULT_POINTS:
        assert f"`{point}`" in text


def test_readme_and_cli_page_link_the_page() -> None:
    assert "docs/fault-tolerance.md" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "fault-tolerance.md" in (DOCS / "cli.md").read_text(encoding="utf-8")
