"""Standard feature tests: soak tests marked ``slow`` run only when asked for with ``-m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's ``slow`` tests unless a ``-m`` expression selects markers."""
    if config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="slow soak test; run with -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None and _HERE in item.path.parents:
            item.add_marker(skip)
