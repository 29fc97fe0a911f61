"""Scaling tests: ``slow`` ones run only with FEATURIZER_SLOW=1."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("FEATURIZER_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: set FEATURIZER_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords and "tests/scaling" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
