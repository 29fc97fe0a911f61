"""Write a real installed-distribution layout (``*.dist-info``) to test plugin discovery."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["write_distribution"]


def write_distribution(
    directory: Path,
    name: str,
    *,
    version: str = "1.0.0",
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] = (),  # type: ignore[assignment]
    group: str = "featurizer",
) -> Path:
    """Write ``<name>-<version>.dist-info`` and module files into ``directory``.

    Put ``directory`` on ``sys.path`` (``monkeypatch.syspath_prepend``) and
    ``importlib.metadata`` finds the distribution exactly as if pip had installed it.

    :param directory: a folder to act as site-packages.
    :param name: the distribution name (``featurizer-foo``).
    :param version: its version.
    :param entry_points: entry-point name to ``module`` or ``module:attr``.
    :param modules: relative file path (``featurizer_foo/__init__.py``) to source text.
    :param group: the entry-point group.
    :returns: the dist-info folder.
    """
    directory.mkdir(parents=True, exist_ok=True)
    normalised = name.replace("-", "_")
    dist_info = directory / f"{normalised}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{group}]"] + [f"{ep} = {target}" for ep, target in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for relative, source in dict(modules).items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source, encoding="utf-8")
    (dist_info / "RECORD").write_text("", encoding="utf-8")
    return dist_info
