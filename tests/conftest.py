"""Shared fixtures: every test starts with a fresh process-wide plugin registry."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
    """Skip ``slow`` soak tests unless selected with ``-m`` or ``FEATURIZER_SLOW=1``."""
    if config.getoption("markexpr") or os.environ.get("FEATURIZER_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow soak test: run with -m slow or FEATURIZER_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
