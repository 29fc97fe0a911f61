"""docs/visualization.md and docs/metrics.md: their examples run, their pictures are current."""

from __future__ import annotations

import importlib.util
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from featurizer.cli._main import build_parser
from featurizer.metrics import METRIC_NAMES
from tests.docs.docs_support import DOCS, REPO, PageRunner

SCRIPT = REPO / "scripts" / "render_docs_pictures.py"


def _script() -> object:
    spec = importlib.util.spec_from_file_location("render_docs_pictures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["visualization.md", "metrics.md"])
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(DOCS / page, tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks >= 1 and runner.commands_run


def test_generated_pictures_are_up_to_date() -> None:
    script = _script()
    for path, text in script.texts().items():  # type: ignore[attr-defined]
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(REPO)} is out of date: run python scripts/render_docs_pictures.py"
        )
    svg = ET.parse(DOCS / "img" / "quickstart.svg").getroot()
    titles = {t.text for t in svg.iter() if t.tag.endswith("title") and t.text}
    dot = (DOCS / "img" / "quickstart.dot").read_text(encoding="utf-8")
    node_ids = {
        line.split()[0]
        for line in dot.splitlines()
        if line.startswith("    n_") and "->" not in line
    }
    assert node_ids <= titles, "the SVG was rendered from the current DOT"
    for picture in script.PICTURES:  # type: ignore[attr-defined]
        assert (DOCS / "img" / picture).stat().st_size > 1000


def test_pages_document_every_option_and_metric() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    visualization = (DOCS / "visualization.md").read_text(encoding="utf-8")
    metrics = (DOCS / "metrics.md").read_text(encoding="utf-8")
    for command in ("graph", "plot"):
        for action in commands.choices[command]._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in visualization, f"{command} {option} undocumented"
    for option in ("--metrics-port", "--metrics-host", "--dashboard"):
        assert f"`{option}`" in metrics
    for name in METRIC_NAMES:
        assert name in metrics, f"metric {name} undocumented"
    assert "img/quickstart.svg" in visualization and "img/quickstart-plan.svg" in visualization


def test_the_plot_caption_shows_the_command_that_draws_the_picture() -> None:
    script = _script()
    page = (DOCS / "visualization.md").read_text(encoding="utf-8")
    before_picture = page.split("![A plot of four quickstart features]", 1)[0]
    command = before_picture.rsplit("```bash\n", 1)[1].split("\n```", 1)[0]
    argv = shlex.split(command)
    assert argv[:2] == ["featurizer", "plot"] and argv[2] == "examples/quickstart.yaml"
    features = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--feature"]
    assert tuple(features) == script.PLOT_FEATURES  # type: ignore[attr-defined]
    assert argv[argv.index("--max-events") + 1] == str(script.PLOT_EVENTS)  # type: ignore[attr-defined]
    assert argv[argv.index("--title") + 1] == script.PLOT_TITLE  # type: ignore[attr-defined]
    assert "--emitter" not in argv, "the quickstart's own emitter (synthetic) draws it"
