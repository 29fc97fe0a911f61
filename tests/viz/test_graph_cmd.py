"""`featurizer graph`: formats, files written all at once, plans, and bad input."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from featurizer import FeatureStreamGraph, FeaturizerConfig, construct_features_from_configs
from featurizer.cli import main
from featurizer.viz import GraphvizNotFoundError, graphviz_available, render, to_dot, to_mermaid

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart.yaml"
needs_dot = pytest.mark.graphviz


def _quickstart_graph() -> FeatureStreamGraph:
    return FeatureStreamGraph(
        construct_features_from_configs(FeaturizerConfig.from_yaml(QUICKSTART))
    )


def test_mermaid_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(QUICKSTART)]) == 0
    assert capsys.readouterr().out == to_mermaid(_quickstart_graph())


def test_dot_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g.gv"
    assert main(["graph", str(QUICKSTART), "-o", str(out), "--title", "quickstart"]) == 0
    assert out.read_text(encoding="utf-8") == to_dot(_quickstart_graph(), title="quickstart")
    assert f"wrote dot picture to {out}" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["g.gv"]


@needs_dot
@pytest.mark.parametrize(("suffix", "magic"), [("svg", b"<?xml"), ("png", b"\x89PNG")])
def test_rendered_formats(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"g.{suffix}"
    assert main(["graph", str(QUICKSTART), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    same = tmp_path / "explicit"
    assert main(["graph", str(QUICKSTART), "--format", suffix, "-o", str(same)]) == 0
    assert same.read_bytes() == out.read_bytes()


@needs_dot
def test_plan_picture_names_the_transport(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["graph", str(QUICKSTART), "--workers", "3", "--strategy", "split", "--format", "dot"])
        == 0
    )
    dot = capsys.readouterr().out
    assert dot.count("subgraph cluster_") == 3
    assert 'label="inproc", style=dashed' in dot, "the local scaler's default transport"
    assert (
        main(
            [
                "graph",
                str(QUICKSTART),
                "--workers",
                "3",
                "--strategy",
                "split",
                "--format",
                "dot",
                "--transport",
                "zmq",
            ]
        )
        == 0
    )
    assert 'label="zmq", style=dashed' in capsys.readouterr().out
    svg = render(dot, "svg").decode("utf-8")
    assert svg.count('class="cluster"') == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "2", "--transport", "pigeon"], "unknown transport 'pigeon'"),
        (["--workers", "2", "--scaler", "nope"], "unknown scaler 'nope'"),
        (["--transport", "zmq"], "apply to a plan: add --workers N"),
        (["--workers", "9", "--strategy", "by_source"], "by_source"),
        (["-o", "picture.txt"], "cannot tell the picture format"),
    ],
)
def test_bad_options(
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["graph", str(QUICKSTART), *argv]) == 1
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_invalid_config_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("feature_configs:\n  - feature_definition: no_such_thing\n", encoding="utf-8")
    out = tmp_path / "g.mmd"
    assert main(["graph", str(config), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "featurizer: error:" in err and "no_such_thing" in err
    assert sorted(os.listdir(tmp_path)) == ["bad.yaml"]


def test_unwritable_output_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "g.mmd"
    assert main(["graph", str(QUICKSTART), "-o", str(missing)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["graph", str(QUICKSTART), "-o", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["graph", str(QUICKSTART), "-o", str(locked / "g.mmd")]) == 1
        assert "is not writable" in capsys.readouterr().err
        assert os.listdir(locked) == []
    finally:
        locked.chmod(stat.S_IRWXU)


def test_without_graphviz_text_formats_work_and_rendering_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    assert shutil.which("dot") is None and not graphviz_available()
    out = tmp_path / "g.svg"
    assert main(["graph", str(QUICKSTART), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "needs Graphviz's `dot` program" in err and "apt-get install graphviz" in err
    assert "mermaid and dot formats work without it" in err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["bin"]
    assert main(["graph", str(QUICKSTART), "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith("digraph featurizer {")
    with pytest.raises(GraphvizNotFoundError):
        render("digraph { a -> b }", "png")


@needs_dot
def test_render_reports_dot_failures() -> None:
    from featurizer.viz import RenderError

    with pytest.raises(RenderError, match="Graphviz `dot` failed"):
        render("digraph { this is not dot", "svg")
    with pytest.raises(RenderError, match="cannot render format 'gif'"):
        render("digraph {}", "gif")
