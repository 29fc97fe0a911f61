"""Rendering DOT to SVG or PNG with Graphviz's ``dot`` program."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from featurizer._errors import FeaturizerError
from featurizer.viz._files import write_atomically
from featurizer.viz._text import to_dot, to_mermaid

__all__ = [
    "FORMATS",
    "RENDERED_FORMATS",
    "GraphvizNotFoundError",
    "RenderError",
    "graphviz_available",
    "picture_bytes",
    "render",
    "write_picture",
]

RENDERED_FORMATS = ("svg", "png")
"""Formats drawn by Graphviz's ``dot``."""

FORMATS = ("mermaid", "dot", *RENDERED_FORMATS)
"""Every format :func:`write_picture` and ``featurizer graph`` produce."""

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` "
    "(Fedora), `brew install graphviz` (macOS), `conda install graphviz`, or see "
    "https://graphviz.org/download/"
)


class RenderError(FeaturizerError):
    """Graphviz failed to render a picture."""


class GraphvizNotFoundError(RenderError):
    """Graphviz's ``dot`` program is not installed (or not on ``PATH``)."""


def graphviz_available() -> bool:
    """Whether Graphviz's ``dot`` program is on ``PATH``."""
    return shutil.which("dot") is not None


def render(dot_source: str, format: str = "svg", *, timeout: float = 60.0) -> bytes:
    """Render DOT text with Graphviz's ``dot``.

    :param dot_source: a DOT graph (e.g. from :func:`~featurizer.viz.to_dot`).
    :param format: ``"svg"`` or ``"png"``.
    :param timeout: seconds before ``dot`` is killed.
    :returns: the rendered image.
    :raises GraphvizNotFoundError: if ``dot`` is not installed, saying how to install it.
    :raises RenderError: if ``dot`` fails or times out.
    """
    if format not in RENDERED_FORMATS:
        raise RenderError(
            f"cannot render format {format!r} with Graphviz; expected one of "
            f"{', '.join(map(repr, RENDERED_FORMATS))}"
        )
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizNotFoundError(
            f"rendering {format.upper()} needs Graphviz's `dot` program, which is not on PATH; "
            f"{INSTALL_HINT}. The mermaid and dot formats work without it."
        )
    try:
        completed = subprocess.run(
            [executable, f"-T{format}"],
            input=dot_source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise RenderError(f"Graphviz `dot` did not finish within {timeout:g} s") from error
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip()
        raise RenderError(f"Graphviz `dot` failed (exit code {completed.returncode}): {message}")
    return completed.stdout


def picture_bytes(subject: Any, format: str, *, title: str | None = None) -> bytes:
    """The picture of a graph or worker plan in one of :data:`FORMATS`.

    :param subject: a :class:`~featurizer.FeatureStreamGraph`, a worker plan or a ``Picture``.
    :param format: ``mermaid``, ``dot``, ``svg`` or ``png``.
    :param title: an optional caption.
    :raises RenderError: for an unknown format or when Graphviz is missing or fails.
    """
    if format == "mermaid":
        return to_mermaid(subject, title=title).encode("utf-8")
    if format == "dot":
        return to_dot(subject, title=title).encode("utf-8")
    if format in RENDERED_FORMATS:
        return render(to_dot(subject, title=title), format)
    raise RenderError(f"unknown picture format {format!r}; expected one of {', '.join(FORMATS)}")


def write_picture(
    subject: Any, path: str | Path, format: str | None = None, *, title: str | None = None
) -> Path:
    """Write the picture of a graph or worker plan to a file, all at once.

    The file is checked for writability first, drawn in memory, written under a temporary
    name and renamed: on any error nothing is left behind.

    :param subject: a :class:`~featurizer.FeatureStreamGraph`, a worker plan or a ``Picture``.
    :param path: the output file.
    :param format: one of :data:`FORMATS`; by default from the suffix (``.mmd``/``.mermaid``,
        ``.dot``/``.gv``, ``.svg``, ``.png``).
    :param title: an optional caption.
    :returns: the path written.
    :raises FeaturizerError: for an unknown format, an unwritable path, or Graphviz problems.
    """
    from featurizer.viz._files import check_writable

    target = check_writable(path)
    chosen = format or format_from_suffix(target)
    return write_atomically(target, picture_bytes(subject, chosen, title=title))


_SUFFIXES = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot"}


def format_from_suffix(path: str | Path) -> str:
    """The picture format a file name asks for.

    :raises RenderError: if the suffix is not one of the known ones.
    """
    suffix = Path(path).suffix.lower()
    chosen = _SUFFIXES.get(suffix, suffix.lstrip("."))
    if chosen not in FORMATS:
        raise RenderError(
            f"cannot tell the picture format of {str(path)!r} from its suffix (known: .mmd, "
            f".mermaid, .dot, .gv, .svg, .png); pass --format"
        )
    return chosen
