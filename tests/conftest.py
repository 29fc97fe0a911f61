"""Shared fixtures: every test starts with a fresh process-wide plugin registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from featurizer._plugins import reset_plugins

settings.register_profile("featurizer", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("featurizer")


@pytest.fixture(autouse=True)
def _fresh_plugins() -> Iterator[None]:
    reset_plugins()
    yield
    reset_plugins()
