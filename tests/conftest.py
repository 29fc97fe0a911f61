"""Shared fixtures: every test starts with a fresh process-wide plugin registry."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from featurizer._plugins import reset_plugins
from tests.docs.docs_support import graphviz_missing

# Ray reads this once, when it is first imported, whichever test imports it first: set for the
# whole session, every local Ray the tests start binds 127.0.0.1 only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

settings.register_profile("featurizer", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("featurizer")


@pytest.fixture(autouse=True)
def _fresh_plugins() -> Iterator[None]:
    reset_plugins()
    yield
    reset_plugins()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "graphviz: needs Graphviz's `dot`; skipped without it unless FEATURIZER_REQUIRE_GRAPHVIZ=1",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``graphviz`` test skips with the reason without ``dot``, and fails if CI requires it."""
    if item.get_closest_marker("graphviz") is not None:
        reason = graphviz_missing()
        if reason is not None:
            pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` soak tests unless selected with ``-m`` or ``FEATURIZER_SLOW=1``; group
    the tests for pytest-xdist."""
    _group_for_workers(items)
    if config.getoption("markexpr") or os.environ.get("FEATURIZER_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow soak test: run with -m slow or FEATURIZER_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@functools.cache
def _starts_ray(path: Path) -> bool:
    """Whether a test module may start a local Ray (it mentions Ray at all)."""
    try:
        return re.search(r"\bray\b", path.read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return False


def _group_for_workers(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (the suite runs on two workers): a
    module's tests run on one worker (its module-scoped fixtures are built once), and the
    modules that may start a local Ray all run on the same worker, one Ray at a time."""
    for item in items:
        group = "ray" if _starts_ray(item.path) else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))
