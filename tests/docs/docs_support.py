"""Run the examples of a Markdown page: Python blocks, files, and ``featurizer`` commands.

A page is processed top to bottom in a fresh temporary directory (with ``examples/`` copied in),
which is the working directory and the first entry of ``sys.path``, as when a user runs the
examples from a project root:

* a fenced block of any language whose first line is ``# file: PATH`` is written to ``PATH``
  (relative to the page's directory) before anything else is done with it;
* every ```` ```python ```` block is executed, all blocks of a page in one namespace; after each
  block, the ``test_*`` functions it defined are called like pytest would (the fixtures
  ``tmp_path`` and ``monkeypatch`` are supported);
* in ```` ```console ```` blocks, each ``$ `` line is a command and the lines after it, up to the
  next command, its expected output (stdout and stderr together, see :func:`output_matches`);
  a command whose expected output contains ``featurizer: error:`` must exit with 1, every
  other one with 0;
* in ```` ```bash ```` blocks, every ``featurizer`` command (alone or chained with ``&&``) must
  exit with 0; its output is not compared.

A ``featurizer`` command (``featurizer ...`` or ``<path>/featurizer ...``, after optional
``NAME=value`` environment assignments) runs in-process through :func:`featurizer.cli.main`
with a fresh plugin registry, as a new process would. ``PYTHONPATH`` assignments are honoured
by prepending to ``sys.path``. Other shell commands (``pip``, ``python3 -m venv``, ...) are not
run. ``featurizer run`` is bounded so that a page stays fast: ``--max-events`` above 50,000
becomes 50,000, a missing bound becomes ``--max-events 2000``, and ``--duration`` is at most
1 second.

A ``featurizer graph`` command writing SVG or PNG needs Graphviz's ``dot``. Without it, the
command is not run and, once the rest of the page passed, the page is reported as skipped with
the reason, unless ``FEATURIZER_REQUIRE_GRAPHVIZ=1`` (set by ``.ci/run``, which installs
Graphviz) makes a missing ``dot`` a failure (see :func:`graphviz_missing`).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from featurizer._plugins import reset_plugins
from featurizer.cli import main

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

REQUIRE_GRAPHVIZ = "FEATURIZER_REQUIRE_GRAPHVIZ"
"""Set to ``1`` where Graphviz is installed (CI): tests needing ``dot`` then never skip."""

OWNED_PAGES = (
    "concepts.md",
    "quickstart.md",
    "config.md",
    "writing-a-plugin.md",
    "hooks.md",
    "cli.md",
    "graph-semantics.md",
)
"""The pages whose examples this module runs (other pages belong to other test suites)."""

MAX_RUN_EVENTS = 50_000
BOUNDED_RUN_EVENTS = 2_000
MAX_RUN_SECONDS = 1.0

_FENCE = re.compile(r"^```([\w+-]*)\s*$")
_FILE_MARKER = re.compile(r"^#\s*file:\s*(\S+)\s*$")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def graphviz_missing() -> str | None:
    """Why a test needing Graphviz's ``dot`` cannot run here, or ``None`` when it can.

    :raises pytest.fail.Exception: when ``dot`` is missing although ``FEATURIZER_REQUIRE_GRAPHVIZ``
        is set: CI installed Graphviz, so a missing ``dot`` there is a broken setup, not a skip.
    """
    if shutil.which("dot") is not None:
        return None
    if os.environ.get(REQUIRE_GRAPHVIZ, "") not in ("", "0"):
        pytest.fail(
            f"{REQUIRE_GRAPHVIZ} is set but Graphviz's `dot` is not on PATH: install graphviz"
        )
    return (
        "Graphviz's `dot` is not installed (apt-get install graphviz or brew install graphviz); "
        f".ci/run installs it and sets {REQUIRE_GRAPHVIZ}=1 so that CI never skips this"
    )


def needs_graphviz(argv: tuple[str, ...]) -> bool:
    """Whether a ``featurizer`` command renders with Graphviz (``graph`` to SVG or PNG)."""
    if len(argv) < 2 or argv[1] != "graph":
        return False
    args = list(argv[2:])
    for flag in ("--format", "-o", "--out"):
        if flag in args and args.index(flag) + 1 < len(args):
            value = args[args.index(flag) + 1].lower()
            if value in ("svg", "png") or value.endswith((".svg", ".png")):
                return True
    return False


def _normalised_lines(text: str) -> list[str]:
    return [re.sub(r"[ \t]+", " ", line).strip() for line in text.strip("\n").split("\n")]


def _line_pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in line.split("...")))


def output_matches(expected: str, output: str) -> bool:
    """Whether ``output`` matches the ``expected`` text shown on a page.

    Lines are compared with runs of blanks collapsed and ends stripped. A line that is just
    ``...`` matches any number of lines (none included); ``...`` inside a line matches any
    text within that line. Everything else must be equal.
    """
    want = _normalised_lines(expected) if expected.strip() else []
    got = _normalised_lines(output) if output.strip() else []
    patterns = [None if line == "..." else _line_pattern(line) for line in want]
    # Wildcard matching over lines (``...`` lines are the wildcards), backtracking to the
    # last wildcard only: linear in practice, even for long outputs.
    w = g = 0
    star, star_g = -1, 0
    while g < len(got):
        if w < len(patterns) and patterns[w] is None:
            star, star_g = w, g
            w += 1
        elif w < len(patterns) and patterns[w].fullmatch(got[g]):  # type: ignore[union-attr]
            w += 1
            g += 1
        elif star >= 0:
            star_g += 1
            w, g = star + 1, star_g
        else:
            return False
    return all(pattern is None for pattern in patterns[w:])


@attrs.frozen(kw_only=True)
class Block:
    """One fenced block of a page.

    :param language: the info string (``python``, ``console``, ...), lower-case.
    :param text: the block's content, without the fences.
    :param line: the 1-based line of the block's first content line in the page.
    """

    language: str
    text: str
    line: int

    @property
    def file(self) -> str | None:
        """The ``# file: PATH`` this block is the content of, if any."""
        first = self.text.split("\n", 1)[0]
        match = _FILE_MARKER.match(first)
        return match.group(1) if match else None


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown``, in order.

    :raises ValueError: for a fence that is never closed.
    """
    blocks = []
    lines = markdown.split("\n")
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"the fence opened on line {index + 1} is never closed")
        blocks.append(
            Block(language=match.group(1).lower(), text="\n".join(lines[start:end]), line=start + 1)
        )
        index = end + 1
    return blocks


@attrs.frozen(kw_only=True)
class Command:
    """One shell command of a page: environment assignments and the argument vector."""

    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]

    @property
    def is_featurizer(self) -> bool:
        """Whether the program is the ``featurizer`` CLI."""
        return bool(self.argv) and (
            self.argv[0] == "featurizer" or self.argv[0].endswith("/featurizer")
        )


def split_commands(line: str) -> list[Command]:
    """The commands of one shell line (``&&`` and ``;`` separate them)."""
    commands = []
    current: list[str] = []
    for token in [*shlex.split(line, comments=True), "&&"]:
        if token in ("&&", ";", "||"):
            if current:
                env = []
                while current and _ENV_ASSIGNMENT.match(current[0]):
                    name, _, value = current.pop(0).partition("=")
                    env.append((name, value))
                commands.append(Command(env=tuple(env), argv=tuple(current)))
            current = []
        else:
            current.append(token)
    return commands


def bounded(argv: tuple[str, ...]) -> list[str]:
    """The CLI arguments with ``featurizer run`` bounded (see the module docstring)."""
    args = list(argv)
    if not args or args[0] != "run":
        return args
    if "--max-events" in args:
        at = args.index("--max-events") + 1
        if int(args[at]) > MAX_RUN_EVENTS:
            args[at] = str(MAX_RUN_EVENTS)
    elif "--duration" not in args:
        args += ["--max-events", str(BOUNDED_RUN_EVENTS)]
    if "--duration" in args:
        at = args.index("--duration") + 1
        args[at] = str(min(float(args[at]), MAX_RUN_SECONDS))
    return args


@contextlib.contextmanager
def _fresh_root_logging() -> Iterator[None]:
    """Let the CLI's ``logging.basicConfig`` install its handler, as in a new process."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        yield
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def run_featurizer(command: Command, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Run a ``featurizer`` command in-process; return its exit code and its output."""
    output = io.StringIO()
    with monkeypatch.context() as patch:
        for name, value in command.env:
            if name == "PYTHONPATH":
                for entry in reversed(value.split(os.pathsep)):
                    patch.syspath_prepend(str(Path(entry).resolve()))
            else:
                patch.setenv(name, value)
        importlib.invalidate_caches()
        reset_plugins()
        try:
            with (
                _fresh_root_logging(),
                contextlib.redirect_stdout(output),
                contextlib.redirect_stderr(output),
            ):
                try:
                    code = main(bounded(command.argv[1:]))
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            reset_plugins()
    return code, output.getvalue()


class PageRunner:
    """Runs one page's examples (see the module docstring).

    :param page: the Markdown file.
    :param workdir: an empty directory to run in.
    :param monkeypatch: undoes the working directory and ``sys.path`` changes afterwards.
    """

    def __init__(self, page: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.page = page
        self.workdir = workdir
        self.monkeypatch = monkeypatch
        self.namespace: dict[str, Any] = {"__name__": "__docs_example__"}
        self.commands_run: list[list[str]] = []
        self.commands_skipped: list[list[str]] = []
        self.python_blocks = 0
        self.tests_called: list[str] = []
        self.graphviz_skipped: list[str] = []
        self._fixture_dirs = 0

    def run(self) -> None:
        """Run every block of the page, top to bottom."""
        shutil.copytree(REPO / "examples", self.workdir / "examples")
        self.monkeypatch.chdir(self.workdir)
        self.monkeypatch.syspath_prepend(str(self.workdir))
        before = set(sys.modules)
        try:
            for block in parse_blocks(self.page.read_text(encoding="utf-8")):
                self.run_block(block)
            if self.graphviz_skipped:
                pytest.skip(
                    f"{self.page.name}: everything ran except {', '.join(self.graphviz_skipped)}: "
                    f"{graphviz_missing()}"
                )
        finally:
            for name in set(sys.modules) - before:
                module_file = getattr(sys.modules[name], "__file__", None) or ""
                if module_file.startswith(str(self.workdir)):
                    del sys.modules[name]
            importlib.invalidate_caches()

    def where(self, block: Block) -> str:
        """``page.md:LINE`` of a block, for failure messages."""
        return f"{self.page.name}:{block.line}"

    def run_block(self, block: Block) -> None:
        """Write, execute or check one block according to its language."""
        if block.file is not None:
            target = self.workdir / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text + "\n", encoding="utf-8")
            importlib.invalidate_caches()
        if block.language == "python":
            self.run_python(block)
        elif block.language == "console":
            self.run_console(block)
        elif block.language in ("bash", "sh", "shell"):
            for offset, line in enumerate(block.text.split("\n")):
                for command in split_commands(line):
                    self.run_command(command, None, f"{self.page.name}:{block.line + offset}")

    def run_python(self, block: Block) -> None:
        """Execute a Python block in the page namespace, then call the tests it defined."""
        self.python_blocks += 1
        before = dict(self.namespace)
        source = "\n" * (block.line - 1) + block.text + "\n"
        code = compile(source, str(self.page), "exec")
        exec(code, self.namespace)
        for name, value in list(self.namespace.items()):
            if name.startswith("test") and callable(value) and before.get(name) is not value:
                self.call_test(name, value)

    def call_test(self, name: str, function: Callable[..., Any]) -> None:
        """Call a test function, providing ``tmp_path`` and ``monkeypatch``."""
        with pytest.MonkeyPatch.context() as patch:
            kwargs: dict[str, Any] = {}
            for parameter in inspect.signature(function).parameters:
                if parameter == "tmp_path":
                    self._fixture_dirs += 1
                    path = self.workdir / f"_tmp_path_{self._fixture_dirs}"
                    path.mkdir()
                    kwargs[parameter] = path
                elif parameter == "monkeypatch":
                    kwargs[parameter] = patch
                else:
                    raise AssertionError(
                        f"{self.page.name}: test {name} asks for fixture {parameter!r}; the docs "
                        f"runner provides tmp_path and monkeypatch only"
                    )
            function(**kwargs)
        self.tests_called.append(name)

    def run_console(self, block: Block) -> None:
        """Run each ``$`` command and compare its output with the lines that follow it."""
        lines = block.text.split("\n")
        starts = [i for i, line in enumerate(lines) if line.startswith("$ ")]
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            expected = "\n".join(lines[start + 1 : end]).strip("\n")
            for command in split_commands(lines[start][2:]):
                self.run_command(command, expected, f"{self.page.name}:{block.line + start}")

    def run_command(self, command: Command, expected: str | None, where: str) -> None:
        """Run one command if it is a ``featurizer`` one; check exit code and output."""
        if not command.argv:
            return
        if not command.is_featurizer:
            self.commands_skipped.append(list(command.argv))
            return
        shown = " ".join(command.argv)
        wants_error = expected is not None and "featurizer: error:" in expected
        if not wants_error and needs_graphviz(command.argv) and graphviz_missing() is not None:
            self.commands_skipped.append(list(command.argv))
            self.graphviz_skipped.append(f"{where} `{shown}`")
            return
        code, output = run_featurizer(command, self.monkeypatch)
        self.commands_run.append(list(command.argv))
        assert code == (1 if wants_error else 0), (
            f"{where}: `{shown}` exited with {code}; output:\n{output}"
        )
        if expected is not None and not output_matches(expected, output):
            raise AssertionError(
                f"{where}: `{shown}` printed:\n{output}\nwhich does not match the page:\n{expected}"
            )
