"""The ``featurizer`` command line."""

from __future__ import annotations

from featurizer.cli._main import main

__all__ = ["main"]
