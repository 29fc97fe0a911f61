"""The documentation's examples run, its commands work, and it covers what it claims to.

Each owned page (:data:`~tests.docs.docs_support.OWNED_PAGES`) is run by
:class:`~tests.docs.docs_support.PageRunner`: every Python block is executed (and the tests it
defines called), every ``featurizer`` command is run in-process and, in ``console`` blocks,
its output compared with the page.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import pytest

from featurizer import hookspecs
from featurizer._config import _ENTRY_FIELDS, _TOP_LEVEL
from featurizer.cli._main import build_parser
from tests.docs.docs_support import (
    DOCS,
    OWNED_PAGES,
    REPO,
    REQUIRE_GRAPHVIZ,
    Block,
    PageRunner,
    bounded,
    graphviz_missing,
    needs_graphviz,
    output_matches,
    parse_blocks,
    split_commands,
)


def _text(page: str) -> str:
    return (DOCS / page).read_text(encoding="utf-8")


def _all_docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md")))


@pytest.mark.parametrize("page", OWNED_PAGES)
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = PageRunner(DOCS / page, tmp_path, monkeypatch)
    runner.run()
    assert runner.python_blocks or runner.commands_run, f"{page} has no executable example"


# --- coverage: the reference pages mention everything they are the reference for -------------


def _subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


@pytest.mark.parametrize("command", ["run", "validate", "plugins"])
def test_cli_page_documents_every_option_of_the_core_commands(command: str) -> None:
    cli = _text("cli.md")
    everywhere = _all_docs_text()
    parser = _subcommand_parsers()[command]
    assert f"featurizer {command}" in cli
    for action in parser._actions:
        for option in action.option_strings:
            if option in ("-h", "--help"):
                continue
            # Options the core commands gain from other work may be documented on their page.
            assert option in cli or option in everywhere, (
                f"option {option} of `featurizer {command}` is not documented in docs/"
            )
        for choice in action.choices or ():
            assert str(choice) in everywhere, f"choice {choice!r} of {action.dest} undocumented"


def test_cli_page_points_to_the_other_commands_pages() -> None:
    cli = _text("cli.md")
    for page in ("storage.md", "scaling.md", "visualization.md"):
        assert f"]({page})" in cli


def test_hooks_page_documents_every_hookspec_with_its_signature() -> None:
    hooks_page = _text("hooks.md")
    everywhere = _all_docs_text()
    specs = [
        (name, function)
        for name, function in vars(hookspecs).items()
        if name.startswith("featurizer_") and callable(function)
    ]
    assert len(specs) >= 11
    for name, function in specs:
        if name not in hooks_page:
            # A hook added by other work may be documented on that work's page.
            assert name in everywhere, f"hook {name} is not documented in docs/"
            continue
        section = hooks_page.split(f"\n### `{name}`\n", 1)[1].split("\n### ", 1)[0]
        parameters = ", ".join(
            f"{p.name}: {p.annotation}" for p in inspect.signature(function).parameters.values()
        )
        returns = inspect.signature(function).return_annotation
        assert f"{name}({parameters}) -> {returns}" in section, f"hooks.md: signature of {name}"
        firstresult = bool(function.featurizer_spec.get("firstresult"))  # type: ignore[attr-defined]
        assert f"**firstresult:** {'yes' if firstresult else 'no'}" in section, (
            f"hooks.md: the section of {name} must say whether it is firstresult"
        )


def test_config_page_documents_every_field() -> None:
    config_page = _text("config.md")
    for field in _ENTRY_FIELDS:
        assert f"`{field}`" in config_page, f"config.md does not document entry field {field!r}"
    for field in ("feature_configs", "start_date", "end_date"):
        assert f"| `{field}` |" in config_page, f"config.md does not document {field!r}"
    # The other top-level fields (storage, checkpoints) are documented on their own pages.
    others = [f for f in _TOP_LEVEL if f"| `{f}` |" not in config_page]
    pages = {
        path.name: path.read_text(encoding="utf-8")
        for path in DOCS.glob("*.md")
        if path.name != "config.md"
    }
    for field in others:
        documenting = [name for name, text in pages.items() if f"`{field}" in text]
        assert documenting, f"top-level field {field!r} is documented on no page of docs/"
        assert any(f"]({name}" in config_page for name in documenting), (
            f"config.md does not link the page documenting {field!r} ({', '.join(documenting)})"
        )


def test_quickstart_repeats_the_readme_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = _text("quickstart.md")
    commands = [block.text.strip() for block in parse_blocks(readme) if block.language == "bash"]
    assert len(commands) >= 2
    for command in commands:
        assert command in quickstart, f"quickstart.md does not show the README command {command!r}"


def test_readme_lists_the_owned_pages() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in OWNED_PAGES:
        assert f"docs/{page}" in readme, f"README.md does not link docs/{page}"


# --- the runner itself: it must fail when a page is wrong ---------------------------------------


def _run_markdown(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PageRunner:
    tmp_path.mkdir(parents=True, exist_ok=True)
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    runner = PageRunner(page, work, monkeypatch)
    runner.run()
    return runner


def test_runner_fails_on_a_wrong_expected_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "```console\n$ featurizer validate examples/quickstart.yaml\nexamples/quickstart.yaml: ok: 99 outputs...\n```\n"
    with pytest.raises(AssertionError, match="does not match the page"):
        _run_markdown(text, tmp_path, monkeypatch)


def test_runner_fails_on_an_unexpected_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "```bash\nfeaturizer validate missing.yaml\n```\n"
    with pytest.raises(AssertionError, match="exited with 1"):
        _run_markdown(text, tmp_path, monkeypatch)


def test_runner_fails_on_a_failing_python_block_and_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ZeroDivisionError):
        _run_markdown("```python\n1 / 0\n```\n", tmp_path, monkeypatch)
    with pytest.raises(AssertionError):
        _run_markdown(
            "```python\ndef test_wrong(tmp_path):\n    assert tmp_path.is_dir() and False\n```\n",
            tmp_path / "again",
            monkeypatch,
        )


def test_runner_writes_files_runs_commands_and_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        "```yaml\n# file: conf/c.yaml\nfeature_configs:\n"
        "  - {feature_definition: mid_price, params: {data_source: {exchange: synthetic, symbol: X}}}\n```\n"
        "```console\n$ featurizer validate conf/c.yaml\nconf/c.yaml: ok: 1 outputs, 2 nodes\n...\n"
        "$ featurizer validate nowhere.yaml\nfeaturizer: error: nowhere.yaml: cannot read config: ...\n```\n"
        "```python\nfrom pathlib import Path\nseen = Path('conf/c.yaml').is_file()\n"
        "def test_seen(tmp_path, monkeypatch):\n    assert seen and tmp_path.is_dir()\n```\n"
        "```bash\npip install nothing && featurizer plugins\n```\n"
    )
    runner = _run_markdown(text, tmp_path, monkeypatch)
    assert runner.commands_run == [
        ["featurizer", "validate", "conf/c.yaml"],
        ["featurizer", "validate", "nowhere.yaml"],
        ["featurizer", "plugins"],
    ]
    assert runner.commands_skipped == [["pip", "install", "nothing"]]
    assert runner.tests_called == ["test_seen"]


def test_command_parsing_and_bounds() -> None:
    (venv, run) = split_commands(
        "python3 -m venv .venv && FEATURIZER_DISABLE_PLUGINS=a,b .venv/bin/featurizer run c.yaml"
    )
    assert not venv.is_featurizer and run.is_featurizer
    assert run.env == (("FEATURIZER_DISABLE_PLUGINS", "a,b"),)
    assert bounded(("run", "c.yaml", "--max-events", "200000")) == [
        "run",
        "c.yaml",
        "--max-events",
        "50000",
    ]
    assert bounded(("run", "c.yaml")) == ["run", "c.yaml", "--max-events", "2000"]
    assert bounded(("run", "c.yaml", "--duration", "30")) == ["run", "c.yaml", "--duration", "1.0"]
    assert bounded(("validate", "c.yaml")) == ["validate", "c.yaml"]


def test_parse_blocks_reports_unclosed_fences_and_file_markers() -> None:
    blocks = parse_blocks("text\n```toml\n# file: a/pyproject.toml\nx = 1\n```\n")
    assert blocks == [Block(language="toml", text="# file: a/pyproject.toml\nx = 1", line=3)]
    assert blocks[0].file == "a/pyproject.toml"
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nx = 1\n")


def test_quickstart_shows_the_example_config_as_it_is() -> None:
    example = (REPO / "examples" / "quickstart.yaml").read_text(encoding="utf-8")
    shown = [b.text for b in parse_blocks(_text("quickstart.md")) if b.language == "yaml"]
    assert shown and shown[0].strip() in example


def test_output_matching_rules() -> None:
    assert output_matches("a\n...\nb", "a\nb\n")
    assert output_matches("a\n...\nb", "a\nx\ny\nb\n")
    assert output_matches("x = ...  ms", "x = 12.5 ms\n")
    assert output_matches("", "")
    assert not output_matches("", "something\n")
    assert not output_matches("a\nb", "a\nb\nc\n")
    assert not output_matches("x = ... ms", "x = 1\nms\n")
    assert not output_matches("a ... c", "a b d\n")
    assert output_matches("...\nz", "".join(f"line {n}\n" for n in range(100_000)) + "z\n")
    assert not output_matches("a\n...\nz\n...\ny", "a\nz\nq\n")


# --- Graphviz: a developer machine skips with a reason, CI (which installs it) never skips ------

_GRAPH_PAGE = "```console\n$ featurizer graph examples/quickstart.yaml -o g.svg\nwrote svg picture to g.svg\n$ featurizer validate examples/quickstart.yaml\nexamples/quickstart.yaml: ok: ...\n...\n```\n"


def _without_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))


def test_a_page_needing_graphviz_skips_with_the_reason_after_running_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_dot(tmp_path, monkeypatch)
    monkeypatch.delenv(REQUIRE_GRAPHVIZ, raising=False)
    assert needs_graphviz(("featurizer", "graph", "c.yaml", "--format", "png"))
    assert not needs_graphviz(("featurizer", "graph", "c.yaml", "-o", "g.dot"))
    assert not needs_graphviz(("featurizer", "plot", "c.yaml", "-o", "p.svg"))
    with pytest.raises(pytest.skip.Exception, match="apt-get install graphviz") as skipped:
        _run_markdown(_GRAPH_PAGE, tmp_path / "a", monkeypatch)
    assert "page.md:2 `featurizer graph examples/quickstart.yaml -o g.svg`" in str(skipped.value)
    # The rest of the page still ran and is still checked.
    broken = _GRAPH_PAGE.replace("ok: ...", "not ok")
    with pytest.raises(AssertionError, match="does not match the page"):
        _run_markdown(broken, tmp_path / "b", monkeypatch)


def test_ci_refuses_to_skip_graphviz_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_dot(tmp_path, monkeypatch)
    monkeypatch.setenv(REQUIRE_GRAPHVIZ, "1")
    with pytest.raises(pytest.fail.Exception, match="FEATURIZER_REQUIRE_GRAPHVIZ is set"):
        graphviz_missing()
    with pytest.raises(pytest.fail.Exception):
        _run_markdown(_GRAPH_PAGE, tmp_path / "a", monkeypatch)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert (
        "install -y -qq graphviz" in ci and f"{REQUIRE_GRAPHVIZ}=1 .venv/bin/python -m pytest" in ci
    )


def test_graphviz_marker_skips_or_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import pytest_runtest_setup

    class Item:
        def get_closest_marker(self, name: str) -> object:
            return pytest.mark.graphviz if name == "graphviz" else None

    _without_dot(tmp_path, monkeypatch)
    monkeypatch.delenv(REQUIRE_GRAPHVIZ, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Graphviz's `dot` is not installed"):
        pytest_runtest_setup(Item())  # type: ignore[arg-type]
    monkeypatch.setenv(REQUIRE_GRAPHVIZ, "1")
    with pytest.raises(pytest.fail.Exception, match="not on PATH"):
        pytest_runtest_setup(Item())  # type: ignore[arg-type]


# --- every code block of these pages is executed (or is a synopsis / generated picture) -------

CHECKED_PAGES = (*OWNED_PAGES, "visualization.md", "metrics.md")
_NOT_CODE = ("text", "mermaid")


def _unexecuted(page: str) -> list[str]:
    examples = {p.read_text(encoding="utf-8").strip() for p in (REPO / "examples").glob("*")}
    missed = []
    for block in parse_blocks(_text(page)):
        if block.language in ("python", "console", "bash", "sh", "shell") or block.file:
            continue
        if block.language in _NOT_CODE:
            continue
        if block.language == "yaml" and any(block.text.strip() in text for text in examples):
            continue  # shown as it is in examples/ (the example's own tests run it)
        missed.append(f"{page}:{block.line} ({block.language or 'no language'})")
    return missed


@pytest.mark.parametrize("page", CHECKED_PAGES)
def test_every_code_block_is_executed(page: str) -> None:
    assert _unexecuted(page) == []


@pytest.mark.parametrize("page", sorted(path.name for path in DOCS.glob("*.md")))
def test_pages_import_only_public_names(page: str) -> None:
    for block in parse_blocks(_text(page)):
        if block.language == "python":
            assert (
                "from featurizer._" not in block.text and "import featurizer._" not in block.text
            ), f"{page}:{block.line} imports a private module; use the public name"
